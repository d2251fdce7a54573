//! Workload 3: notifications one way, as fast as the session takes them, in both
//! directions: messages/s, against raw one-way frames of the same size.

use super::pair::{Driver, Impl, PairResults, RunKey};
use super::{raw_name, Ctx};
use crate::placement::Placement;
use crate::report::{Better, Row};
use crate::setup::Transport;
use crate::tasks::Task;

const LABEL: &str = "notify";

/// Ours both ways and the raw client; RedPepper has no way to count them.
pub fn tasks(ctx: &Ctx, imp: Impl, _driver: Driver) -> Vec<Task> {
    if imp == Impl::Python {
        return vec![];
    }
    vec![Task::Notify {
        label: LABEL.to_owned(),
        secs: ctx.opts.secs,
    }]
}

/// Rows of one transport and placement.
pub fn rows(res: &PairResults, transport: Transport, placement: Placement) -> Vec<Row> {
    let key = RunKey::of(transport, placement);
    let raw = res.metric(key(Impl::Raw, Driver::Agent), LABEL, |r| r.rate());
    [Driver::Agent, Driver::Manager]
        .into_iter()
        .map(|driver| {
            let ours = res.metric(key(Impl::Ours, driver), LABEL, |r| r.rate());
            Row::new(
                "3 notifications",
                transport.as_str(),
                placement.as_str(),
                &format!("{} one way", driver.direction()),
                "msg/s",
                Better::Higher,
                ours,
            )
            .against(&raw_name(transport), raw.clone())
        })
        .collect()
}
