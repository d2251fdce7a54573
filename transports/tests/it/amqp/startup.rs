//! A manager started while its broker is down: the AMQP listener is bound anyway (the
//! manager's other listeners must not go down with it), connects once the broker is
//! up, and agents then get sessions through it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::amqp as amqp_support;

use amqp_support::*;
use redpepper_core::Value;
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_transports::amqp::AmqpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_bound_while_the_broker_is_down_connects_when_it_comes_up() {
    let node: &'static RabbitNode = Box::leak(Box::new(RabbitNode::start()));
    let env = Env::new(node, "late-broker", &["a1"]);
    // Nothing listens on the broker's port from here on, until the node starts again.
    tokio::task::spawn_blocking(|| node.stop()).await.unwrap();

    let listener = AmqpListener::bind(env.url("manager"), QUEUE, None, 1 << 20, options())
        .await
        .expect("bind must not fail when the broker is merely down");
    assert!(!listener.is_connected());

    tokio::task::spawn_blocking(|| node.start_again())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, listener.wait_connected())
        .await
        .expect("the listener did not connect once the broker was up");

    let mut manager = TestManager::serve(listener, config());
    let (agent_side, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();
    let v = manager_side
        .call("echo", strs(&["late"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["late"])));
    agent_side.close("done").await;
    // The node is leaked ('static for spawn_blocking): stop it here.
    tokio::task::spawn_blocking(|| node.stop()).await.unwrap();
}
