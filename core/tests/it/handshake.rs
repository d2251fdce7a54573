//! Handshake, both roles: success, refusal, version check, hello timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use redpepper_core::codec::{AgentHello, ManagerHello, Message};
use redpepper_core::memory::pair;
use redpepper_core::{PeerHello, Role, Router, Session, SessionConfig, SessionError, AUTH_FAILED};

#[tokio::test]
async fn handshake_success_both_sides_see_each_other() {
    let (manager, agent) = connected(config(), config()).await;
    assert_eq!(manager.role(), Role::Manager);
    assert_eq!(agent.role(), Role::Agent);
    assert_eq!(manager.agent_id(), Some("good1"));
    assert_eq!(manager.peer_version(), redpepper_core::VERSION);
    assert!(
        matches!(agent.peer_hello(), PeerHello::Manager { version } if version == redpepper_core::VERSION)
    );
    assert!(!manager.is_closed() && !agent.is_closed());
}

#[tokio::test]
async fn agent_sends_hello_with_id_version_credentials() {
    let (a, m) = pair(8);
    let mut raw = RawPeer::new(m);
    let agent = tokio::spawn(Session::connect(
        a,
        "web1",
        "s3cret",
        config(),
        Arc::new(Router::new()),
    ));
    let hello = raw_manager_accept(&mut raw, "0.3.4").await;
    assert_eq!(
        hello,
        AgentHello {
            id: "web1".into(),
            version: redpepper_core::VERSION.into(),
            credentials: "s3cret".into()
        }
    );
    // A minor version difference (0.3.4 vs ours) is accepted.
    agent.await.unwrap().expect("accepts 0.3.4");
}

#[tokio::test]
async fn agent_refuses_other_major_version() {
    let (mut raw, agent) = dial_raw_manager(config(), Router::new());
    raw_manager_accept(&mut raw, "1.0.0").await;
    let err = agent.await.unwrap().unwrap_err();
    assert!(
        matches!(err, SessionError::IncompatibleVersion { ref theirs, .. } if theirs == "1.0.0"),
        "{err}"
    );
    assert!(err.to_string().contains("incompatible manager version"));
    // And the connection is closed.
    assert!(raw.recv().await.is_none());
}

#[tokio::test]
async fn agent_surfaces_bye_reason_when_refused() {
    let (mut raw, agent) = dial_raw_manager(config(), Router::new());
    let _ = raw.recv().await;
    raw.send(Message::Bye {
        reason: "authentication failed".into(),
    })
    .await;
    let err = agent.await.unwrap().unwrap_err();
    assert_eq!(err, SessionError::Refused("authentication failed".into()));
}

#[tokio::test]
async fn agent_rejects_other_first_message() {
    let (mut raw, agent) = dial_raw_manager(config(), Router::new());
    let _ = raw.recv().await;
    raw.send(Message::Ping { data: 1 }).await;
    let err = agent.await.unwrap().unwrap_err();
    assert!(
        matches!(err, SessionError::Protocol(ref m) if m.contains("got Ping")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn agent_hello_timeout() {
    let (a, m) = pair(8);
    let _raw = RawPeer::new(m); // reads nothing, answers nothing
    let cfg = SessionConfig {
        hello_timeout: Duration::from_secs(3),
        ..config()
    };
    let err = Session::connect(a, "web1", "s", cfg, Arc::new(Router::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::HelloTimeout {
                expected: "ManagerHello",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn manager_hello_timeout() {
    let cfg = SessionConfig {
        hello_timeout: Duration::from_secs(10),
        ..config()
    };
    let (mut raw, manager) = accept_raw_agent(cfg, Router::new()); // never says hello
    let err = manager.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::HelloTimeout {
                expected: "AgentHello",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        raw.recv().await.is_none(),
        "connection closed after the timeout"
    );
}

#[tokio::test]
async fn manager_refuses_bad_credentials_with_generic_bye() {
    for (id, secret) in [
        ("good1", "wrong"),
        ("evil", "secret"),
        ("bad id!", "secret"),
    ] {
        let (mut raw, manager) = accept_raw_agent(config(), Router::new());
        raw.send(Message::AgentHello(AgentHello {
            id: id.into(),
            version: "0.3.4".into(),
            credentials: secret.into(),
        }))
        .await;
        assert_eq!(
            raw.recv().await,
            Some(Message::Bye {
                reason: AUTH_FAILED.into()
            })
        );
        assert!(raw.recv().await.is_none(), "closed after Bye");
        let err = manager.await.unwrap().unwrap_err();
        assert!(matches!(err, SessionError::AuthFailed { .. }), "{err}");
    }
}

#[tokio::test]
async fn manager_rejects_other_first_message() {
    let (mut raw, manager) = accept_raw_agent(config(), Router::new());
    raw.send(Message::ManagerHello(ManagerHello {
        version: "0.3.4".into(),
    }))
    .await;
    let err = manager.await.unwrap().unwrap_err();
    assert!(
        matches!(err, SessionError::Protocol(ref m) if m.contains("expected AgentHello")),
        "{err}"
    );
}

#[tokio::test]
async fn manager_refuses_a_non_hello_without_decoding_it() {
    let (mut raw, manager) = accept_raw_agent(config(), Router::new());
    // {"t": 20, "args": <reserved marker 0xc1>}: a Request whose body would not even
    // decode. The type alone refuses it, so the error names the type, not the body.
    raw.send_raw(b"\x82\xa1t\x14\xa4args\xc1").await;
    let err = manager.await.unwrap().unwrap_err();
    assert!(
        matches!(err, SessionError::Protocol(ref m) if m.contains("expected AgentHello, got Request")),
        "{err}"
    );
}

#[tokio::test]
async fn manager_refuses_a_first_message_over_the_hello_limit() {
    let (mut raw, manager) = accept_raw_agent(config(), Router::new());
    raw.send(Message::AgentHello(AgentHello {
        id: "good1".into(),
        version: "0.3.4".into(),
        credentials: "x".repeat(redpepper_core::session::HELLO_FRAME_LIMIT),
    }))
    .await;
    let err = manager.await.unwrap().unwrap_err();
    assert!(
        matches!(err, SessionError::Protocol(ref m) if m.contains("exceeds the hello limit of 16384 bytes")),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_agent_id_is_truncated_and_escaped() {
    let (mut raw, manager) = accept_raw_agent(config(), Router::new());
    let id = format!("bad\n\u{1b}[31m\"{}", "x".repeat(5000));
    raw.send(Message::AgentHello(AgentHello {
        id,
        version: "0.3.4".into(),
        credentials: "secret".into(),
    }))
    .await;
    let err = manager.await.unwrap().unwrap_err();
    let SessionError::AuthFailed { agent, .. } = err else {
        panic!("{err}")
    };
    assert!(agent.starts_with("bad\\n\\u{1b}[31m\\\"xxx"), "{agent}");
    assert!(agent.ends_with("more)") && agent.len() < 200, "{agent}");
}
