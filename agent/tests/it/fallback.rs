//! Transport fallback over the in-memory transport, each entry's manager a raw peer
//! driven by hand: the walk down the list, a refusal that ends the round, and the
//! move back up (new session authenticated before the old one gets its Bye, results
//! of a running command on the new one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redpepper_agent::commands::Commands;
use redpepper_agent::run::MOVED_REASON;
use redpepper_agent::Agent;
use redpepper_config::{AgentCommandsConfig, AgentConfig, TransportKind};
use redpepper_core::codec::{Message, Request};
use redpepper_core::memory::pair;
use redpepper_core::{BoxTransport, Dialer, Transport, TransportError, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::raw::Raw;
use crate::WAIT;

/// An entry whose dials fail while it is down and otherwise hand the manager end to
/// the test.
struct Stub {
    name: &'static str,
    up: Arc<AtomicBool>,
    dials: Arc<AtomicUsize>,
    accepted: mpsc::UnboundedSender<Raw>,
}

impl Dialer for Stub {
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
        Box::pin(async move {
            self.dials.fetch_add(1, Ordering::SeqCst);
            if !self.up.load(Ordering::SeqCst) {
                return Err(TransportError::Connect {
                    target: self.name.to_owned(),
                    reason: "connection refused".into(),
                });
            }
            let (agent, manager) = pair(64);
            let _ = self.accepted.send(Raw::new(manager));
            Ok(agent.boxed())
        })
    }

    fn describe(&self) -> String {
        format!("{}://stub", self.name)
    }
}

/// One entry as the test sees it.
struct Side {
    up: Arc<AtomicBool>,
    dials: Arc<AtomicUsize>,
    accepted: mpsc::UnboundedReceiver<Raw>,
}

impl Side {
    async fn next(&mut self) -> Raw {
        tokio::time::timeout(WAIT, self.accepted.recv())
            .await
            .expect("no dial came")
            .unwrap()
    }
}

fn entry(name: &'static str, up: bool) -> (Box<dyn Dialer>, Side) {
    let (tx, rx) = mpsc::unbounded_channel();
    let up = Arc::new(AtomicBool::new(up));
    let dials = Arc::new(AtomicUsize::new(0));
    let stub = Stub {
        name,
        up: up.clone(),
        dials: dials.clone(),
        accepted: tx,
    };
    let side = Side {
        up,
        dials,
        accepted: rx,
    };
    (Box::new(stub), side)
}

fn config(probe: Duration) -> AgentConfig {
    let mut c = AgentConfig {
        agent_id: "web1".into(),
        transport: TransportKind::Tls,
        transport_fallbacks: vec![TransportKind::WebSocket],
        transport_probe_interval: probe,
        ..AgentConfig::default()
    };
    c.session.ping_interval = Duration::ZERO;
    c
}

/// An agent over `[tls, websocket]` stubs, running until the token fires.
fn start(
    tls_up: bool,
    probe: Duration,
) -> (Arc<Agent>, Side, Side, CancellationToken, Arc<Commands>) {
    let (tls, tls_side) = entry("tls", tls_up);
    let (ws, ws_side) = entry("ws", true);
    let commands = Commands::new(&AgentCommandsConfig::default());
    let agent = Arc::new(
        Agent::with_commands(config(probe), tls, commands.clone())
            .with_fallbacks(vec![(TransportKind::WebSocket, ws)]),
    );
    let stop = CancellationToken::new();
    let (a, s) = (agent.clone(), stop.clone());
    tokio::spawn(async move { a.run(s, |_| {}).await });
    (agent, tls_side, ws_side, stop, commands)
}

#[tokio::test]
async fn a_refusal_ends_the_round_and_an_unreachable_entry_moves_on() {
    // TLS refuses the agent: the WebSocket entry is not tried in that round.
    let (tls, mut tls_side) = entry("tls", true);
    let (ws, ws_side) = entry("ws", true);
    let agent = Agent::with_commands(
        config(Duration::ZERO),
        tls,
        Commands::new(&AgentCommandsConfig::default()),
    )
    .with_fallbacks(vec![(TransportKind::WebSocket, ws)]);
    let refuse = tokio::spawn(async move {
        let mut m = tls_side.next().await;
        m.hello().await;
        m.send(Message::Bye {
            reason: "authentication failed".into(),
        })
        .await;
        tls_side
    });
    let e = agent.connect().await.err().unwrap().to_string();
    assert!(e.contains("authentication failed"), "{e}");
    let tls_side = refuse.await.unwrap();
    assert_eq!(tls_side.dials.load(Ordering::SeqCst), 1);
    assert_eq!(ws_side.dials.load(Ordering::SeqCst), 0);

    // TLS unreachable: the same round goes on to WebSocket.
    tls_side.up.store(false, Ordering::SeqCst);
    let mut ws_side = ws_side;
    let welcome = tokio::spawn(async move {
        let mut m = ws_side.next().await;
        assert_eq!(m.hello().await, "web1");
        m.welcome().await;
        m
    });
    let session = agent.connect().await.unwrap();
    let _m = welcome.await.unwrap();
    assert!(!session.is_closed());
    assert_eq!(tls_side.dials.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_agent_moves_back_up_once_the_better_session_is_authenticated() {
    let (_agent, mut tls, mut ws, stop, _commands) = start(false, Duration::from_millis(200));
    let mut on_ws = ws.next().await;
    on_ws.hello().await;
    on_ws.welcome().await;

    // A command that runs until the test lets it finish, started on WebSocket.
    let gate = tempfile::tempdir().unwrap();
    let flag = gate.path().join("go");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; echo finished",
        flag.display()
    );
    on_ws
        .send(Message::Request(Request {
            timeout: None,
            id: "req-1".into(),
            method: "command".into(),
            args: vec![],
            kwargs: vec![
                ("id".into(), Value::from("c1")),
                ("cmdtype".into(), Value::from("command.Run")),
                ("args".into(), Value::Array(vec![])),
                (
                    "kwargs".into(),
                    Value::Map(vec![(Value::from("command"), Value::from(script))]),
                ),
            ],
        }))
        .await;
    match on_ws.recv().await {
        Some(Message::Response(r)) => assert!(r.success, "{r:?}"),
        other => panic!("expected the command's response, got {other:?}"),
    }

    // TLS comes back: a probe dials it and says hello.
    tls.up.store(true, Ordering::SeqCst);
    let mut on_tls = tls.next().await;
    on_tls.hello().await;
    // Not authenticated yet: the WebSocket session stays, callable.
    on_ws
        .send(Message::Request(Request {
            timeout: None,
            id: "req-2".into(),
            method: "echo".into(),
            args: vec![Value::from("still here")],
            kwargs: vec![],
        }))
        .await;
    loop {
        match on_ws.recv().await {
            Some(Message::Response(r)) if r.id == "req-2" => {
                assert!(r.success, "{r:?}");
                break;
            }
            Some(Message::Notification(_)) => {}
            other => panic!("expected the echo's response, got {other:?}"),
        }
    }
    on_tls.welcome().await;
    // Authenticated: the old session still answers what the manager sent there
    // before it took the new one (this manager never replaces it)...
    on_ws
        .send(Message::Request(Request {
            timeout: None,
            id: "req-3".into(),
            method: "echo".into(),
            args: vec![Value::from("after the move")],
            kwargs: vec![],
        }))
        .await;
    loop {
        match on_ws.recv().await {
            Some(Message::Response(r)) if r.id == "req-3" => {
                assert!(r.success, "{r:?}");
                break;
            }
            Some(Message::Notification(_)) => {}
            other => panic!("expected the echo's response on the old session, got {other:?}"),
        }
    }
    // ...and gets the agent's Bye after the grace (MOVED_GRACE).
    loop {
        match on_ws.recv().await {
            Some(Message::Bye { reason }) => {
                assert_eq!(reason, MOVED_REASON);
                break;
            }
            Some(Message::Notification(_)) => {}
            other => panic!("expected Bye on the old session, got {other:?}"),
        }
    }
    // The command started on WebSocket reports its result on TLS.
    std::fs::write(&flag, b"").unwrap();
    let result = loop {
        match on_tls.recv().await {
            Some(Message::Notification(n)) if n.r#type == "command_result" => break n,
            Some(Message::Notification(_)) => {}
            other => panic!("expected the result on the new session, got {other:?}"),
        }
    };
    let text = format!("{:?}", result.data);
    assert!(text.contains("c1") && text.contains("finished"), "{text}");
    // On the best entry there is nothing left to probe: no more TLS dials.
    let dials = tls.dials.load(Ordering::SeqCst);
    stop.cancel();
    loop {
        match on_tls.recv().await {
            Some(Message::Bye { reason }) => break assert_eq!(reason, "shutting down"),
            Some(_) => {} // the outbox's receipt barrier (a Ping), progress
            None => panic!("closed without Bye"),
        }
    }
    assert_eq!(tls.dials.load(Ordering::SeqCst), dials);
}

#[tokio::test]
async fn the_manager_replacing_the_old_session_before_the_probe_completes_is_a_move() {
    // What our manager does: the probe's session authenticated, it says Bye on the
    // old one at once; the agent may read that Bye before the probe's ManagerHello.
    let (_agent, mut tls, mut ws, stop, _commands) = start(false, Duration::from_millis(200));
    let mut on_ws = ws.next().await;
    on_ws.hello().await;
    on_ws.welcome().await;
    tls.up.store(true, Ordering::SeqCst);
    let mut on_tls = tls.next().await;
    on_tls.hello().await;
    on_ws
        .send(Message::Bye {
            reason: "replaced by a new connection".into(),
        })
        .await;
    // The old session ends while the probe waits for its hello: wait for its end.
    while on_ws.recv().await.is_some() {}
    on_tls.welcome().await;
    // Served on TLS: an echo answered there.
    on_tls
        .send(Message::Request(Request {
            timeout: None,
            id: "req-1".into(),
            method: "echo".into(),
            args: vec![Value::from("on tls")],
            kwargs: vec![],
        }))
        .await;
    loop {
        match on_tls.recv().await {
            Some(Message::Response(r)) => break assert!(r.success, "{r:?}"),
            Some(_) => {}
            None => panic!("the new session closed"),
        }
    }
    // A move, not a disconnection: no new round went down to WebSocket again.
    assert_eq!(ws.dials.load(Ordering::SeqCst), 1);
    // The first round's failed dial, and the probe.
    assert_eq!(tls.dials.load(Ordering::SeqCst), 2);
    stop.cancel();
}
