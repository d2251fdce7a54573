//! The manager cluster's link over the private RabbitMQ node: directed and broadcast
//! messages in order, returns for nodes that do not exist, a node name in use, broker
//! users that are not managers, reconnection; and the AMQP transport's hello queue
//! shared by the managers of a cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::amqp as amqp_support;

use std::sync::Arc;
use std::time::Duration;

use amqp_support::*;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::BasicProperties;
use redpepper_cluster::{ClusterLink, ClusterMessage, Envelope, LinkEvent, To};
use redpepper_config::{ClusterConfig, ManagerConfig};
use redpepper_core::Value;
use redpepper_tests::rabbitmq::{Perms, RabbitNode};
use redpepper_transports::amqp::{AmqpListener, AmqpOptions};
use tokio::sync::mpsc;

/// What docs tell operators to grant a manager user for cluster `redpepper`.
fn cluster_perms() -> Perms {
    let own = "^redpepper\\.(cluster|node\\..+)$".to_owned();
    Perms {
        configure: own.clone(),
        write: own.clone(),
        read: own,
    }
}

/// A vhost with broker users `mgr-a` and `mgr-b` (managers) and `mallory`, who may
/// publish to the cluster's exchange but is no manager.
fn cluster_env(vhost: &str) -> Env {
    let env = Env::new(RabbitNode::shared(), vhost, &[]);
    let mut users: Vec<_> = ["mgr-a", "mgr-b"]
        .iter()
        .map(|u| redpepper_tests::rabbitmq::BrokerUser {
            name: (*u).into(),
            password: password(u),
            perms: cluster_perms(),
        })
        .collect();
    users.push(redpepper_tests::rabbitmq::BrokerUser {
        name: "mallory".into(),
        password: password("mallory"),
        perms: Perms {
            configure: "^mallory\\..*".into(),
            write: "^redpepper\\.cluster$".into(),
            read: "^mallory\\..*".into(),
        },
    });
    tokio::task::block_in_place(|| env.node.add_users(vhost, &users));
    env
}

/// The configuration of node `node` logging in as broker user `user`.
fn manager_config(env: &Env, user: &str, node: &str) -> ManagerConfig {
    ManagerConfig {
        cluster: Some(ClusterConfig {
            urls: vec![env.node.amqp_url(user, &password(user), &env.vhost)],
            name: "redpepper".into(),
            node: node.into(),
            heartbeat: Duration::from_secs(1),
            dead_after: 3,
            manager_users: vec!["mgr-a".into(), "mgr-b".into()],
        }),
        ..ManagerConfig::default()
    }
}

struct Node {
    link: Arc<dyn ClusterLink>,
    events: mpsc::Receiver<LinkEvent>,
}

async fn join(env: &Env, user: &str, node: &str) -> Node {
    let link = redpepper_transports::cluster_link(&manager_config(env, user, node))
        .await
        .unwrap();
    let mut events = link.take_events().unwrap();
    assert!(matches!(next(&mut events).await, LinkEvent::Up));
    assert!(link.is_up());
    Node { link, events }
}

async fn next(events: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no link event in time")
        .expect("the link's events ended")
}

async fn next_message(events: &mut mpsc::Receiver<LinkEvent>) -> Envelope {
    match next(events).await {
        LinkEvent::Message(envelope) => envelope,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn notify(corr: u64) -> ClusterMessage {
    ClusterMessage::Notify {
        corr,
        agent: "web-1".into(),
        kind: "hint".into(),
        data: Value::from(corr),
    }
}

fn corr_of(envelope: &Envelope) -> u64 {
    match &envelope.message {
        ClusterMessage::Notify { corr, .. } => *corr,
        other => panic!("expected a notify, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directed_and_broadcast_messages_arrive_in_order_and_not_back_home() {
    let env = cluster_env("cluster-order");
    let mut a = join(&env, "mgr-a", "mgr-a").await;
    let mut b = join(&env, "mgr-b", "mgr-b").await;
    assert!(
        a.link.describe().starts_with("amqp://mgr-a@"),
        "{}",
        a.link.describe()
    );
    assert!(
        a.link.describe().ends_with(", node mgr-a"),
        "{}",
        a.link.describe()
    );
    assert!(!a.link.describe().contains(&password("mgr-a")));

    // Directed messages and broadcasts, interleaved: b sees them in the order sent.
    for i in 0..500u64 {
        if i % 10 == 0 {
            a.link
                .send(To::All, &ClusterMessage::DirectoryRequest)
                .unwrap();
        } else {
            a.link.send(To::Node("mgr-b"), &notify(i)).unwrap();
        }
    }
    for i in 0..500u64 {
        let envelope = next_message(&mut b.events).await;
        assert_eq!(envelope.from, "mgr-a");
        if i % 10 == 0 {
            assert_eq!(envelope.message, ClusterMessage::DirectoryRequest, "#{i}");
        } else {
            assert_eq!(corr_of(&envelope), i);
        }
    }

    // a's own broadcasts did not come back to it: the next thing a sees is b's.
    b.link.send(To::Node("mgr-a"), &notify(7)).unwrap();
    let envelope = next_message(&mut a.events).await;
    assert_eq!((envelope.from.as_str(), corr_of(&envelope)), ("mgr-b", 7));

    // Leaving: b hears it, and a's link is down for good.
    a.link.close().await;
    let envelope = next_message(&mut b.events).await;
    assert_eq!(
        (envelope.from.as_str(), envelope.message),
        ("mgr-a", ClusterMessage::Leaving)
    );
    assert!(!a.link.is_up());
    let e = a.link.send(To::All, &notify(1)).unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
    // Its queue is gone with it: a message for it comes back.
    b.link.send(To::Node("mgr-a"), &notify(8)).unwrap();
    match next(&mut b.events).await {
        LinkEvent::Returned { node, corr } => assert_eq!((node.as_str(), corr), ("mgr-a", Some(8))),
        other => panic!("expected a return, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_for_a_node_that_does_not_exist_comes_back_with_its_corr() {
    let env = cluster_env("cluster-returned");
    let mut a = join(&env, "mgr-a", "mgr-a").await;
    a.link.send(To::Node("nobody"), &notify(42)).unwrap();
    match next(&mut a.events).await {
        LinkEvent::Returned { node, corr } => {
            assert_eq!((node.as_str(), corr), ("nobody", Some(42)));
        }
        other => panic!("expected a return, got {other:?}"),
    }
    // A burst leaves as batches: every request in a returned one comes back, in order.
    for corr in 100..400u64 {
        a.link.send(To::Node("nobody"), &notify(corr)).unwrap();
    }
    for corr in 100..400u64 {
        match next(&mut a.events).await {
            LinkEvent::Returned { node, corr: c } => {
                assert_eq!((node.as_str(), c), ("nobody", Some(corr)));
            }
            other => panic!("expected a return, got {other:?}"),
        }
    }
    // Not a request: returned without a corr.
    a.link
        .send(To::Node("nobody"), &ClusterMessage::DirectoryRequest)
        .unwrap();
    match next(&mut a.events).await {
        LinkEvent::Returned { node, corr } => assert_eq!((node.as_str(), corr), ("nobody", None)),
        other => panic!("expected a return, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_name_in_use_is_refused_with_a_clear_error() {
    let env = cluster_env("cluster-in-use");
    let _a = join(&env, "mgr-a", "mgr-a").await;
    let e = redpepper_transports::cluster_link(&manager_config(&env, "mgr-b", "mgr-a"))
        .await
        .err()
        .expect("a second node mgr-a joined")
        .to_string();
    assert!(
        e.contains("node name mgr-a is already in use in cluster redpepper"),
        "{e}"
    );
    assert!(e.contains("amqp://mgr-b@"), "{e}");
    assert!(!e.contains(&password("mgr-b")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_broker_users_that_are_not_managers_are_dropped() {
    let env = cluster_env("cluster-foreign");
    let a = join(&env, "mgr-a", "mgr-a").await;
    let mut b = join(&env, "mgr-b", "mgr-b").await;

    // Well-formed, claiming to come from node mgr-a, as broker user mallory (RabbitMQ
    // checks user_id, so she can only put her own) and without a user_id.
    let (_conn, ch) = env.publisher("mallory").await;
    let forged = notify(666).encode("mgr-a").unwrap();
    for user in [Some("mallory"), None] {
        let mut props = BasicProperties::default();
        if let Some(u) = user {
            props = props.with_user_id(ShortString::from(u));
        }
        // Routed to b's queue (not returned): it is b that must drop it.
        publish_routed(&ch, "redpepper.cluster", "node.mgr-b", &forged, props).await;
    }
    // From a manager user, but not a cluster message: dropped too.
    let (_conn_a, ch_a) = env.publisher("mgr-a").await;
    ch_a.basic_publish(
        "redpepper.cluster".into(),
        "node.mgr-b".into(),
        BasicPublishOptions::default(),
        b"not msgpack",
        BasicProperties::default().with_user_id("mgr-a".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    // Published after those into the same queue: the first thing b reports.
    a.link.send(To::Node("mgr-b"), &notify(1)).unwrap();
    let envelope = next_message(&mut b.events).await;
    assert_eq!((envelope.from.as_str(), corr_of(&envelope)), ("mgr-a", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_broker_connection_is_reported_and_the_link_reconnects() {
    let env = cluster_env("cluster-reconnect");
    let mut a = join(&env, "mgr-a", "mgr-a").await;
    let mut b = join(&env, "mgr-b", "mgr-b").await;

    tokio::task::block_in_place(|| {
        let listing = env
            .node
            .ctl(&["list_connections", "pid", "user", "vhost"])
            .unwrap();
        for line in listing.lines() {
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            if cols.len() == 3 && cols[1] == "mgr-a" && cols[2] == env.vhost {
                env.node
                    .ctl(&["close_connection", cols[0], "test: connection lost"])
                    .unwrap();
            }
        }
    });
    match next(&mut a.events).await {
        LinkEvent::Down(reason) => assert!(reason.contains("amqp://mgr-a@"), "{reason}"),
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(matches!(next(&mut a.events).await, LinkEvent::Up));
    assert!(a.link.is_up());

    // Both ways again, through the queue declared anew.
    a.link.send(To::Node("mgr-b"), &notify(2)).unwrap();
    assert_eq!(corr_of(&next_message(&mut b.events).await), 2);
    b.link.send(To::Node("mgr-a"), &notify(3)).unwrap();
    assert_eq!(corr_of(&next_message(&mut a.events).await), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_of_a_cluster_share_the_hello_queue() {
    let ids: Vec<String> = (0..8).map(|i| format!("a{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let env = Env::new(RabbitNode::shared(), "shared-hellos", &id_refs);
    let shared = AmqpOptions {
        shared_hello_queue: true,
        ..options()
    };
    let mut managers = Vec::new();
    for _ in 0..2 {
        let listener = AmqpListener::bind(env.url("manager"), QUEUE, None, 1 << 20, shared.clone())
            .await
            .expect("a second manager of a cluster is refused the shared hello queue");
        managers.push(TestManager::serve(listener, config()));
    }
    let mut agents = Vec::new();
    for id in &ids {
        let (session, _seen) = agent(&env.dialer(id), id, "good", config()).await;
        agents.push(session.unwrap());
    }
    // Which manager took which agent: both took some (RabbitMQ hands a shared
    // queue's messages to its consumers in turn).
    let mut taken = [0usize; 2];
    for _ in 0..ids.len() {
        let (m0, m1) = managers.split_at_mut(1);
        let (which, session) = tokio::select! {
            s = m0[0].next() => (0, s),
            s = m1[0].next() => (1, s),
        };
        let session = session.unwrap();
        let id = session.agent_id().unwrap().to_owned();
        let v = session.call("echo", strs(&[&id]), vec![]).await.unwrap();
        assert_eq!(v, Value::Array(strs(&[&id])));
        taken[which] += 1;
    }
    assert!(
        taken[0] > 0 && taken[1] > 0,
        "one manager took every hello: {taken:?}"
    );

    // A manager leaves: the queue stays, and the other one takes the next hellos.
    let gone = managers.remove(0);
    gone.task.abort();
    let _ = gone.task.await;
    for id in &ids[..2] {
        let (session, _seen) = agent(&env.dialer(id), id, "good", config()).await;
        session.unwrap();
        let on_survivor = managers[0].next().await.unwrap();
        assert_eq!(on_survivor.agent_id(), Some(id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_list_is_tried_in_turn_and_amqps_verifies_the_broker() {
    let env = cluster_env("cluster-urls");
    // Nothing listens on port 1: refused at once.
    let dead = format!(
        "amqp://mgr-a:{}@127.0.0.1:1/{}",
        password("mgr-a"),
        env.vhost
    );
    let mut cfg = manager_config(&env, "mgr-a", "mgr-a");
    let cluster = cfg.cluster.as_mut().unwrap();
    cluster.urls = vec![dead.clone(), dead.replace("127.0.0.1", "localhost")];
    let e = redpepper_transports::cluster_link(&cfg)
        .await
        .err()
        .expect("joined through brokers that do not exist")
        .to_string();
    assert!(e.contains("2 URLs"), "{e}");
    assert!(e.contains("amqp://mgr-a@127.0.0.1:1/"), "{e}");
    assert!(e.contains("amqp://mgr-a@localhost:1/"), "{e}");
    assert!(!e.contains(&password("mgr-a")), "{e}");

    // A dead URL and the broker's TLS port: whichever comes first, the link is up,
    // over amqps with the broker verified against tls_ca_file.
    let mut cfg = manager_config(&env, "mgr-a", "mgr-a");
    cfg.tls.ca_file = Some(env.node.ca_cert().to_owned());
    let cluster = cfg.cluster.as_mut().unwrap();
    cluster.urls = vec![
        dead,
        env.node.amqps_url("mgr-a", &password("mgr-a"), &env.vhost),
    ];
    let link = redpepper_transports::cluster_link(&cfg).await.unwrap();
    assert!(link.is_up());
    assert!(
        link.describe().starts_with("amqps://"),
        "{}",
        link.describe()
    );
    let mut events = link.take_events().unwrap();
    assert!(matches!(next(&mut events).await, LinkEvent::Up));
    link.send(To::Node("nobody"), &notify(5)).unwrap();
    assert!(matches!(
        next(&mut events).await,
        LinkEvent::Returned { corr: Some(5), .. }
    ));
    link.close().await;

    // A CA that did not sign the broker's certificate: refused, saying so.
    let scratch = tempfile::tempdir().unwrap();
    let stranger = redpepper_tests::TestCerts::generate(scratch.path());
    cfg.tls.ca_file = Some(stranger.ca_cert.clone());
    cfg.cluster.as_mut().unwrap().urls.remove(0);
    let e = redpepper_transports::cluster_link(&cfg)
        .await
        .err()
        .expect("joined through a broker with an unknown certificate")
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}
