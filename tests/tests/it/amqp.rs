//! The AMQP transport end to end: a private RabbitMQ node started by the test, the
//! manager (in-process, built from a real `manager.yml` by the transports factory) and
//! real `redpepper-agent` processes configured with `transport: amqp`.
//!
//! The transport-level tests (`transports/tests/it/amqp/`) cover what needs a hand on
//! the wire: calls from agent to manager, another broker user injecting messages,
//! unroutable messages, limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::amqp::*;
use crate::support::manager::run_op;

use redpepper_core::{TransportKind, Value};
use redpepper_manager::{ManagerError, ManagerEvent};
use redpepper_tests::fleet::{secret_of, Entry};
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_tests::{Signal, TIMEOUT};

fn strs(v: &[&str]) -> Vec<Value> {
    v.iter().map(|s| Value::from(*s)).collect()
}

fn is_auth_failed(e: &ManagerEvent, id: &str) -> bool {
    matches!(e, ManagerEvent::AuthFailed { agent, .. } if agent == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_session_with_real_agents() {
    let node = RabbitNode::shared();
    let fleet = Cluster::fleet(node, "e2e-full")
        .entry(Entry::pinned("a1"))
        .entry(Entry::pinned("a2"))
        // Restricts addresses and names no broker user: cannot authenticate over AMQP.
        .entry(Entry::new("a3"))
        // Pinned to another broker user.
        .entry(Entry::new("a4").allowed_ips(&["0.0.0.0/0"]).amqp_user("a1"));
    let users = ["a1", "a2", "a3", "a4"];
    let mut c = Cluster::start(node, "e2e-full", &users, fleet).await;

    // Hello accepted; the manager records the broker user and no address.
    c.start_agent("a1");
    c.wait_connected(&["a1".into()]).await;
    assert_eq!(
        c.peer_of("a1"),
        (TransportKind::Amqp, Some("a1".into()), false)
    );
    c.agent("a1")
        .wait_for_line_async(|l| l.contains("connected to manager"), TIMEOUT)
        .await
        .unwrap();

    // Pings (ping_interval 1 on both sides).
    c.wait_ping("a1").await;

    // A call, and a command whose progress and result come back as notifications.
    let v = c
        .manager
        .call("a1", "echo", strs(&["over", "amqp"]), vec![], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(v.to_string(), r#"{"args": ["over", "amqp"], "kwargs": {}}"#);
    let kwargs = [
        ("message", Value::from("hello")),
        ("reverse", Value::from(true)),
    ];
    let (result, progress) = run_op(&c.manager, "a1", "echo.Echo", &kwargs).await;
    assert!(result.success, "{result:?}");
    assert!(result.output.contains("olleh"), "{result:?}");
    assert_eq!(progress.last(), Some(&(1, 1)), "{progress:?}");

    // Hellos refused: wrong secret; allowed_ips without amqp_user; pinned to another
    // broker user. The agents hear RedPepper's generic reason.
    let yaml = c.agent_yaml("a2", "a2", "wrong-secret", "");
    c.spawn_agent("a2", &yaml);
    c.start_agent("a3");
    c.start_agent("a4");
    for id in ["a2", "a3", "a4"] {
        c.next_event(|e| is_auth_failed(e, id)).await;
        c.agent(id)
            .wait_for_line_async(
                |l| l.contains("manager refused this agent") && l.contains("authentication failed"),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
    assert_eq!(c.manager.agents().len(), 1);

    // Bye from the agent when it stops.
    c.agent("a1").signal(Signal::SIGTERM).unwrap();
    let e = c
        .next_event(|e| matches!(e, ManagerEvent::Disconnected { agent, .. } if agent == "a1"))
        .await;
    let ManagerEvent::Disconnected { reason, .. } = e else {
        unreachable!()
    };
    assert!(reason.contains("shutting down"), "{reason}");
    c.agent("a1").wait_exit_async(TIMEOUT).await.unwrap();

    // Bye from the manager when it stops (a2 again, now with its right secret).
    c.agents.retain(|(id, _)| id != "a2");
    c.start_agent("a2");
    c.wait_connected(&["a2".into()]).await;
    c.manager.shutdown().await;
    c.agent("a2")
        .wait_for_line_async(
            |l| l.contains("disconnected from manager") && l.contains("server shutting down"),
            TIMEOUT,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_agents_on_one_manager_calls_to_all() {
    let ids: Vec<String> = (0..100).map(|i| format!("fleet-{i:03}")).collect();
    let users: Vec<&str> = ids.iter().map(String::as_str).collect();
    let node = RabbitNode::shared();
    let fleet = Cluster::fleet(node, "e2e-hundred").entries(ids.iter().map(|id| Entry::pinned(id)));
    let mut c = Cluster::start(node, "e2e-hundred", &users, fleet).await;
    for id in &ids {
        c.start_agent(id);
    }
    c.wait_connected(&ids).await;
    assert_eq!(c.manager.agents().len(), 100);
    let calls = ids.iter().map(|id| {
        let m = c.manager.clone();
        async move {
            let v = m.call(id, "echo", strs(&[id]), vec![], TIMEOUT).await;
            (id, v)
        }
    });
    for (id, v) in futures::future::join_all(calls).await {
        let v = v.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            v.to_string(),
            format!(r#"{{"args": ["{id}"], "kwargs": {{}}}}"#)
        );
    }
    for a in c.manager.agents() {
        assert_eq!(a.transport, TransportKind::Amqp);
        assert_eq!(a.broker_user.as_deref(), Some(a.id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_through_the_brokers_tls_listener() {
    let node = RabbitNode::shared();
    let ca = node.ca_cert().display().to_string();
    let amqps = node.amqps_url("manager", &password("manager"), "e2e-amqps");
    // The manager verifies the broker with its tls_ca_file.
    let fleet = Cluster::fleet(node, "e2e-amqps")
        .amqp(&amqps, QUEUE)
        .extra(&format!("tls_ca_file: {ca}\n"))
        .entry(Entry::pinned("s1"));
    let mut c = Cluster::start(node, "e2e-amqps", &["s1"], fleet).await;
    let listening = c.manager.listening();
    assert!(
        listening[0].1.starts_with("amqps://manager@localhost:"),
        "{listening:?}"
    );

    let agent_url = node.amqps_url("s1", &password("s1"), "e2e-amqps");
    let amqps = format!("tls_ca_file: {ca}\namqp:\n  url: {agent_url}\n  queue: {QUEUE}\n");
    let yaml = c.fleet.agent_yml("s1", &secret_of("s1"), &amqps);
    c.spawn_agent("s1", &yaml);
    c.wait_connected(&["s1".into()]).await;
    let v = c
        .manager
        .call("s1", "echo", strs(&["tls"]), vec![], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(v.to_string(), r#"{"args": ["tls"], "kwargs": {}}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_session() {
    // A node of our own: this test stops it.
    let node: &'static RabbitNode = Box::leak(Box::new(
        tokio::task::spawn_blocking(RabbitNode::start)
            .await
            .unwrap(),
    ));
    let ids: Vec<String> = ["r1", "r2", "r3"].iter().map(|s| (*s).to_owned()).collect();
    let users: Vec<&str> = ids.iter().map(String::as_str).collect();
    // No pings from the manager: they would end r1's session while it is frozen.
    let fleet = Cluster::fleet(node, "e2e-restart")
        .ping_interval(0)
        .entries(ids.iter().map(|id| Entry::pinned(id)));
    let mut c = Cluster::start(node, "e2e-restart", &users, fleet).await;
    for id in &ids {
        c.start_agent(id);
    }
    c.wait_connected(&ids).await;

    // A call that cannot be answered before the broker goes: r1 is frozen.
    c.agent("r1").signal(Signal::SIGSTOP).unwrap();
    let pending = tokio::spawn({
        let m = c.manager.clone();
        async move { m.call("r1", "echo", vec![], vec![], TIMEOUT * 2).await }
    });
    while c.manager.agents().iter().all(|a| a.calls_in_flight == 0) {
        tokio::task::yield_now().await;
    }

    tokio::task::spawn_blocking(|| node.stop()).await.unwrap();
    let e = tokio::time::timeout(TIMEOUT, pending)
        .await
        .expect("the pending call did not fail")
        .unwrap()
        .unwrap_err();
    let ManagerError::Call { source, .. } = &e else {
        panic!("expected a failed call, got {e:?}")
    };
    let text = source.to_string();
    assert!(
        text.contains("session closed before the response"),
        "{text}"
    );
    assert!(text.contains("broker connection lost"), "{text}");
    c.wait_disconnected(&ids).await;
    c.agent("r1").signal(Signal::SIGCONT).unwrap();

    // Back up: the same processes reconnect and say hello again.
    tokio::task::spawn_blocking(|| node.start_again())
        .await
        .unwrap();
    c.wait_connected(&ids).await;
    for id in &ids {
        let v = c
            .manager
            .call(id, "echo", strs(&["again"]), vec![], TIMEOUT)
            .await
            .unwrap();
        assert_eq!(v.to_string(), r#"{"args": ["again"], "kwargs": {}}"#);
        assert!(c.agent(id).exit_status().is_none(), "{id} was restarted");
    }
    c.manager.shutdown().await;
    for (_, p) in &c.agents {
        p.kill();
    }
    tokio::task::spawn_blocking(|| node.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_manager_serving_tls_websocket_and_amqp() {
    let node = RabbitNode::shared();
    // TLS TCP settings and a WebSocket listener besides AMQP.
    let fleet = Cluster::fleet(node, "e2e-three")
        .tls()
        .transports(&["tls", "websocket", "amqp"])
        .websocket("")
        .agent("via-tls")
        .agent("via-ws")
        .entry(Entry::pinned("via-amqp"));
    let mut c = Cluster::start(node, "e2e-three", &["via-amqp"], fleet).await;
    let tls_port = c.manager.local_addr(TransportKind::Tls).unwrap().port();
    let ws_port = c
        .manager
        .local_addr(TransportKind::WebSocket)
        .unwrap()
        .port();

    let tls = format!("transport: tls\nmanager_host: 127.0.0.1\nmanager_port: {tls_port}\n");
    let tls_agent = c.fleet.agent_yml("via-tls", &secret_of("via-tls"), &tls);
    c.spawn_agent("via-tls", &tls_agent);
    let ws =
        format!("transport: websocket\nwebsocket:\n  url: wss://localhost:{ws_port}/redpepper\n");
    let ws_agent = c.fleet.agent_yml("via-ws", &secret_of("via-ws"), &ws);
    c.spawn_agent("via-ws", &ws_agent);
    c.start_agent("via-amqp");

    let ids: Vec<String> = ["via-tls", "via-ws", "via-amqp"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    c.wait_connected(&ids).await;
    assert_eq!(c.peer_of("via-tls"), (TransportKind::Tls, None, true));
    assert_eq!(c.peer_of("via-ws"), (TransportKind::WebSocket, None, true));
    assert_eq!(
        c.peer_of("via-amqp"),
        (TransportKind::Amqp, Some("via-amqp".into()), false)
    );
    for id in &ids {
        let v = c
            .manager
            .call(id, "echo", strs(&[id]), vec![], TIMEOUT)
            .await
            .unwrap();
        assert_eq!(
            v.to_string(),
            format!(r#"{{"args": ["{id}"], "kwargs": {{}}}}"#)
        );
    }
}
