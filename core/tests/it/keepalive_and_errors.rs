//! Keepalive (paused time) and malformed input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use redpepper_core::codec::{AgentHello, ManagerHello, Message, Request};
use redpepper_core::memory::pair;
use redpepper_core::{Router, Session, SessionConfig, SessionError, Value};

fn pinging() -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(5),
        ..config()
    }
}

#[tokio::test(start_paused = true)]
async fn pings_are_answered_and_rtt_recorded() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let router = Arc::new(test_router().on_event(move |_s, e| {
        if let redpepper_core::Event::PingRtt(rtt) = e {
            let _ = tx.send(*rtt);
        }
    }));
    let (a, m) = pair(16);
    let mgr = tokio::spawn(async move { Session::accept(m, pinging(), &TestAuth, router).await });
    let agent = Session::connect(a, "good1", "secret", config(), Arc::new(test_router()))
        .await
        .unwrap();
    let manager = mgr.await.unwrap().unwrap();
    assert_eq!(manager.last_rtt(), None);
    // Paused time auto-advances to the ping; wait for the event it produces.
    let rtt = tokio::time::timeout(Duration::from_secs(120), rx.recv())
        .await
        .expect("a ping was answered")
        .unwrap();
    assert_eq!(
        manager.last_rtt().map(|d| d.max(Duration::from_micros(1))),
        Some(rtt.max(Duration::from_micros(1)))
    );
    assert!(!manager.is_closed() && !agent.is_closed());
}

#[tokio::test(start_paused = true)]
async fn ping_timeout_closes_the_session() {
    let (mut raw, agent) = agent_on_raw_manager(pinging(), Router::new()).await;
    let Some(Message::Ping { .. }) = raw.recv().await else {
        panic!("expected a ping")
    };
    // Never answer.
    let reason = agent.closed().await;
    assert!(
        matches!(reason, SessionError::PingTimeout { .. }),
        "{reason}"
    );
    assert!(
        matches!(raw.recv().await, Some(Message::Bye { reason }) if reason.contains("ping timeout"))
    );
}

#[tokio::test(start_paused = true)]
async fn pong_mismatch_closes_the_session() {
    let (mut raw, agent) = agent_on_raw_manager(pinging(), Router::new()).await;
    let Some(Message::Ping { data }) = raw.recv().await else {
        panic!()
    };
    raw.send(Message::Pong { data: data + 1 }).await;
    assert!(matches!(
        agent.closed().await,
        SessionError::PongMismatch { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn slow_handler_does_not_delay_pings() {
    let (mut raw, agent) = agent_on_raw_manager(pinging(), test_router()).await;
    raw.send(Message::Request(Request {
        id: "slow".into(),
        method: "hang".into(),
        args: vec![],
        kwargs: vec![],
        timeout: None,
    }))
    .await;
    // The agent's own ping comes on schedule, and our ping is answered, while the
    // handler sleeps for an hour.
    let Some(Message::Ping { data }) = raw.recv().await else {
        panic!("expected the agent's ping")
    };
    raw.send(Message::Pong { data }).await;
    raw.send(Message::Ping { data: 77 }).await;
    assert_eq!(raw.recv().await, Some(Message::Pong { data: 77 }));
    raw.send(Message::Request(Request {
        id: "fast".into(),
        method: "echo".into(),
        args: vec![],
        kwargs: vec![],
        timeout: None,
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Message::Response(r)) if r.id == "fast"));
    assert!(!agent.is_closed());
}

#[tokio::test]
async fn malformed_input_ends_only_that_session() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not msgpack", vec![0xc1]),
        ("not a map", vec![0x93, 1, 2, 3]),
        ("unknown type", vec![0x81, 0xa1, b't', 99]),
        (
            "missing field",
            vec![0x82, 0xa1, b't', 20, 0xa2, b'i', b'd', 0xa1, b'x'],
        ),
        ("truncated", vec![0x85, 0xa1, b't', 20]),
        (
            "trailing bytes",
            vec![0x82, 0xa1, b't', 12, 0xa4, b'd', b'a', b't', b'a', 1, 0xff],
        ),
        (
            "second hello",
            redpepper_core::codec::encode(&Message::ManagerHello(ManagerHello {
                version: "0.3.4".into(),
            }))
            .unwrap()
            .to_vec(),
        ),
    ];
    // A healthy session alongside all the broken ones.
    let (healthy_m, healthy_a) = connected(config(), config()).await;
    for (what, bytes) in cases {
        let (mut raw, mgr) = accept_raw_agent(config(), test_router());
        raw.send(Message::AgentHello(AgentHello {
            id: "good2".into(),
            version: "0.3.4".into(),
            credentials: "secret".into(),
        }))
        .await;
        assert!(matches!(raw.recv().await, Some(Message::ManagerHello(_))));
        let session = mgr.await.unwrap().unwrap();
        raw.send_raw(&bytes).await;
        let reason = tokio::time::timeout(WAIT, session.closed())
            .await
            .expect(what);
        assert!(
            matches!(reason, SessionError::Codec(_) | SessionError::Protocol(_)),
            "{what}: {reason}"
        );
        assert!(!reason.to_string().is_empty());
        // The peer is told why, then the connection closes.
        assert!(
            matches!(raw.recv().await, Some(Message::Bye { .. })),
            "{what}"
        );
        assert!(raw.recv().await.is_none(), "{what}");
        assert_eq!(
            healthy_m
                .call("echo", vec![Value::from(what)], vec![])
                .await
                .unwrap(),
            Value::Array(vec![Value::from(what)])
        );
    }
    assert!(healthy_a.call("echo", vec![], vec![]).await.is_ok());
}
