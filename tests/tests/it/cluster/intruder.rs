//! A broker user that is not a manager: it may publish to the cluster exchange
//! (write permission on `redpepper.cluster`) but is not in `cluster.manager_users`.
//! Its well-formed cluster messages (a heartbeat of a node of its own, an agent of
//! that node, an agent claimed for node A), published with its own `user_id`, reach
//! every node and none acts on them: the nodes log the drop naming the user, and
//! neither the fake node nor the fake agents show anywhere. Claiming to be the
//! managers' user is refused by RabbitMQ itself.
//!
//! Ordering instead of waiting for nothing: after the intruder's messages are confirmed
//! (queued to every node), a heartbeat of a probe node is published as the managers'
//! user; once every node lists the probe, each has read what was queued before it.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use redpepper_cluster::{AgentEntry, ClusterMessage, Heartbeat};
use redpepper_core::Value;
use redpepper_tests::TIMEOUT;

use super::*;

const EVIL_NODE: &str = "mgr-evil";
const PROBE_NODE: &str = "mgr-probe";

#[test]
fn a_broker_user_that_is_no_manager_is_not_believed() {
    let (w, _) = shared();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let marks: Vec<usize> = [A, B, C]
        .iter()
        .map(|n| w.fleet.node(n).proc.line_count())
        .collect();
    let url = |user: &str| w.node.amqp_url(user, &password(user), &w.vhost);
    let touched = w.fleet.path("intruder-was-here");

    rt.block_on(async {
        let (_intruder_conn, intruder) = channel(&url(INTRUDER)).await;
        for (from, to, message) in [
            (EVIL_NODE, "all", heartbeat()),
            (EVIL_NODE, "all", agent_up("evil-00")),
            (A, "all", agent_up("evil-01")),
            (EVIL_NODE, "node.mgr-b", run_command("c-tls-b", &touched)),
        ] {
            publish(&intruder, from, to, &message, INTRUDER)
                .await
                .unwrap_or_else(|e| panic!("the broker refused {INTRUDER}'s {to} message: {e}"));
        }
        // Claiming the managers' user: RabbitMQ checks user_id against the login.
        let spoof = publish(&intruder, A, "all", &agent_up("evil-02"), MANAGER_USER).await;
        let err = spoof.expect_err("RabbitMQ let a user publish with another user's user_id");
        assert!(err.to_string().contains("user_id"), "{err}");

        let (_manager_conn, manager) = channel(&url(MANAGER_USER)).await;
        publish(&manager, PROBE_NODE, "all", &heartbeat(), MANAGER_USER)
            .await
            .unwrap_or_else(|e| panic!("the probe heartbeat as {MANAGER_USER}: {e}"));
    });

    for node in [A, B, C] {
        let m = w.fleet.node(node);
        let (body, by_name) = wait_until(
            &format!(
                "node {node} to list the probe node {PROBE_NODE} (heartbeat from {MANAGER_USER})"
            ),
            || w.diag(&[]),
            || {
                let (body, by_name) = cluster_view(m)?;
                if by_name.contains_key(PROBE_NODE) {
                    Ok((body, by_name))
                } else {
                    Err(body.to_string())
                }
            },
        );
        assert!(
            !by_name.contains_key(EVIL_NODE),
            "node {node} believed {INTRUDER}'s heartbeat of {EVIL_NODE}: {body}"
        );
        let view = agents_view(m).unwrap_or_else(|e| panic!("{node}: {e}"));
        for fake in ["evil-00", "evil-01", "evil-02"] {
            assert!(
                !view.contains_key(fake),
                "node {node} lists {fake}, announced by {INTRUDER}: {view:?}"
            );
        }
    }
    for (node, mark) in [A, B, C].into_iter().zip(marks) {
        let m = w.fleet.node(node);
        m.proc
            .wait_for_line_after(
                mark,
                |l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .is_ok_and(|v| v["level"] == "WARN" && l.contains(INTRUDER))
                },
                TIMEOUT,
            )
            .unwrap_or_else(|e| {
                panic!("node {node} did not log a warning naming {INTRUDER} for its dropped messages: {e}")
            });
    }
    // The command B was asked to start on c-tls-b never ran: a command started after
    // it on the same agent has finished, and the file is not there.
    let r = ctl_on(
        &w.fleet,
        B,
        &["run", "c-tls-b", "command.Run", "-k", "command=echo after"],
    );
    assert_eq!(r.code, 0, "a run on c-tls-b via {B}: {r}");
    assert!(
        !touched.exists(),
        "{INTRUDER} ran a command on c-tls-b through {B}: {} exists\n{}",
        touched.display(),
        w.diag(&[])
    );
}

/// A connection and a channel with publisher confirms on it, as `url`'s user.
async fn channel(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("connect to the broker: {e}"));
    let ch = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"));
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("confirm_select: {e}"));
    (conn, ch)
}

/// Publish `message` from node `from` to routing key `to` of the cluster exchange,
/// mandatory, with `user_id`; wait for the broker's confirm.
async fn publish(
    ch: &Channel,
    from: &str,
    to: &str,
    message: &ClusterMessage,
    user_id: &str,
) -> Result<(), lapin::Error> {
    let body = message.encode(from).unwrap();
    let props = BasicProperties::default().with_user_id(ShortString::from(user_id));
    let opts = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    ch.basic_publish(
        ShortString::from(format!("{CLUSTER}.cluster")),
        ShortString::from(to),
        opts,
        &body,
        props,
    )
    .await?
    .await
    .map(drop)
}

fn now_us() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn heartbeat() -> ClusterMessage {
    ClusterMessage::Heartbeat(Heartbeat {
        version: "0.4.0".into(),
        started_us: now_us(),
        agents: 0,
        gen: 1,
        interval_ms: 1000,
        watching_events: false,
    })
}

fn agent_up(id: &str) -> ClusterMessage {
    ClusterMessage::AgentUp {
        gen: 2,
        agent: AgentEntry {
            id: id.into(),
            transport: "tls".into(),
            remote_addr: Some("127.0.0.1:9".into()),
            version: "0.4.0".into(),
            since_us: now_us(),
            last_rtt_us: None,
        },
    }
}

/// The `command` request the managers send to start `command.Run` (`touch FILE`).
fn run_command(agent: &str, file: &std::path::Path) -> ClusterMessage {
    let run = Value::Map(vec![(
        Value::from("command"),
        Value::from(format!("touch {}", file.display())),
    )]);
    ClusterMessage::Call {
        corr: 1,
        agent: agent.into(),
        method: "command".into(),
        args: Vec::new(),
        kwargs: vec![
            ("id".to_owned(), Value::from("deadbeef".repeat(4))),
            ("cmdtype".to_owned(), Value::from("command.Run")),
            ("args".to_owned(), Value::Array(Vec::new())),
            ("kwargs".to_owned(), run),
        ],
        timeout_ms: 5000,
    }
}
