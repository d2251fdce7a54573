//! Calls both ways, notifications, Bye, concurrency and failure of pending calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::future::join_all;
use redpepper_core::codec::{Message, Notification, Request, Response};
use redpepper_core::memory::pair;
use redpepper_core::{CallError, Event, Router, Session, SessionConfig, SessionError, Value};
use tokio::sync::mpsc;

fn s(v: &str) -> Value {
    Value::from(v)
}

#[tokio::test]
async fn calls_both_ways() {
    let (manager, agent) = connected(config(), config()).await;
    let v = manager
        .call("echo", vec![s("a"), Value::from(1)], vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![s("a"), Value::from(1)]));
    let v = agent.call("echo", vec![s("b")], vec![]).await.unwrap();
    assert_eq!(v, Value::Array(vec![s("b")]));
}

#[tokio::test]
async fn unknown_method_and_handler_errors() {
    let mcfg = SessionConfig {
        expose_errors: false,
        ..config()
    };
    let (manager, agent) = connected(mcfg, config()).await;
    // Agent side exposes errors (default), manager side hides them.
    assert_eq!(
        manager.call("nope", vec![], vec![]).await,
        Err(CallError::Remote("Method nope not found".into()))
    );
    assert_eq!(
        manager.call("fail", vec![], vec![]).await,
        Err(CallError::Remote("boom".into()))
    );
    assert_eq!(
        agent.call("fail", vec![], vec![]).await,
        Err(CallError::Remote("RPC call failed".into()))
    );
    assert_eq!(
        manager.call("panic", vec![], vec![]).await,
        Err(CallError::Remote("RPC call failed".into()))
    );
    assert_eq!(
        manager.call("panic_later", vec![], vec![]).await,
        Err(CallError::Remote("RPC call failed".into()))
    );
    // The session survives all of that, inline answers and task answers alike.
    assert!(manager.call("echo", vec![], vec![]).await.is_ok());
    assert_eq!(
        manager.call("echo_later", vec![s("x")], vec![]).await,
        Ok(Value::Array(vec![s("x")]))
    );
}

#[tokio::test]
async fn a_thousand_concurrent_calls_are_matched() {
    let (manager, agent) = connected(config(), config()).await;
    let calls = (0..1000i64).map(|i| {
        let m = manager.clone();
        async move { (i, m.call("echo", vec![Value::from(i)], vec![]).await) }
    });
    let calls2 = (0..1000i64).map(|i| {
        let a = agent.clone();
        async move { (i, a.call("echo", vec![Value::from(-i)], vec![]).await) }
    });
    let (r1, r2) = tokio::join!(join_all(calls), join_all(calls2));
    for (i, r) in r1 {
        assert_eq!(r.unwrap(), Value::Array(vec![Value::from(i)]));
    }
    for (i, r) in r2 {
        assert_eq!(r.unwrap(), Value::Array(vec![Value::from(-i)]));
    }
    assert_eq!(manager.calls_in_flight(), 0);
}

#[tokio::test]
async fn notifications_both_ways() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tx2 = tx.clone();
    let router = Arc::new(Router::new().on_notification(move |session, n| {
        tx.send((session.role(), n)).unwrap();
    }));
    let (a, m) = pair(16);
    let r2 = router.clone();
    let mgr = tokio::spawn(async move { Session::accept(m, config(), &TestAuth, r2).await });
    let agent = Session::connect(a, "good1", "secret", config(), router)
        .await
        .unwrap();
    let manager = mgr.await.unwrap().unwrap();
    drop(tx2);
    agent
        .notify(
            "command_progress",
            Value::Map(vec![(s("current"), Value::from(0))]),
        )
        .await
        .unwrap();
    manager.notify("hello", Value::Nil).await.unwrap();
    let mut got = [rx.recv().await.unwrap(), rx.recv().await.unwrap()];
    got.sort_by_key(|(role, _)| format!("{role:?}"));
    assert_eq!(
        got[0].1,
        Notification {
            r#type: "hello".into(),
            data: Value::Nil
        }
    );
    assert_eq!(got[1].1.r#type, "command_progress");
}

#[tokio::test]
async fn close_sends_bye_and_peer_sees_reason() {
    let (manager, agent) = connected(config(), config()).await;
    let reason = manager.close("server shutting down").await;
    assert_eq!(reason, SessionError::Closed("server shutting down".into()));
    assert_eq!(
        agent.closed().await,
        SessionError::ByeReceived("server shutting down".into())
    );
    assert!(matches!(
        agent.call("echo", vec![], vec![]).await,
        Err(CallError::SessionClosed(_))
    ));
}

#[tokio::test]
async fn pending_calls_fail_when_peer_goes_away() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let a = agent.clone();
            tokio::spawn(async move { a.call("x", vec![], vec![]).await })
        })
        .collect();
    for _ in 0..10 {
        assert!(matches!(raw.recv().await, Some(Message::Request(_))));
    }
    drop(raw); // the peer vanishes without a word
    for c in calls {
        let err = tokio::time::timeout(WAIT, c)
            .await
            .expect("no hang")
            .unwrap()
            .unwrap_err();
        assert_eq!(err, CallError::SessionClosed(SessionError::PeerClosed));
    }
}

#[tokio::test(start_paused = true)]
async fn call_timeout_and_late_response_is_dropped() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    let err = agent
        .call_with_timeout("slow", vec![], vec![], Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { ref method, .. } if method == "slow"));
    let Some(Message::Request(Request { id, .. })) = raw.recv().await else {
        panic!()
    };
    // Late and unknown responses are dropped; the session goes on.
    raw.send(Message::Response(Response {
        id,
        success: true,
        data: Value::Nil,
    }))
    .await;
    raw.send(Message::Response(Response {
        id: "ffff".into(),
        success: true,
        data: Value::Nil,
    }))
    .await;
    raw.send(Message::Ping { data: 5 }).await;
    assert_eq!(raw.recv().await, Some(Message::Pong { data: 5 }));
    assert!(!agent.is_closed());
}

#[tokio::test]
async fn request_ids_are_unique_hex_and_response_matches() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    let c1 = {
        let a = agent.clone();
        tokio::spawn(async move { a.call("m", vec![], vec![]).await })
    };
    let Some(Message::Request(r1)) = raw.recv().await else {
        panic!()
    };
    let c2 = {
        let a = agent.clone();
        tokio::spawn(async move { a.call("m", vec![], vec![]).await })
    };
    let Some(Message::Request(r2)) = raw.recv().await else {
        panic!()
    };
    assert_ne!(r1.id, r2.id);
    assert!(r1.id.len() == 32 && r1.id.chars().all(|c| c.is_ascii_hexdigit()));
    // Answer out of order.
    raw.send(Message::Response(Response {
        id: r2.id,
        success: true,
        data: s("two"),
    }))
    .await;
    raw.send(Message::Response(Response {
        id: r1.id,
        success: false,
        data: s("one failed"),
    }))
    .await;
    assert_eq!(c2.await.unwrap(), Ok(s("two")));
    assert_eq!(
        c1.await.unwrap(),
        Err(CallError::Remote("one failed".into()))
    );
}

#[tokio::test]
async fn too_many_requests_are_refused_and_reading_goes_on() {
    let (a, m) = pair(16);
    let mut raw = RawPeer::new(m);
    let cfg = SessionConfig {
        max_concurrent_requests: 2,
        ..config()
    };
    let agent = tokio::spawn(Session::connect(
        a,
        "good1",
        "s",
        cfg,
        Arc::new(test_router()),
    ));
    raw_manager_accept(&mut raw, "0.3.4").await;
    let _agent = agent.await.unwrap().unwrap();
    let req = |id: &str| {
        Message::Request(Request {
            id: id.into(),
            method: "hang".into(),
            args: vec![],
            kwargs: vec![],
            timeout: None,
        })
    };
    raw.send(req("a")).await;
    raw.send(req("b")).await;
    raw.send(req("c")).await;
    raw.send(Message::Ping { data: 9 }).await;
    assert_eq!(
        raw.recv().await,
        Some(Message::Response(Response {
            id: "c".into(),
            success: false,
            data: s("too many requests in flight")
        }))
    );
    assert_eq!(raw.recv().await, Some(Message::Pong { data: 9 }));
}

#[tokio::test]
async fn too_large_call_is_refused_locally() {
    let small = SessionConfig {
        max_message_size: 100,
        ..config()
    };
    let (manager, _agent) = connected(small, config()).await;
    let err = manager
        .call("echo", vec![s(&"x".repeat(200))], vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Encode(ref m) if m.contains("exceeds max_message_size 100")),
        "{err}"
    );
    assert!(manager.call("echo", vec![], vec![]).await.is_ok());
}

#[tokio::test]
async fn events_established_and_closed() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = Arc::new(Router::new().on_event(move |_s, e| {
        tx.send(format!("{e:?}")).unwrap();
    }));
    let (a, m) = pair(16);
    let mgr = tokio::spawn(async move {
        Session::accept(m, config(), &TestAuth, Arc::new(Router::new())).await
    });
    let agent = Session::connect(a, "good1", "secret", config(), router)
        .await
        .unwrap();
    let manager = mgr.await.unwrap().unwrap();
    assert_eq!(
        rx.recv().await.unwrap(),
        format!("{:?}", Event::Established)
    );
    manager.close("bye now").await;
    agent.closed().await;
    assert!(rx
        .recv()
        .await
        .unwrap()
        .contains("ByeReceived(\"bye now\")"));
}
