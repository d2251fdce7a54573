//! The manager end of an in-memory connection, driven by hand (shared by `delivery`
//! and `fallback`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{SinkExt, StreamExt};
use redpepper_core::codec::{decode, encode, ManagerHello, Message, Notification, Request};
use redpepper_core::memory::{MemoryReader, MemoryTransport, MemoryWriter};
use redpepper_core::{Transport, Value};

use crate::WAIT;

/// The manager end of one connection, driven by hand.
pub struct Raw {
    reader: MemoryReader,
    writer: MemoryWriter,
}

impl Raw {
    /// Drive `t` (the manager's end of a pair) by hand.
    pub fn new(t: MemoryTransport) -> Raw {
        let (reader, writer) = t.split();
        Raw { reader, writer }
    }

    pub async fn send(&mut self, msg: Message) {
        self.writer.send(encode(&msg).unwrap()).await.unwrap();
    }

    /// The next message; `None` when the agent closed.
    pub async fn recv(&mut self) -> Option<Message> {
        let frame = tokio::time::timeout(WAIT, self.reader.next())
            .await
            .expect("raw manager waited too long")?;
        Some(decode(&frame.ok()?).unwrap())
    }

    /// The next message; the agent closing is a test failure.
    pub async fn message(&mut self) -> Message {
        self.recv().await.expect("agent closed")
    }

    /// The agent's hello: its id.
    pub async fn hello(&mut self) -> String {
        match self.recv().await {
            Some(Message::AgentHello(h)) => h.id,
            other => panic!("expected the hello, got {other:?}"),
        }
    }

    /// Answer the hello as RedPepper 0.3.4 does.
    pub async fn welcome(&mut self) {
        self.send(Message::ManagerHello(ManagerHello {
            version: "0.3.4".into(),
        }))
        .await;
    }

    /// The next notification, answering nothing else but Responses (skipped).
    pub async fn notification(&mut self) -> Notification {
        loop {
            match self.message().await {
                Message::Notification(n) => return n,
                Message::Response(_) => {}
                other => panic!("expected a notification, got {other:?}"),
            }
        }
    }

    /// Send the `command` request `req-ID` for command `id` of `cmdtype`.
    pub async fn command(&mut self, id: &str, cmdtype: &str, args: Vec<Value>) {
        self.send(Message::Request(Request {
            timeout: None,
            id: format!("req-{id}"),
            method: "command".into(),
            args: vec![],
            kwargs: vec![
                ("id".into(), Value::from(id)),
                ("cmdtype".into(), Value::from(cmdtype)),
                ("args".into(), Value::Array(args)),
                ("kwargs".into(), Value::Map(vec![])),
            ],
        }))
        .await;
    }
}
