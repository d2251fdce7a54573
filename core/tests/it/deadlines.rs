//! A call's deadline travels with it: the Request carries `timeout`, and the receiving
//! session cancels the handler once it has passed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use redpepper_core::codec::{Message, Request, Response};
use redpepper_core::{CallError, Router, Value};
use tokio::sync::oneshot;

use crate::support::{agent_on_raw_manager, config, connected, WAIT};

/// Sends `()` when dropped: tells a test that a handler's future was dropped.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn request(id: &str, method: &str, timeout: Option<f64>) -> Message {
    Message::Request(Request {
        id: id.into(),
        method: method.into(),
        args: vec![],
        kwargs: vec![],
        timeout,
    })
}

#[tokio::test]
async fn a_call_sends_its_timeout() {
    let (mut raw, agent) = agent_on_raw_manager(config(), Router::new()).await;
    let a = agent.clone();
    let call = tokio::spawn(async move {
        a.call_with_timeout("m", vec![], vec![], Duration::from_millis(2500))
            .await
    });
    let Some(Message::Request(r)) = raw.recv().await else {
        panic!("expected a Request")
    };
    assert_eq!(r.timeout, Some(2.5));
    raw.send(Message::Response(Response {
        id: r.id,
        success: true,
        data: Value::from(1),
    }))
    .await;
    assert_eq!(call.await.unwrap().unwrap(), Value::from(1));
    // `call` sends the session's default call timeout.
    let a = agent.clone();
    let _call = tokio::spawn(async move { a.call("m", vec![], vec![]).await });
    let Some(Message::Request(r)) = raw.recv().await else {
        panic!("expected a Request")
    };
    assert_eq!(r.timeout, Some(config().call_timeout.as_secs_f64()));
}

/// A router whose `hang` never finishes and signals when its future is dropped.
fn hanging_router() -> (Router, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (dropped_tx, dropped_rx) = tokio::sync::mpsc::unbounded_channel();
    let router = Router::new().method("hang", move |_ctx| {
        let (tx, rx) = oneshot::channel();
        let dropped_tx = dropped_tx.clone();
        tokio::spawn(async move {
            if rx.await.is_ok() {
                let _ = dropped_tx.send(());
            }
        });
        let guard = DropSignal(Some(tx));
        async move {
            let _guard = guard;
            futures::future::pending::<()>().await;
            Ok(Value::Nil)
        }
    });
    (router, dropped_rx)
}

#[tokio::test]
async fn the_handler_is_cancelled_at_the_deadline_and_the_answer_says_so() {
    let (router, mut dropped) = hanging_router();
    let (mut raw, _agent) = agent_on_raw_manager(config(), router).await;
    raw.send(request("r1", "hang", Some(0.05))).await;
    let Some(Message::Response(resp)) = raw.recv().await else {
        panic!("expected a Response")
    };
    assert_eq!(resp.id, "r1");
    assert!(!resp.success);
    assert_eq!(resp.data, Value::from("deadline of 0.05s exceeded"));
    tokio::time::timeout(WAIT, dropped.recv())
        .await
        .expect("the handler's future is dropped")
        .unwrap();
}

#[tokio::test]
async fn without_a_timeout_nothing_is_cancelled() {
    // RedPepper 0.3.4 sends no `timeout`: its handlers run until they finish.
    let (router, mut dropped) = hanging_router();
    let (mut raw, _agent) = agent_on_raw_manager(config(), router).await;
    raw.send(request("r1", "hang", None)).await;
    // A later request with a deadline is answered (and its own handler dropped) while
    // the first one still runs.
    raw.send(request("r2", "hang", Some(0.01))).await;
    let Some(Message::Response(resp)) = raw.recv().await else {
        panic!("expected a Response")
    };
    assert_eq!(resp.id, "r2");
    dropped.recv().await.unwrap();
    raw.send(Message::Ping { data: 9 }).await;
    assert_eq!(raw.recv().await, Some(Message::Pong { data: 9 }));
    assert!(
        dropped.try_recv().is_err(),
        "the handler without a deadline was cancelled"
    );
}

#[tokio::test]
async fn huge_and_infinite_timeouts_are_clamped_not_a_panic() {
    let router = Router::new().method("later", |_ctx| async move {
        tokio::task::yield_now().await;
        Ok(Value::from("done"))
    });
    let (mut raw, agent) = agent_on_raw_manager(config(), router).await;
    for (n, t) in [f64::INFINITY, 1e300, f64::MAX, 1.8e19, 86400.0 * 365.0]
        .into_iter()
        .enumerate()
    {
        raw.send(request(&format!("r{n}"), "later", Some(t))).await;
        let Some(Message::Response(resp)) = raw.recv().await else {
            panic!("expected a Response")
        };
        assert_eq!(
            (resp.id, resp.success, resp.data),
            (format!("r{n}"), true, Value::from("done"))
        );
    }
    assert!(!agent.is_closed());
    // And the caller side: a Duration too large for an Instant.
    let (manager, agent) = connected(config(), config()).await;
    let got = manager
        .call_with_timeout("echo", vec![Value::from("x")], vec![], Duration::MAX)
        .await
        .unwrap();
    assert_eq!(got, Value::Array(vec![Value::from("x")]));
    drop(agent);
}

#[tokio::test]
async fn a_caller_that_gave_up_drops_the_late_answer_and_goes_on() {
    // Between two of our sessions: the caller times out, the peer cancels its handler
    // and answers "deadline exceeded", which the caller drops (counted, not an unknown
    // id); the session goes on.
    let (manager, agent) = connected(config(), config()).await;
    let err = manager
        .call_with_timeout("hang", vec![], vec![], Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    let got = manager
        .call("echo_later", vec![Value::from("y")], vec![])
        .await
        .unwrap();
    assert_eq!(got, Value::Array(vec![Value::from("y")]));
    assert!(!manager.is_closed() && !agent.is_closed());
}
