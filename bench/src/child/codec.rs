//! Encode and decode timings per message type, in-process: the messages of the
//! codec's criterion benchmark (`codec/benches/codec.rs`), timed in batches until a
//! time budget is spent. The criterion figures are the reference; these put the
//! codec in the same table as everything else.

use std::hint::black_box;
use std::time::{Duration, Instant};

use redpepper_core::codec::{
    decode, encode, AgentHello, ManagerHello, Message, Notification, Request, Response, Value,
};
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

const UUID: &str = "0f3c5b8e6a2d4e1f9b7c3a5d8e2f1a4b";

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// One realistic message per type (the same as `rp_bench.py codec` times).
pub fn messages() -> Vec<(&'static str, Message)> {
    vec![
        (
            "AgentHello",
            Message::AgentHello(AgentHello {
                id: "webserver1".into(),
                version: "0.4.0".into(),
                credentials: "Zk3q9TgW1xPbV7cLr2mYhN8sDe4uJa6Q".into(),
            }),
        ),
        (
            "ManagerHello",
            Message::ManagerHello(ManagerHello {
                version: "0.4.0".into(),
            }),
        ),
        ("Ping", Message::Ping { data: 482913 }),
        ("Pong", Message::Pong { data: 482913 }),
        (
            "Bye",
            Message::Bye {
                reason: "shutting down".into(),
            },
        ),
        (
            "Request",
            Message::Request(Request {
                id: UUID.into(),
                method: "command".into(),
                args: vec![],
                kwargs: vec![
                    ("id".into(), Value::from("7d1e0c2b9a8f4e3d8c7b6a5f4e3d2c1b")),
                    ("cmdtype".into(), Value::from("echo.Echo")),
                    ("args".into(), Value::Array(vec![])),
                    (
                        "kwargs".into(),
                        map(vec![
                            ("message", Value::from("hello")),
                            ("reverse", Value::Boolean(false)),
                        ]),
                    ),
                ],
            }),
        ),
        (
            "Response",
            Message::Response(Response {
                id: UUID.into(),
                success: true,
                data: map(vec![
                    ("output", Value::from("hello\n")),
                    ("changed", Value::Boolean(true)),
                    ("rc", Value::from(0)),
                ]),
            }),
        ),
        (
            "Notification",
            Message::Notification(Notification {
                r#type: "command_progress".into(),
                data: map(vec![
                    (
                        "command_id",
                        Value::from("7d1e0c2b9a8f4e3d8c7b6a5f4e3d2c1b"),
                    ),
                    ("current", Value::from(1)),
                    ("total", Value::from(1)),
                    ("message", Value::from("Finished")),
                ]),
            }),
        ),
        (
            "Response4KiB",
            Message::Response(Response {
                id: UUID.into(),
                success: true,
                data: Value::from("log line of command output\n".repeat(152)),
            }),
        ),
    ]
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
    for (name, msg) in messages() {
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
