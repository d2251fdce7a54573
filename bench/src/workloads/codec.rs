//! Workload 8: ns per encode and decode per message type, in a child pinned to one
//! core, against what RedPepper 0.3.4 does to each message
//! (`msgpack.packb(m.model_dump())`, `Message.validate_python(msgpack.unpackb(b))`).
//! The criterion benchmark of the codec (`cargo bench -p redpepper-codec`) times
//! the same messages more carefully.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{progress, Ctx, REDPEPPER};
use crate::launcher;
use crate::report::{Better, Row};

#[derive(Debug, Clone, Deserialize)]
struct Timing {
    message: String,
    bytes: usize,
    encode_ns: f64,
    decode_ns: f64,
}

fn timings(ctx: &Ctx, python: bool) -> Result<BTreeMap<String, Timing>, String> {
    let cpu = ctx.cpus.first().copied().unwrap_or(0);
    let secs = if ctx.opts.quick { 0.01 } else { 0.3 };
    let args = [
        "codec",
        "--cpu",
        &cpu.to_string(),
        "--secs",
        &secs.to_string(),
    ]
    .map(str::to_owned);
    let run = || -> anyhow::Result<BTreeMap<String, Timing>> {
        let proc = if python {
            let cmd = ctx
                .launcher
                .python(&args)
                .ok_or_else(|| anyhow::anyhow!("{}", ctx.python_off))?;
            launcher::spawn("rp_bench.py codec", cmd)?
        } else {
            launcher::spawn("codec child", ctx.launcher.ours(&args))?
        };
        let list: Vec<Timing> =
            serde_json::from_value(proc.expect("codec", Duration::from_secs(120))?)?;
        Ok(list.into_iter().map(|t| (t.message.clone(), t)).collect())
    };
    run().map_err(|e| format!("{e:#}"))
}

/// Time both codecs and make the rows.
pub fn run(ctx: &Ctx) -> Vec<Row> {
    progress("codec timings");
    let ours = timings(ctx, false);
    let python = ctx.launcher.python.is_some();
    let py = if python {
        timings(ctx, true)
    } else {
        Err(ctx.python_off.clone())
    };
    let names: Vec<String> = match &ours {
        Ok(map) => map.keys().cloned().collect(),
        Err(_) => vec!["all".to_owned()],
    };
    let mut rows = Vec::new();
    for name in names {
        for (op, f) in [
            ("encode", (|t: &Timing| t.encode_ns) as fn(&Timing) -> f64),
            ("decode", |t: &Timing| t.decode_ns),
        ] {
            let get = |r: &Result<BTreeMap<String, Timing>, String>| {
                r.as_ref()
                    .map_err(Clone::clone)
                    .and_then(|m| m.get(&name).map(f).ok_or_else(|| format!("no {name}")))
            };
            let bytes = ours
                .as_ref()
                .ok()
                .and_then(|m| m.get(&name))
                .map_or(0, |t| t.bytes);
            let row = Row::new(
                "8 codec",
                "-",
                "one core",
                &format!("{name} ({bytes} B) {op}"),
                "ns",
                Better::Lower,
                get(&ours),
            );
            rows.push(if python {
                row.against(REDPEPPER, get(&py))
            } else {
                row
            });
        }
    }
    rows
}
