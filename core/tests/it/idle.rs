//! `Session::idle`: resolves when none of our calls is in flight, or the session ended.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::pin;

use futures::{poll, FutureExt};
use redpepper_core::codec::{Message, Request, Response};
use redpepper_core::{Router, Session, Value};
use tokio::task::JoinHandle;

use crate::support::{agent_on_raw_manager, config, RawPeer, WAIT};

/// Starts a call to `m` on its own task; returns it with the Request the raw peer got
/// (by then the call counts as in flight).
async fn call_in_flight(
    raw: &mut RawPeer,
    agent: &Session,
) -> (
    JoinHandle<Result<Value, redpepper_core::CallError>>,
    Request,
) {
    let a = agent.clone();
    let call = tokio::spawn(async move { a.call("m", vec![], vec![]).await });
    let Some(Message::Request(r)) = raw.recv().await else {
        panic!("expected a Request")
    };
    (call, r)
}

async fn answer(raw: &mut RawPeer, r: &Request, data: i64) {
    raw.send(Message::Response(Response {
        id: r.id.clone(),
        success: true,
        data: Value::from(data),
    }))
    .await;
}

#[tokio::test]
async fn idle_resolves_at_once_with_no_call_in_flight() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    assert!(agent.idle().now_or_never().is_some(), "no call yet");
    let (call, r) = call_in_flight(&mut raw, &agent).await;
    answer(&mut raw, &r, 1).await;
    assert_eq!(call.await.unwrap().unwrap(), Value::from(1));
    assert!(agent.idle().now_or_never().is_some(), "the call is done");
}

#[tokio::test]
async fn idle_waits_for_the_last_answer() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    let (first, r1) = call_in_flight(&mut raw, &agent).await;
    let (second, r2) = call_in_flight(&mut raw, &agent).await;
    let mut idle = pin!(agent.idle());
    assert!(poll!(idle.as_mut()).is_pending(), "two calls in flight");
    answer(&mut raw, &r1, 1).await;
    assert_eq!(first.await.unwrap().unwrap(), Value::from(1));
    assert_eq!(agent.calls_in_flight(), 1);
    assert!(
        poll!(idle.as_mut()).is_pending(),
        "one call still in flight"
    );
    answer(&mut raw, &r2, 2).await;
    tokio::time::timeout(WAIT, idle)
        .await
        .expect("idle once the last call is answered");
    assert_eq!(second.await.unwrap().unwrap(), Value::from(2));
    assert!(!agent.is_closed());
}

#[tokio::test]
async fn idle_resolves_when_the_session_ends() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    // A call never polled again after sending its Request stays counted in flight
    // even after the session ended: only the end of the session can end the wait.
    let mut call = pin!(agent.call("m", vec![], vec![]));
    assert!(poll!(call.as_mut()).is_pending());
    let Some(Message::Request(_)) = raw.recv().await else {
        panic!("expected a Request")
    };
    let mut idle = pin!(agent.idle());
    assert!(poll!(idle.as_mut()).is_pending(), "a call in flight");
    raw.send(Message::Bye {
        reason: "going away".into(),
    })
    .await;
    tokio::time::timeout(WAIT, idle)
        .await
        .expect("idle once the session ended");
    assert!(agent.is_closed());
    assert_eq!(agent.calls_in_flight(), 1, "the call was not polled since");
    assert!(call.await.is_err(), "the call fails with the session");
    assert_eq!(agent.calls_in_flight(), 0);
}
