//! The AMQP transport under the session layer, through a real RabbitMQ node (private,
//! started by the test, shared by the tests of this file, one vhost per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::amqp as amqp_support;

use std::time::Duration;

use amqp_support::*;
use redpepper_core::{CallError, SessionConfig, SessionError, TransportKind, Value, AUTH_FAILED};
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_transports::amqp::{AmqpDialer, AmqpListener};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_session_hello_pings_calls_both_ways_notifications_bye() {
    let env = Env::new(RabbitNode::shared(), "full-session", &["a1"]);
    let pinging = SessionConfig {
        ping_interval: Duration::from_millis(200),
        ..config()
    };
    let mut manager = env.manager(pinging.clone()).await;

    // Refused: wrong secret. The agent hears RedPepper's generic reason.
    let (refused, _) = agent(&env.dialer("a1"), "a1", "bad", config()).await;
    assert_eq!(
        refused.unwrap_err(),
        SessionError::Refused(AUTH_FAILED.into())
    );
    let on_manager = manager.next().await.unwrap_err();
    assert!(
        matches!(&on_manager, SessionError::AuthFailed { agent, .. } if agent == "a1"),
        "{on_manager:?}"
    );

    // Accepted.
    let (agent_side, mut agent_seen) = agent(&env.dialer("a1"), "a1", "good", pinging).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();
    assert_eq!(manager_side.agent_id(), Some("a1"));
    let peer = manager_side.peer();
    assert_eq!(peer.kind, TransportKind::Amqp);
    assert_eq!(peer.remote_addr, None);
    assert_eq!(peer.broker_user.as_deref(), Some("a1"));

    // Pings both ways.
    next_rtt(&mut agent_seen).await;
    next_rtt(&mut manager.seen).await;

    // Calls both ways, success and failure.
    let v = manager_side
        .call("echo", strs(&["to", "agent"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["to", "agent"])));
    let v = agent_side
        .call(
            "echo",
            strs(&["to", "manager"]),
            vec![("n".into(), Value::from(7))],
        )
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["to", "manager"])));
    let e = agent_side.call("fail", vec![], vec![]).await.unwrap_err();
    assert_eq!(e, CallError::Remote("boom".into()));
    let e = manager_side.call("nope", vec![], vec![]).await.unwrap_err();
    assert_eq!(e, CallError::Remote("Method nope not found".into()));

    // Many calls in flight at once, both ways, answered in any order.
    let calls = (0..200).map(|i| {
        let (m, a) = (manager_side.clone(), agent_side.clone());
        async move {
            let arg = Value::from(i);
            let (x, y) = tokio::join!(
                m.call("echo", vec![arg.clone()], vec![]),
                a.call("echo", vec![arg.clone()], vec![])
            );
            assert_eq!(x.unwrap(), Value::Array(vec![arg.clone()]));
            assert_eq!(y.unwrap(), Value::Array(vec![arg]));
        }
    });
    futures::future::join_all(calls).await;

    // Notifications both ways.
    agent_side
        .notify("command_progress", Value::from("halfway"))
        .await
        .unwrap();
    let n = next_notification(&mut manager.seen).await;
    assert_eq!(
        (n.r#type.as_str(), n.data),
        ("command_progress", Value::from("halfway"))
    );
    manager_side.notify("hint", Value::from(1)).await.unwrap();
    let n = next_notification(&mut agent_seen).await;
    assert_eq!((n.r#type.as_str(), n.data), ("hint", Value::from(1)));

    // Bye: the agent leaves, the manager hears why.
    agent_side.close("shutting down").await;
    let reason = tokio::time::timeout(WAIT, manager_side.closed())
        .await
        .unwrap();
    assert_eq!(reason, SessionError::ByeReceived("shutting down".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_bye_and_end_of_stream_reach_the_agent() {
    let env = Env::new(RabbitNode::shared(), "manager-bye", &["a1"]);
    let mut manager = env.manager(config()).await;
    let (agent_side, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();
    let pending = tokio::spawn({
        let a = agent_side.clone();
        async move { a.call("hang", vec![], vec![]).await }
    });
    manager_side.close("server shutting down").await;
    let reason = tokio::time::timeout(WAIT, agent_side.closed())
        .await
        .unwrap();
    assert_eq!(
        reason,
        SessionError::ByeReceived("server shutting down".into())
    );
    let e = pending.await.unwrap().unwrap_err();
    assert!(matches!(e, CallError::SessionClosed(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_agent_fails_the_managers_call_at_once() {
    let env = Env::new(RabbitNode::shared(), "vanished", &["a1"]);
    let mut manager = env.manager(config()).await;
    let (agent_side, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();

    // The agent's broker connection dies without a Bye (its process was killed, say):
    // the broker deletes its exclusive inbox.
    kill_connections_of(env.node, &env.vhost, "a1");
    let reason = tokio::time::timeout(WAIT, agent_side.closed())
        .await
        .unwrap();
    assert!(
        reason.to_string().contains("broker connection lost"),
        "{reason}"
    );
    // The broker deletes the exclusive inbox right after the connection; a message
    // routed to it while it is being deleted is lost with it (no return).
    wait_until_no_queue(env.node, &env.vhost, "redpepper.agent.a1.").await;

    // The manager does not know yet; its next message comes back unroutable and the
    // call fails at once (not after the 60 s call timeout, not after a ping timeout).
    let e = manager_side.call("echo", vec![], vec![]).await.unwrap_err();
    let CallError::SessionClosed(reason) = e else {
        panic!("expected the session to close, got {e:?}")
    };
    let text = reason.to_string();
    assert!(text.contains("returned a message"), "{text}");
    assert!(text.contains("peer is gone"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_back_on_the_broker_tells_an_agent_its_session_ended() {
    let env = Env::new(RabbitNode::shared(), "orphaned", &["a1"]);
    // No pings: the agent never publishes on its own, so only the manager can tell it.
    let mut manager = env.manager(config()).await;
    let (agent_side, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();

    // Only the manager's broker connection is lost (its node died, say, while the
    // agent's connection is to another node): the session, which lives on the
    // manager's instance queue, is gone, and the agent's connection is not.
    kill_connections_of(env.node, &env.vhost, "manager");
    let on_manager = tokio::time::timeout(WAIT, manager_side.closed())
        .await
        .unwrap();
    assert!(
        on_manager.to_string().contains("broker connection lost"),
        "{on_manager}"
    );
    // Once reconnected, the manager publishes the session's end to the agent's inbox.
    let on_agent = tokio::time::timeout(WAIT, agent_side.closed())
        .await
        .unwrap();
    assert_eq!(on_agent, SessionError::PeerClosed);

    // The agent says hello again and is served.
    let (again, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let _again = again.unwrap();
    let manager_side = manager.next().await.unwrap();
    let v = manager_side
        .call("echo", strs(&["back"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["back"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_message_size_is_enforced_on_receive() {
    let env = Env::new(RabbitNode::shared(), "max-size", &["a1"]);
    let small = SessionConfig {
        max_message_size: 4096,
        ..config()
    };
    let mut manager = env.manager(small).await;
    let (agent_side, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();
    let big = Value::from("x".repeat(8192));
    let e = agent_side
        .call("echo", vec![big], vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::SessionClosed(_)), "{e:?}");
    let reason = tokio::time::timeout(WAIT, manager_side.closed())
        .await
        .unwrap();
    assert!(
        reason.to_string().contains("exceeds max_message_size 4096"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_manager_the_hello_comes_back_at_once() {
    let env = Env::new(RabbitNode::shared(), "no-manager", &["a1"]);
    let slow_hello = SessionConfig {
        hello_timeout: WAIT,
        ..config()
    };
    // Several times: a confirm lost on the way (lapin finishing a publish during its
    // first poll) once made about one hello in seven wait for the hello timeout.
    for _ in 0..20 {
        let (result, _) = agent(&env.dialer("a1"), "a1", "good", slow_hello.clone()).await;
        let e = result.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("for queue redpepper.manager"), "{text}");
        assert!(!matches!(e, SessionError::HelloTimeout { .. }), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listener_keeps_its_sessions_and_turns_hellos_away() {
    let env = Env::new(RabbitNode::shared(), "listener-drop", &["a1", "a2"]);
    let mut manager = env.manager(config()).await;
    let (agent_side, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let _manager_side = manager.next().await.unwrap();
    manager.task.abort();
    let _ = manager.task.await;

    // The established session still works both ways...
    let v = agent_side
        .call("echo", strs(&["still"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["still"])));
    // ...and a new agent is turned away at once (the hello queue is gone).
    let (refused, _) = agent(&env.dialer("a2"), "a2", "good", config()).await;
    let text = refused.unwrap_err().to_string();
    assert!(text.contains("for queue redpepper.manager"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_manager_on_the_same_queue_is_refused_with_a_reason() {
    let env = Env::new(RabbitNode::shared(), "two-managers", &[]);
    let _first = env.manager(config()).await;
    let e = AmqpListener::bind(env.url("manager"), QUEUE, None, 1 << 20, options())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("RESOURCE_LOCKED"), "{e}");
    assert!(e.contains("is another manager running"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_refused_by_the_broker_fails_to_bind() {
    // Unlike a broker that is down, these need an operator: bind fails at once.
    let env = Env::new(RabbitNode::shared(), "manager-refusals", &[]);
    for (url, expected) in [
        (
            env.node.amqp_url("manager", "wrong", &env.vhost),
            "ACCESS_REFUSED",
        ),
        (
            env.node
                .amqp_url("manager", &password("manager"), "no-such-vhost"),
            "vhost",
        ),
    ] {
        let url = redpepper_transports::amqp::BrokerUrl::parse("amqp.url", &url).unwrap();
        let e = AmqpListener::bind(url, QUEUE, None, 1 << 20, options())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_missing_permissions_are_named() {
    let env = Env::new(RabbitNode::shared(), "refusals", &["a1", "a2"]);
    let url = redpepper_transports::amqp::BrokerUrl::parse(
        "amqp.url",
        &env.node.amqp_url("a1", "wrong", &env.vhost),
    )
    .unwrap();
    let e = AmqpDialer::new(url, QUEUE, "a1", None, 1 << 20)
        .unwrap()
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ACCESS_REFUSED"), "{e}");
    assert!(e.contains("wrong broker user or password"), "{e}");

    // a2 may only declare redpepper.agent.a2.* queues: claiming to be a1 fails.
    let e = AmqpDialer::new(env.url("a2"), QUEUE, "a1", None, 1 << 20)
        .unwrap()
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("declaring inbox queue redpepper.agent.a1."),
        "{e}"
    );
    assert!(e.contains("ACCESS_REFUSED"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_through_the_brokers_tls_listener() {
    let node = RabbitNode::shared();
    let env = Env::new(node, "amqps", &["a1"]);
    let tls = trusting(node.ca_cert());
    let listener = AmqpListener::bind(
        env.tls_url("manager"),
        QUEUE,
        Some(tls.clone()),
        1 << 20,
        options(),
    )
    .await
    .unwrap();
    assert!(
        redpepper_core::Listener::describe(&listener).starts_with("amqps://manager@localhost:"),
        "{}",
        redpepper_core::Listener::describe(&listener)
    );
    let mut manager = TestManager::serve(listener, config());
    let dialer = AmqpDialer::new(env.tls_url("a1"), QUEUE, "a1", Some(tls), 1 << 20).unwrap();
    let (agent_side, _seen) = agent(&dialer, "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();
    let v = manager_side
        .call("echo", strs(&["tls"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["tls"])));
    agent_side.close("shutting down").await;

    // A broker certificate from an unknown CA is refused.
    let scratch = tempfile::tempdir().unwrap();
    let stranger = redpepper_tests::TestCerts::generate(scratch.path());
    let dialer = AmqpDialer::new(
        env.tls_url("a1"),
        QUEUE,
        "a1",
        Some(trusting(&stranger.ca_cert)),
        1 << 20,
    )
    .unwrap();
    let e = dialer.connect().await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_agents_on_one_manager() {
    let ids: Vec<String> = (0..100).map(|i| format!("agent-{i:03}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let env = Env::new(RabbitNode::shared(), "hundred", &id_refs);
    let mut manager = env.manager(config()).await;
    let connecting = ids.iter().map(|id| {
        let dialer = env.dialer(id);
        let id = id.clone();
        async move {
            let (s, _seen) = agent(&dialer, &id, "good", config()).await;
            s.unwrap()
        }
    });
    let agents = futures::future::join_all(connecting).await;
    let mut sessions = Vec::new();
    for _ in 0..100 {
        sessions.push(manager.next().await.unwrap());
    }
    let calls = sessions.iter().map(|s| async move {
        let id = s.agent_id().unwrap().to_owned();
        let v = s.call("echo", strs(&[&id]), vec![]).await.unwrap();
        assert_eq!(v, Value::Array(strs(&[&id])));
        assert_eq!(s.peer().broker_user.as_deref(), Some(id.as_str()));
    });
    futures::future::join_all(calls).await;
    futures::future::join_all(agents.iter().map(|a| a.close("done"))).await;
}

/// Close every broker connection of `user` in `vhost` (as a crash would).
fn kill_connections_of(node: &RabbitNode, vhost: &str, user: &str) {
    tokio::task::block_in_place(|| kill_connections_blocking(node, vhost, user));
}

fn kill_connections_blocking(node: &RabbitNode, vhost: &str, user: &str) {
    let listing = node
        .ctl(&["list_connections", "pid", "user", "vhost"])
        .unwrap();
    let pids: Vec<&str> = listing
        .lines()
        .map(|l| l.split('\t').map(str::trim).collect::<Vec<_>>())
        .filter(|cols| cols.len() == 3 && cols[1] == user && cols[2] == vhost)
        .map(|cols| cols[0])
        .collect();
    assert!(!pids.is_empty(), "no connection of {user} in {listing}");
    for pid in pids {
        node.ctl(&["close_connection", pid, "test: simulated crash"])
            .unwrap();
    }
}

/// Wait until `vhost` has no queue whose name starts with `prefix`.
async fn wait_until_no_queue(node: &RabbitNode, vhost: &str, prefix: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let queues = tokio::task::block_in_place(|| {
            node.ctl(&["list_queues", "-p", vhost, "name"]).unwrap()
        });
        if !queues.lines().any(|q| q.trim().starts_with(prefix)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue {prefix}* still there: {queues}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

mod cluster;
mod limits;
mod nodes;
mod restart;
mod startup;
mod throughput;
mod users;
