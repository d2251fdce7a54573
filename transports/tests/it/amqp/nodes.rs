//! Broker URL lists (`amqp.url` as a list, issue 15) and quorum hello queues, on the
//! shared single node: a listed node that is down is skipped by the listener and the
//! dialer; when every node is down the error names each; a quorum hello queue is
//! declared as one and RabbitMQ 3.10's quorum queues drop expired hellos (per-message
//! TTL). Losing a node of a real three-node cluster is `tests/tests/it/brokers`.

use std::time::{Duration, Instant};

use redpepper_tests::free_port;
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_transports::amqp::{AmqpListener, AmqpOptions, BrokerUrl, BrokerUrls};

use super::amqp_support::*;

/// `user`'s URL to a port where nothing listens, then to the node.
fn down_then_up(env: &Env, user: &str) -> BrokerUrls {
    let down = format!(
        "amqp://{user}:{}@127.0.0.1:{}/{}",
        password(user),
        free_port(),
        env.vhost
    );
    BrokerUrls::new(
        "amqp.url",
        vec![BrokerUrl::parse("amqp.url", &down).unwrap(), env.url(user)],
    )
    .unwrap()
}

fn quorum() -> AmqpOptions {
    AmqpOptions {
        quorum_hello_queue: true,
        ..options()
    }
}

/// `rabbitmqctl list_queues -p VHOST name type messages`: the hello queue's row.
fn hello_queue_row(env: &Env) -> Vec<String> {
    let out = env
        .node
        .ctl(&["list_queues", "-p", &env.vhost, "name", "type", "messages"])
        .unwrap();
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|row| row.first().map(String::as_str) == Some(QUEUE))
        .unwrap_or_else(|| panic!("no {QUEUE} in {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_node_that_is_down_is_skipped_and_the_hello_queue_is_quorum() {
    let env = Env::new(RabbitNode::shared(), "nodes-skip", &["a1"]);
    let listener = AmqpListener::bind(
        down_then_up(&env, "manager"),
        QUEUE,
        None,
        1 << 20,
        quorum(),
    )
    .await
    .unwrap();
    tokio::time::timeout(WAIT, listener.wait_connected())
        .await
        .expect("the listener connects through the node that is up");
    let mut manager = TestManager::serve(listener, config());
    let row = tokio::task::block_in_place(|| hello_queue_row(&env));
    assert_eq!(row.get(1).map(String::as_str), Some("quorum"), "{row:?}");

    let dialer = redpepper_transports::amqp::AmqpDialer::new(
        down_then_up(&env, "a1"),
        QUEUE,
        "a1",
        None,
        1 << 20,
    )
    .unwrap()
    .with_options(options());
    // From a random node each time, the node just used last: every dial works.
    for _ in 0..4 {
        let (session, _) = agent(&dialer, "a1", "good", config()).await;
        let session = session.unwrap();
        let seen = manager.next().await.unwrap();
        assert_eq!(seen.agent_id(), Some("a1"));
        drop(session);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_down_names_each_without_passwords() {
    let env = Env::new(RabbitNode::shared(), "nodes-down", &["a1"]);
    let urls: Vec<String> = (0..2)
        .map(|_| format!("amqp://a1:{}@127.0.0.1:{}/x", password("a1"), free_port()))
        .collect();
    let dialer = redpepper_transports::amqp::AmqpDialer::new(
        BrokerUrls::parse("amqp.url", &urls).unwrap(),
        QUEUE,
        "a1",
        None,
        1 << 20,
    )
    .unwrap();
    let e = dialer.connect().await.unwrap_err().to_string();
    assert!(e.contains("no broker node usable"), "{e}");
    for u in &urls {
        let port = u.rsplit(':').next().unwrap().split('/').next().unwrap();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{port} in {e}");
    }
    assert!(!e.contains(&password("a1")), "{e}");
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_hello_queue_drops_expired_hellos() {
    let env = Env::new(RabbitNode::shared(), "nodes-ttl", &["a1"]);
    // Declare the quorum hello queue, then stop consuming it (it stays: shared).
    let listener = AmqpListener::bind(env.url("manager"), QUEUE, None, 1 << 20, quorum())
        .await
        .unwrap();
    // The listener connects and declares in the background: the queue exists once it
    // is connected.
    tokio::time::timeout(WAIT, listener.wait_connected())
        .await
        .expect("the listener connects and declares the hello queue");
    drop(listener);
    let (_conn, ch) = env.publisher("manager").await;
    let props = lapin::BasicProperties::default().with_expiration("300".into());
    // Confirmed and not returned: it is in the quorum queue (a quorum queue confirms
    // once the message is in its log). Then it expires there (RabbitMQ >= 3.10:
    // message TTL on quorum queues); without TTL it would stay for good.
    publish_routed(&ch, "", QUEUE, b"hello that nobody takes", props).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let row = tokio::task::block_in_place(|| hello_queue_row(&env));
        assert_eq!(row.get(1).map(String::as_str), Some("quorum"), "{row:?}");
        if row.get(2).map(String::as_str) == Some("0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired hello is still in the quorum queue: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
