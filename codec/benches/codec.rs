//! Encode and decode benchmarks: one realistic small message per type, plus a
//! Response carrying 4 KiB of output; and the serde impls through rmp-serde on the
//! Request (`serde_encode/Request`, `serde_decode/Request`) next to the
//! hand-written `Request/encode` and `Request/decode` the transports use.
//!
//! `cargo bench -p redpepper-codec -- --warm-up-time 1 --measurement-time 2`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redpepper_codec::{
    decode, encode, AgentHello, ManagerHello, Message, Notification, Request, Response, Value,
};

const UUID: &str = "0f3c5b8e6a2d4e1f9b7c3a5d8e2f1a4b";

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

fn messages() -> Vec<(&'static str, Message)> {
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
            // The manager's `command` request, as RedPepper sends it.
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

fn bench(c: &mut Criterion) {
    for (name, msg) in messages() {
        let bytes = encode(&msg).unwrap();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("encode", |b| b.iter(|| encode(black_box(&msg)).unwrap()));
        group.bench_function("decode", |b| b.iter(|| decode(black_box(&bytes)).unwrap()));
        group.finish();
    }

    let (_, request) = messages()
        .into_iter()
        .find(|(name, _)| *name == "Request")
        .unwrap();
    let bytes = encode(&request).unwrap();
    assert_eq!(rmp_serde::to_vec_named(&request).unwrap(), &bytes[..]);
    let mut group = c.benchmark_group("serde_encode");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("Request", |b| {
        b.iter(|| rmp_serde::to_vec_named(black_box(&request)).unwrap())
    });
    group.finish();
    let mut group = c.benchmark_group("serde_decode");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("Request", |b| {
        b.iter(|| rmp_serde::from_slice::<Message>(black_box(&bytes)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
