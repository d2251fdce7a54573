//! Encode and decode timings per message type, in-process: the messages of
//! `redpepper_codec::corpus` (which the codec's criterion benchmark times too), timed in
//! batches until a time budget is spent. The criterion figures are the reference; these put the
//! codec in the same table as everything else.

use std::hint::black_box;
use std::time::{Duration, Instant};

use redpepper_core::codec::{corpus, decode, encode};
use serde::Serialize;

use super::emit;

/// Arguments of the codec child.
#[derive(Debug, Clone, clap::Args)]
pub struct CodecArgs {
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Seconds per measurement (each encode and each decode of each type).
    #[arg(long, default_value_t = 0.2)]
    pub secs: f64,
}

/// One message type's timings.
#[derive(Debug, Serialize)]
struct Timing {
    message: &'static str,
    bytes: usize,
    encode_ns: f64,
    decode_ns: f64,
}

/// Nanoseconds per call of `f`, timed in batches for `budget`.
fn time_per_op(budget: Duration, mut f: impl FnMut()) -> f64 {
    const BATCH: u64 = 256;
    for _ in 0..BATCH {
        f();
    }
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < budget {
        for _ in 0..BATCH {
            f();
        }
        ops += BATCH;
    }
    start.elapsed().as_nanos() as f64 / ops.max(1) as f64
}

/// Time every message type and print `{"codec": [...]}`.
pub fn run(args: &CodecArgs) -> anyhow::Result<()> {
    let budget = Duration::from_secs_f64(args.secs);
    let mut timings = Vec::new();
    for (name, msg) in corpus::messages() {
        let bytes = encode(&msg)?;
        let encode_ns = time_per_op(budget, || {
            let _ = black_box(encode(black_box(&msg)));
        });
        let decode_ns = time_per_op(budget, || {
            let _ = black_box(decode(black_box(&bytes)));
        });
        timings.push(Timing {
            message: name,
            bytes: bytes.len(),
            encode_ns,
            decode_ns,
        });
    }
    emit("codec", timings);
    Ok(())
}
