//! The benchmark corpus: one realistic message per type, plus a Response carrying
//! 4 KiB of command output.
//!
//! Public so that the codec's criterion benchmark (`codec/benches/codec.rs`) and the
//! codec workload of `redpepper-bench` time the same messages (and `rp_bench.py codec`
//! times the same ones in Python); nothing on the wire path uses it.

use crate::message::{AgentHello, ManagerHello, Notification, Request, Response};
use crate::{Message, Value};

/// A request id as RedPepper writes them (uuid4 hex).
const UUID: &str = "0f3c5b8e6a2d4e1f9b7c3a5d8e2f1a4b";

/// Another id, for the ids inside `command` kwargs and notifications.
const COMMAND_ID: &str = "7d1e0c2b9a8f4e3d8c7b6a5f4e3d2c1b";

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// `(name, message)`: `AgentHello`, `ManagerHello`, `Ping`, `Pong`, `Bye`, `Request`
/// (the manager's `command` request for `echo.Echo`), `Response`, `Notification`
/// (`command_progress`) and `Response4KiB`.
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
                    ("id".into(), Value::from(COMMAND_ID)),
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
                timeout: None,
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
                    ("command_id", Value::from(COMMAND_ID)),
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
