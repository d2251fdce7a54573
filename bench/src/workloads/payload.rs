//! Workload 4: payload sizes 64 B, 4 KiB, 64 KiB, 1 MiB, manager→agent, echoed
//! back, 8 calls in flight: payload MB/s one way, against raw frames of the size of
//! our encoded requests. Both sides allow 4 MiB messages (1 MiB of payload plus
//! the envelope exceeds RedPepper's 1 MiB default).

use super::pair::{Driver, Impl, PairResults, RunKey};
use super::{calls, raw_name, Ctx};
use crate::placement::Placement;
use crate::report::{Better, Row};
use crate::setup::Transport;
use crate::tasks::Task;

/// Payload sizes.
pub const SIZES: [usize; 4] = [64, 4096, 65536, 1 << 20];
/// Calls in flight.
pub const IN_FLIGHT: usize = 8;

fn label(size: usize) -> String {
    format!("payload-{size}")
}

fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Ours manager→agent and the raw client.
pub fn tasks(ctx: &Ctx, imp: Impl, driver: Driver) -> Vec<Task> {
    let wanted = matches!(
        (imp, driver),
        (Impl::Ours, Driver::Manager) | (Impl::Raw, Driver::Agent)
    );
    if !wanted {
        return vec![];
    }
    SIZES
        .iter()
        .map(|&size| calls(ctx, label(size), IN_FLIGHT, size))
        .collect()
}

/// Rows of one transport and placement.
pub fn rows(res: &PairResults, transport: Transport, placement: Placement) -> Vec<Row> {
    let key = RunKey::of(transport, placement);
    SIZES
        .iter()
        .map(|&size| {
            let l = label(size);
            let mb = |k| res.metric(k, &l, |r| r.mb_per_sec());
            Row::new(
                "4 payload",
                transport.as_str(),
                placement.as_str(),
                &format!("{} each way, {IN_FLIGHT} in flight", size_name(size)),
                "MB/s",
                Better::Higher,
                mb(key(Impl::Ours, Driver::Manager)),
            )
            .against(&raw_name(transport), mb(key(Impl::Raw, Driver::Agent)))
        })
        .collect()
}
