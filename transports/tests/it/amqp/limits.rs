//! The manager's memory limits through a real broker: a session over its byte budget
//! is closed alone; a hello the manager has no room for (full accept backlog, or the
//! sessions waiting in it holding their byte budget) is answered "busy" at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::amqp as amqp_support;

use amqp_support::*;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};
use redpepper_core::{BoxTransport, Listener, SessionConfig, SessionError, Transport, Value};
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_transports::amqp::{AmqpListener, AmqpOptions, BUSY_REASON};

/// A listener on `env` with `options` (not serving: the test accepts).
async fn listener(env: &Env, options: AmqpOptions) -> AmqpListener {
    AmqpListener::bind(env.url("manager"), QUEUE, None, 1 << 20, options)
        .await
        .unwrap()
}

/// The next transport `listener` accepts.
async fn accept(listener: &mut AmqpListener) -> BoxTransport {
    let connecting = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("nothing accepted in time")
        .unwrap();
    connecting.await.unwrap()
}

/// Publish `body` to the hello queue as session `sid` of `user`, with a `reply_to` as
/// a hello has it or without, as the agent's next messages; returns once the broker
/// confirmed it (it is in the queue).
async fn to_hello_queue(ch: &Channel, user: &str, sid: &str, body: &[u8], hello: bool) {
    let mut props = BasicProperties::default()
        .with_correlation_id(sid.into())
        .with_user_id(ShortString::from(user));
    if hello {
        props = props.with_reply_to(ShortString::from(format!("redpepper.agent.{user}.nowhere")));
    }
    ch.basic_publish(
        ShortString::default(),
        QUEUE.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// An agent whose hello waits long: a refusal that arrives is the manager's answer,
/// not a timeout.
fn patient() -> SessionConfig {
    SessionConfig {
        hello_timeout: WAIT,
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_its_byte_budget_is_closed_and_the_others_go_on() {
    let env = Env::new(RabbitNode::shared(), "byte-budget", &["a1", "a2"]);
    let budget = 64 * 1024;
    let mut listener = listener(
        &env,
        AmqpOptions {
            session_budget: Some(budget),
            ..options()
        },
    )
    .await;

    // Agent a1 says hello; the manager takes the session and does not read it.
    let a = env.dialer("a1").connect().await.unwrap();
    let a_sid = a.session_id().to_owned();
    let (_a_reader, mut a_writer) = a.split();
    a_writer.send(Bytes::from_static(b"hello-a")).await.unwrap();
    let slow = accept(&mut listener).await;

    // More than the budget follows, through the hello queue (where a1's messages go
    // until the manager answers), each in the queue before the next is sent.
    let (_conn, ch) = env.publisher("a1").await;
    for _ in 0..8 {
        to_hello_queue(&ch, "a1", &a_sid, &[7; 10 * 1024], false).await;
    }

    // Agent a2's hello comes after them in the same queue: once its session is
    // accepted, the flood was handled.
    let b = env.dialer("a2").connect().await.unwrap();
    let (mut b_reader, mut b_writer) = b.split();
    b_writer.send(Bytes::from_static(b"hello-b")).await.unwrap();
    let fine = accept(&mut listener).await;

    let (mut slow_reader, _slow_writer) = slow.split();
    let e = tokio::time::timeout(WAIT, slow_reader.next())
        .await
        .unwrap()
        .expect("the slow session ended without an error")
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("budget of {budget} bytes")), "{e}");
    assert!(e.contains(&a_sid), "{e}");

    // The other session is unaffected, both ways.
    let (mut fine_reader, mut fine_writer) = fine.split();
    let first = tokio::time::timeout(WAIT, fine_reader.next())
        .await
        .unwrap();
    assert_eq!(first.unwrap().unwrap(), "hello-b");
    fine_writer
        .send(Bytes::from_static(b"welcome"))
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, b_reader.next()).await.unwrap();
    assert_eq!(answer.unwrap().unwrap(), "welcome");
    b_writer.send(Bytes::from_static(b"thanks")).await.unwrap();
    let next = tokio::time::timeout(WAIT, fine_reader.next())
        .await
        .unwrap();
    assert_eq!(next.unwrap().unwrap(), "thanks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_accept_backlog_answers_busy_at_once() {
    let env = Env::new(RabbitNode::shared(), "busy-backlog", &["a1", "a2"]);
    let listener = listener(
        &env,
        AmqpOptions {
            accept_backlog: 1,
            ..options()
        },
    )
    .await;
    // One session waits in the backlog (nobody accepts yet).
    busy_then_served(
        &env,
        listener,
        "waiting0000000000000000000000001",
        b"not a hello",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_waiting_to_be_accepted_share_a_byte_budget() {
    let env = Env::new(RabbitNode::shared(), "busy-bytes", &["a1", "a2"]);
    let listener = listener(
        &env,
        AmqpOptions {
            pending_budget: Some(1000),
            ..options()
        },
    )
    .await;
    // A waiting session holds nearly all of it.
    busy_then_served(
        &env,
        listener,
        "waiting0000000000000000000000002",
        &[0; 990],
    )
    .await;
}

/// Broker user a1 puts session `waiting` with `payload` in the hello queue, which
/// fills the not-yet-accepted sessions' room: agent a2 is refused as busy. Then
/// `listener` is served: the waiting session is accepted (and fails its handshake,
/// it carries no hello), which makes room, and a2 gets a working session.
async fn busy_then_served(env: &Env, listener: AmqpListener, waiting: &str, payload: &[u8]) {
    let (_conn, ch) = env.publisher("a1").await;
    to_hello_queue(&ch, "a1", waiting, payload, true).await;
    let (refused, _) = agent(&env.dialer("a2"), "a2", "good", patient()).await;
    assert_eq!(
        refused.unwrap_err(),
        SessionError::Refused(BUSY_REASON.into())
    );

    let mut manager = TestManager::serve(listener, config());
    assert!(
        manager.next().await.is_err(),
        "the waiting session said hello?"
    );
    let (session, _) = agent(&env.dialer("a2"), "a2", "good", patient()).await;
    let session = session.unwrap();
    let on_manager = manager.next().await.unwrap();
    let v = on_manager
        .call("echo", strs(&["in"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["in"])));
    session.close("done").await;
}
