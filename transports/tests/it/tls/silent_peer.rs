//! A peer that goes silent over real TLS (connection open, nothing read or answered):
//! the manager's pending call fails once the keepalive gives up, it never hangs, and a
//! second agent on the same listener keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;
use redpepper_core::memory::AcceptAll;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use redpepper_core::codec::{decode, encode, AgentHello, Message};
use redpepper_core::transport::{Dialer, Transport};
use redpepper_core::{echo_reply, CallError, Router, Session, SessionConfig, Value};

fn keepalive() -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(300),
        // Far beyond the test's own limit: only the keepalive can end the call.
        call_timeout: Duration::from_secs(3600),
        ..SessionConfig::default()
    }
}

fn echo_router() -> Arc<Router> {
    Arc::new(Router::new().method(
        "echo",
        |ctx| async move { Ok(echo_reply(ctx.args, ctx.kwargs)) },
    ))
}

#[tokio::test]
async fn a_silent_peer_fails_the_pending_call_and_others_keep_working() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let dial = dialer(&agent_tls(&c), port(&l), MIB);

    // The silent agent: says hello over real TLS, reads the ManagerHello, then
    // neither reads nor writes again while keeping the connection open.
    let silent = async {
        let (mut r, mut w) = dial.dial().await.unwrap().split();
        let hello = Message::AgentHello(AgentHello {
            id: "silent".into(),
            version: "0.4.0".into(),
            credentials: "s".into(),
        });
        w.send(encode(&hello).unwrap()).await.unwrap();
        let answer = within(10, r.next()).await.unwrap().unwrap();
        assert!(matches!(decode(&answer).unwrap(), Message::ManagerHello(_)));
        (r, w)
    };
    let accepted = async {
        let t = within(10, accept_one(&mut l)).await.unwrap();
        Session::accept(t, keepalive(), &AcceptAll, echo_router())
            .await
            .unwrap()
    };
    let (_silent_halves, manager_side) = tokio::join!(silent, accepted);

    let err = within(
        60,
        manager_side.call("echo", vec![Value::from("hi")], vec![]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CallError::SessionClosed(_)),
        "expected the session's end, got {err:?}"
    );
    assert!(err.to_string().contains("ping"), "{err}");

    // Another agent on the same listener is served normally.
    let healthy = async {
        Session::connect(
            dial.dial().await.unwrap(),
            "healthy",
            "s",
            keepalive(),
            echo_router(),
        )
        .await
        .unwrap()
    };
    let accepted = async {
        let t = within(10, accept_one(&mut l)).await.unwrap();
        Session::accept(t, keepalive(), &AcceptAll, echo_router())
            .await
            .unwrap()
    };
    let (_agent, manager_side) = tokio::join!(healthy, accepted);
    let reply = within(
        10,
        manager_side.call("echo", vec![Value::from("hi")], vec![]),
    )
    .await
    .unwrap();
    assert!(reply.to_string().contains("hi"), "{reply:?}");
}
