//! Shared pieces of the session tests: a raw peer speaking bytes over the in-memory
//! transport, and ready-made handlers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use redpepper_core::codec::{decode, encode, AgentHello, Message};
use redpepper_core::memory::{pair, MemoryReader, MemoryTransport, MemoryWriter};
use redpepper_core::{Authenticator, PeerInfo, Router, Session, SessionConfig, Transport, Value};

/// Generous limit for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(120);

/// Accepts agent ids starting with "good".
pub struct TestAuth;

impl Authenticator for TestAuth {
    fn authenticate<'a>(
        &'a self,
        hello: &'a AgentHello,
        _peer: &'a PeerInfo,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            if hello.id.starts_with("good") && hello.credentials == "secret" {
                Ok(())
            } else {
                Err(format!("unknown agent {}", hello.id))
            }
        }
        .boxed()
    }
}

/// A router with `echo` (returns its args), `hang` (never finishes), `fail` (errors
/// with "boom") and `panic`, answering at once (the session polls a handler once
/// before giving it a task); `echo_later` and `panic_later` yield first, so they run on
/// a task of their own.
pub fn test_router() -> Router {
    Router::new()
        .method("echo", |ctx| async move { Ok(Value::Array(ctx.args)) })
        .method("hang", |_ctx| futures::future::pending())
        .method("fail", |_ctx| async move {
            Err(redpepper_core::HandlerError::Failed("boom".into()))
        })
        .method("panic", |_ctx| async move {
            panic!("handler panicked on purpose")
        })
        .method("echo_later", |ctx| async move {
            tokio::task::yield_now().await;
            Ok(Value::Array(ctx.args))
        })
        .method("panic_later", |_ctx| async move {
            tokio::task::yield_now().await;
            panic!("handler panicked on purpose, on its own task")
        })
}

pub fn config() -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::ZERO,
        ..SessionConfig::default()
    }
}

/// A manager and an agent session connected in memory.
pub async fn connected(manager_cfg: SessionConfig, agent_cfg: SessionConfig) -> (Session, Session) {
    let (a, m) = pair(64);
    let router = Arc::new(test_router());
    let r2 = router.clone();
    let manager = tokio::spawn(async move { Session::accept(m, manager_cfg, &TestAuth, r2).await });
    let agent = Session::connect(a, "good1", "secret", agent_cfg, router)
        .await
        .expect("agent connects");
    let manager = manager.await.unwrap().expect("manager accepts");
    (manager, agent)
}

/// One end driven by hand: send and receive raw messages or bytes.
pub struct RawPeer {
    pub reader: MemoryReader,
    pub writer: MemoryWriter,
}

impl RawPeer {
    pub fn new(t: MemoryTransport) -> Self {
        let (reader, writer) = t.split();
        Self { reader, writer }
    }

    pub async fn send(&mut self, msg: Message) {
        self.writer.send(encode(&msg).unwrap()).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .send(Bytes::copy_from_slice(bytes))
            .await
            .unwrap();
    }

    /// The next message, or `None` when the other side closed.
    pub async fn recv(&mut self) -> Option<Message> {
        let frame = tokio::time::timeout(WAIT, self.reader.next())
            .await
            .expect("raw peer waited too long")?;
        Some(decode(&frame.unwrap()).unwrap())
    }
}

/// A raw manager that accepted an agent's hello; returns the hello it got.
pub async fn raw_manager_accept(raw: &mut RawPeer, version: &str) -> AgentHello {
    let Some(Message::AgentHello(h)) = raw.recv().await else {
        panic!("expected AgentHello")
    };
    raw.send(Message::ManagerHello(redpepper_core::codec::ManagerHello {
        version: version.into(),
    }))
    .await;
    h
}

/// A session's `connect` or `accept` running on its own task.
pub type Pending = tokio::task::JoinHandle<Result<Session, redpepper_core::SessionError>>;

/// An agent session dialing a raw manager: the agent's hello is not answered yet.
/// Returns the raw manager end and the pending `connect`.
pub fn dial_raw_manager(cfg: SessionConfig, router: Router) -> (RawPeer, Pending) {
    let (a, m) = pair(16);
    let agent = tokio::spawn(Session::connect(a, "good1", "s", cfg, Arc::new(router)));
    (RawPeer::new(m), agent)
}

/// A manager session ([`TestAuth`]) accepting a raw agent that has sent nothing yet.
/// Returns the raw agent end and the pending `accept`.
pub fn accept_raw_agent(cfg: SessionConfig, router: Router) -> (RawPeer, Pending) {
    let (a, m) = pair(16);
    let manager =
        tokio::spawn(async move { Session::accept(m, cfg, &TestAuth, Arc::new(router)).await });
    (RawPeer::new(a), manager)
}

/// An established agent session whose manager is a raw peer (which answered 0.3.4).
pub async fn agent_on_raw_manager(cfg: SessionConfig, router: Router) -> (RawPeer, Session) {
    let (mut raw, agent) = dial_raw_manager(cfg, router);
    raw_manager_accept(&mut raw, "0.3.4").await;
    (raw, agent.await.unwrap().expect("agent connects"))
}
