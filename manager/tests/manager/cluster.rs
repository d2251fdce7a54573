//! Managers joined into a cluster over an in-memory hub: agents on one node reached
//! from another, nodes dying and restarting, one session per agent id cluster-wide,
//! events across nodes.

use std::sync::atomic::{AtomicBool, Ordering};

use redpepper_cluster::{ClusterLink, ClusterMessage, LinkEvent, MemoryHub, To};
use redpepper_manager::cluster::{ClusterSettings, NodeState};

use super::*;

fn settings() -> ClusterSettings {
    ClusterSettings {
        heartbeat: Duration::from_millis(50),
        dead_after: 3,
        forget_after: Duration::from_secs(600),
    }
}

struct Node {
    manager: Manager,
    dialer: MemoryDialer,
}

fn node_with(link: Arc<dyn ClusterLink>) -> Node {
    let (manager, dialer) = start();
    manager.join_cluster(link, settings()).unwrap();
    Node { manager, dialer }
}

fn node(hub: &MemoryHub, name: &str) -> Node {
    node_with(hub.join(name))
}

/// Wait (on the manager's events) until `check` holds.
async fn until(manager: &Manager, what: &str, check: impl Fn(&Manager) -> bool) {
    let mut events = manager.events();
    let wait = async {
        while !check(manager) {
            let _ = events.recv().await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn node_of(manager: &Manager, agent: &str) -> Option<String> {
    manager
        .agents()
        .into_iter()
        .find(|a| a.id == agent)
        .map(|a| a.node)
}

#[tokio::test]
async fn an_agent_on_another_node_is_listed_called_notified_and_commanded() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    assert_eq!(a.manager.node_name(), "a");
    let config =
        AgentConfig::from_yaml_str("agent_id: web1\nagent_secret: s\nping_interval: 0\n").unwrap();
    let agent = Agent::with_dialer(config, Box::new(b.dialer), Arc::new(operations::router()));
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { agent.run(stop, |_| {}).await }
    });
    assert!(a.manager.wait_for_agent_anywhere("web1", WAIT).await);
    assert!(a.manager.session("web1").is_none());
    assert_eq!(node_of(&a.manager, "web1").as_deref(), Some("b"));
    let nodes = a.manager.cluster_nodes();
    assert_eq!(nodes[0].name, "a");
    assert_eq!(nodes[0].state, NodeState::Local);
    assert_eq!(nodes[1].name, "b");
    assert_eq!(nodes[1].state, NodeState::Alive);
    assert_eq!(nodes[1].agents, 1);

    let echoed = a
        .manager
        .call("web1", "echo", vec![Value::from("x")], vec![], WAIT)
        .await
        .unwrap();
    assert_eq!(
        echoed,
        redpepper_core::echo_reply(vec![Value::from("x")], vec![])
    );
    let err = a
        .manager
        .call("web1", "no_such_method", vec![], vec![], WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ManagerError::Call {
                source: CallError::Remote(_),
                ..
            }
        ),
        "{err}"
    );

    let run = a
        .manager
        .run_command(
            "web1",
            "echo.Echo",
            vec![],
            vec![("message".into(), Value::from("across"))],
        )
        .await
        .unwrap();
    assert!(run.id.starts_with(&redpepper_cluster::node_tag("a")));
    assert_eq!(run.id.len(), 32);
    let r = run.wait(WAIT, |_, _, _| {}).await.unwrap();
    assert!(r.success && r.output.ends_with("across"), "{}", r.output);

    assert!(!a
        .manager
        .cancel_command("web1", "00000000000000000000000000000000")
        .await
        .unwrap());

    stop.cancel();
    task.await.unwrap().unwrap();
    until(&a.manager, "web1 to leave", |m| m.agents().is_empty()).await;
    let err = a
        .manager
        .call("web1", "echo", vec![], vec![], WAIT)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::NotConnected(_)), "{err}");
}

#[tokio::test]
async fn a_notification_reaches_an_agent_on_another_node() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let router = Router::new().on_notification(move |_, n| {
        let _ = tx.send(n);
    });
    let _agent = raw_agent(&b.dialer, "n1", router).await;
    assert!(a.manager.wait_for_agent_anywhere("n1", WAIT).await);
    a.manager
        .notify("n1", "hello", Value::from("from a"))
        .await
        .unwrap();
    let n = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.r#type, "hello");
    assert_eq!(n.data, Value::from("from a"));
    // An agent that is nowhere.
    let err = a
        .manager
        .notify("ghost", "hello", Value::Nil)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::NotConnected(_)), "{err}");
}

#[tokio::test]
async fn an_agent_on_another_node_is_disconnected_through_its_node() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    let agent = raw_agent(&b.dialer, "d1", Router::new()).await;
    assert!(a.manager.wait_for_agent_anywhere("d1", WAIT).await);
    a.manager.disconnect("d1").await.unwrap();
    // B, which holds the session, says Bye with the operator's reason.
    let reason = tokio::time::timeout(WAIT, agent.closed()).await.unwrap();
    assert_eq!(
        reason,
        SessionError::ByeReceived(redpepper_manager::revoke::DISCONNECTED.into())
    );
    until(&a.manager, "d1 to leave A's directory", |m| {
        m.agents().is_empty()
    })
    .await;
    // An agent that is nowhere.
    let err = a.manager.disconnect("d1").await.unwrap_err();
    assert!(matches!(err, ManagerError::NotConnected(_)), "{err}");
}

#[tokio::test]
async fn a_call_forwarded_to_a_node_that_dies_fails_with_a_clear_error() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    let hang = Router::new().method("hang", |_| futures::future::pending());
    let _agent = raw_agent(&b.dialer, "h1", hang).await;
    assert!(a.manager.wait_for_agent_anywhere("h1", WAIT).await);
    let m = a.manager.clone();
    let call = tokio::spawn(async move {
        m.call("h1", "hang", vec![], vec![], Duration::from_secs(3600))
            .await
    });
    let session = b.manager.session("h1").unwrap();
    let mut events = b.manager.events();
    while session.calls_in_flight() == 0 {
        let _ = tokio::time::timeout(Duration::from_millis(20), events.recv()).await;
    }
    hub.kill("b");
    let err = tokio::time::timeout(WAIT, call)
        .await
        .expect("the call fails at once when its node is counted dead, not at its timeout")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "node b holding agent h1 is gone");
    let nodes = a.manager.cluster_nodes();
    assert_eq!(nodes[1].state, NodeState::Dead);
    assert!(a.manager.agents().is_empty());
    // Calls to agents nobody holds now fail as for a lone manager.
    let err = a
        .manager
        .call("h1", "hang", vec![], vec![], WAIT)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::NotConnected(_)), "{err}");
}

#[tokio::test]
async fn a_command_whose_node_dies_reports_through_the_node_its_agent_moves_to() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    let c = node(&hub, "c");
    a.manager.set_command_grace(Duration::from_secs(3600));
    let first = raw_agent(&b.dialer, "w1", silent()).await;
    assert!(a.manager.wait_for_agent_anywhere("w1", WAIT).await);
    let run = a
        .manager
        .run_command("w1", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    let id = run.id.clone();
    // Node b dies without a word; its agent's connection drops with it.
    hub.kill("b");
    b.manager.shutdown().await;
    drop(first);
    until(&c.manager, "c to count b dead", |m| {
        m.cluster_nodes()
            .iter()
            .any(|n| n.name == "b" && n.state == NodeState::Dead)
    })
    .await;
    // The agent reconnects to c and sends its outbox: the result reaches a.
    let second = raw_agent(&c.dialer, "w1", silent()).await;
    second
        .notify("command_result", command_result(&id, "done on c"))
        .await
        .unwrap();
    let r = run.wait(WAIT, |_, _, _| {}).await.unwrap();
    assert_eq!(r.output, "done on c");
    assert_eq!(node_of(&a.manager, "w1").as_deref(), Some("c"));
}

#[tokio::test]
async fn the_same_agent_id_on_two_nodes_keeps_the_newest_session() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    let first = raw_agent(&a.dialer, "dup", Router::new()).await;
    until(&b.manager, "b to see dup on a", |m| {
        node_of(m, "dup").as_deref() == Some("a")
    })
    .await;
    let second = raw_agent(&b.dialer, "dup", Router::new()).await;
    assert_eq!(
        tokio::time::timeout(WAIT, first.closed()).await.unwrap(),
        SessionError::ByeReceived("replaced by a new connection on node b".into())
    );
    for m in [&a.manager, &b.manager] {
        until(m, "dup on b only", |m| {
            m.agents().len() == 1 && node_of(m, "dup").as_deref() == Some("b")
        })
        .await;
    }
    assert!(!second.is_closed());
}

/// A link that drops `agent_up` messages while `lose` is set.
struct Lossy {
    inner: Arc<redpepper_cluster::MemoryLink>,
    lose: AtomicBool,
}

impl ClusterLink for Lossy {
    fn node(&self) -> &str {
        self.inner.node()
    }
    fn send(&self, to: To<'_>, m: &ClusterMessage) -> Result<(), redpepper_cluster::ClusterError> {
        if self.lose.load(Ordering::Relaxed) && matches!(m, ClusterMessage::AgentUp { .. }) {
            return Ok(());
        }
        self.inner.send(to, m)
    }
    fn take_events(&self) -> Option<tokio::sync::mpsc::Receiver<LinkEvent>> {
        self.inner.take_events()
    }
    fn is_up(&self) -> bool {
        self.inner.is_up()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn close(&self) -> BoxFuture<'static, ()> {
        self.inner.close()
    }
}

#[tokio::test]
async fn the_directory_converges_after_a_lost_change_and_a_restart() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let lossy = Arc::new(Lossy {
        inner: hub.join("b"),
        lose: AtomicBool::new(true),
    });
    let b = node_with(lossy.clone());
    let _x = raw_agent(&b.dialer, "x1", Router::new()).await;
    // Its agent_up was lost: b's heartbeat generation shows a that it missed a
    // change, and a copy of b's directory brings it.
    assert!(a.manager.wait_for_agent_anywhere("x1", WAIT).await);
    lossy.lose.store(false, Ordering::Relaxed);

    // b restarts (a new incarnation under the same name) with another agent.
    hub.kill("b");
    b.manager.shutdown().await;
    let b2 = node(&hub, "b");
    let _y = raw_agent(&b2.dialer, "y1", Router::new()).await;
    until(&a.manager, "a to see y1 and not x1", |m| {
        node_of(m, "y1").as_deref() == Some("b") && node_of(m, "x1").is_none()
    })
    .await;
    let nodes = a.manager.cluster_nodes();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1].state, NodeState::Alive);
}

#[tokio::test]
async fn remote_connects_always_and_notifications_only_while_watched() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    let mut events = a.manager.events();
    let agent = raw_agent(&b.dialer, "e1", Router::new()).await;
    agent.notify("unwatched", Value::Nil).await.unwrap();
    agent.barrier().await.unwrap();
    let mut seen = Vec::new();
    // Connected, from b, without watching.
    loop {
        let e = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let ManagerEvent::Remote { node, event } = &e {
            if let ManagerEvent::Connected { agent, .. } = &**event {
                assert_eq!((node.as_str(), agent.as_str()), ("b", "e1"));
                break;
            }
        }
        seen.push(e);
    }
    let watch = a.manager.watch_events();
    // b hears of the watch with a's next heartbeat: notify until one comes through.
    let notification = 'found: loop {
        agent.notify("watched", Value::from(1)).await.unwrap();
        while let Ok(e) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            let e = e.unwrap();
            if let ManagerEvent::Remote { node, event } = &e {
                if let ManagerEvent::Notification { notification, .. } = &**event {
                    assert_eq!(node, "b");
                    break 'found notification.clone();
                }
            }
            seen.push(e);
        }
    };
    assert_eq!(notification.r#type, "watched");
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ManagerEvent::Remote { .. })),
        "{seen:?}"
    );
    drop(watch);
    agent.close("bye").await;
    loop {
        let e = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let ManagerEvent::Remote { node, event } = e {
            if let ManagerEvent::Disconnected { agent, .. } = *event {
                assert_eq!((node.as_str(), agent.as_str()), ("b", "e1"));
                break;
            }
        }
    }
}

#[tokio::test]
async fn unknown_message_kinds_are_ignored() {
    let hub = MemoryHub::new();
    let a = node(&hub, "a");
    let b = node(&hub, "b");
    let newer = hub.join("z");
    newer
        .send(To::All, &ClusterMessage::Unknown("rebalance".into()))
        .unwrap();
    newer
        .send(To::Node("a"), &ClusterMessage::Unknown("gossip".into()))
        .unwrap();
    let echo = Router::new().method("echo", |ctx| async move { Ok(Value::Array(ctx.args)) });
    let _agent = raw_agent(&b.dialer, "u1", echo).await;
    assert!(a.manager.wait_for_agent_anywhere("u1", WAIT).await);
    let answer = a
        .manager
        .call("u1", "echo", vec![Value::from(7)], vec![], WAIT)
        .await
        .unwrap();
    assert_eq!(answer, Value::Array(vec![Value::from(7)]));
    assert_eq!(node_of(&a.manager, "u1").as_deref(), Some("b"));
}
