//! kill -9 RabbitMQ while a call to an AMQP agent is in flight: the manager's broker
//! connection is lost, which ends every session on it, so the caller gets
//! `502 connection_lost` at once; the broker restarted (same node, ports and users),
//! the manager's listener and the agent reconnect by themselves and a new call
//! succeeds. A node of its own: this test kills it.

use redpepper_tests::fleet::Entry;
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_tests::TIMEOUT;

use super::{assert_connection_lost, builder, call_succeeds, PendingCall};
use crate::support::amqp::{broker_users, password, QUEUE};

#[test]
fn kill_9_rabbitmq_mid_call() {
    let node = RabbitNode::start();
    let vhost = "faults";
    node.add_users(vhost, &broker_users(&["a1"]));
    // No pings from the manager: they would end the frozen agent's session first.
    let mut f = builder(&[])
        .entry(Entry::pinned("a1"))
        .no_tls()
        .transports(&["amqp"])
        .amqp(
            &node.amqp_url("manager", &password("manager"), vhost),
            QUEUE,
        )
        .ping_interval(0)
        .build();
    f.spawn_manager();
    let agent_url = node.amqp_url("a1", &password("a1"), vhost);
    let agent = f.spawn_agent_with(
        "a1",
        &format!("transport: amqp\namqp:\n  url: {agent_url}\n  queue: {QUEUE}\n"),
    );
    let m = f.manager();
    let (line, _) = m.connected("a1", 0);

    let paused = agent.pause();
    let call = PendingCall::start(m, "a1");
    let mark = agent.line_count();
    node.kill();
    // The broker's death reaches the manager either on its connection or, when the
    // call's publish was still waiting for the broker's confirm, on that publish: both
    // end the session with "broker connection lost (URL)", naming the broker.
    let (status, body) = call.answer();
    let url = format!("amqp://manager@127.0.0.1:{}/{vhost}", node.port());
    assert_connection_lost("a1", &["transport: "], (status, body.clone()));
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("broker connection lost ({url})")),
        "{body}"
    );
    paused.resume();

    // The agent notices the broker is gone: its session ends, or, when a keepalive
    // hiccup under load had it reconnecting already, its attempt fails.
    agent
        .wait_for_line_after(
            mark,
            |l| l.contains("disconnected from manager") || l.contains("cannot connect to manager"),
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    node.start_again();
    m.connected("a1", line + 1);
    call_succeeds(m, "a1");
}
