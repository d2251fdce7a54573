//! `Session::barrier`: a Ping behind the queued messages whose Pong proves the peer
//! read them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use redpepper_core::codec::Message;
use redpepper_core::memory::pair;
use redpepper_core::{CallError, Router, Session, Value};

use crate::support::{agent_on_raw_manager, config, RawPeer, TestAuth, WAIT};

#[tokio::test]
async fn the_pong_comes_after_the_peer_read_every_notification_before_it() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let manager_router = Arc::new(Router::new().on_notification(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let (a, m) = pair(64);
    let manager =
        tokio::spawn(async move { Session::accept(m, config(), &TestAuth, manager_router).await });
    let agent = Session::connect(a, "good1", "secret", config(), Arc::new(Router::new()))
        .await
        .unwrap();
    let _manager = manager.await.unwrap().unwrap();
    for round in 1..=5 {
        for i in 0..200 {
            agent.notify("n", Value::from(i)).await.unwrap();
        }
        tokio::time::timeout(WAIT, agent.barrier())
            .await
            .expect("barrier answered")
            .unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 200 * round);
    }
}

#[tokio::test]
async fn the_barrier_ping_is_written_after_the_notifications_and_waits_for_its_pong() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    agent.notify("result", Value::from(1)).await.unwrap();
    let barrier = tokio::spawn({
        let agent = agent.clone();
        async move { agent.barrier().await }
    });
    let Some(Message::Notification(n)) = raw.recv().await else {
        panic!("the notification comes first")
    };
    assert_eq!(n.r#type, "result");
    let Some(Message::Ping { data }) = raw.recv().await else {
        panic!("then the barrier's ping")
    };
    // A second barrier while that ping is outstanding waits for a ping of its own.
    agent.notify("result", Value::from(2)).await.unwrap();
    let second = tokio::spawn({
        let agent = agent.clone();
        async move { agent.barrier().await }
    });
    let Some(Message::Notification(_)) = raw.recv().await else {
        panic!("the second notification")
    };
    raw.send(Message::Pong { data }).await;
    tokio::time::timeout(WAIT, barrier)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!second.is_finished());
    let Some(Message::Ping { data: data2 }) = raw.recv().await else {
        panic!("a second ping for the second barrier")
    };
    raw.send(Message::Pong { data: data2 }).await;
    tokio::time::timeout(WAIT, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_barrier_fails_when_the_session_ends_before_the_pong() {
    let (raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    let barrier = tokio::spawn({
        let agent = agent.clone();
        async move { agent.barrier().await }
    });
    let RawPeer { reader, writer } = raw;
    drop((reader, writer));
    let result = tokio::time::timeout(WAIT, barrier).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(CallError::SessionClosed(_))),
        "{result:?}"
    );
    assert!(matches!(
        agent.barrier().await,
        Err(CallError::SessionClosed(_))
    ));
}
