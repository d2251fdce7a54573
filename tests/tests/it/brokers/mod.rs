//! Broker node loss (issue 15): a RabbitMQ cluster of three private nodes
//! ([`RabbitCluster`]), two `redpepper-manager` processes in a manager cluster with
//! `amqp.url` and `cluster.url` listing all three nodes and `amqp.queue_type: quorum`,
//! and AMQP agents (`redpepper-agent` processes) listing all three too.
//!
//! For each manager in turn: kill -9 the broker node its AMQP listener is connected to,
//! while a call from it to a frozen agent of its own is in flight. The call fails with
//! an error naming the lost broker connection; the manager reconnects through another
//! node; the hello queue is still there, still a quorum queue; every agent comes back
//! and answers new calls; the node started again rejoins the RabbitMQ cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::mpsc;

use redpepper_tests::fleet::{http, secret_of, Answer, Entry, Fleet, ManagerProc, ADMIN_TOKEN};
use redpepper_tests::rabbitmq::{BrokerUser, Perms, RabbitCluster};
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{Proc, TIMEOUT};

use crate::cluster::{
    agents_view, builder, password, wait_until, A, B, CLUSTER, MANAGER_USER, QUEUE,
};

const VHOST: &str = "brokers";
const AGENTS: [&str; 4] = ["bk-1", "bk-2", "bk-3", "bk-4"];

struct World {
    rmq: RabbitCluster,
    fleet: Fleet,
    agents: Vec<(String, Proc)>,
}

impl World {
    fn diag(&self) -> String {
        let mut out = self.fleet.nodes_tail(30);
        for (id, p) in &self.agents {
            out.push_str(&format!("\n--- agent {id}:\n{}\n", p.tail(15)));
        }
        out
    }

    fn agent(&self, id: &str) -> &Proc {
        &self.agents.iter().find(|(a, _)| a == id).unwrap().1
    }

    /// Wait until manager `on`'s `/v1/agents` lists every agent; agent → node.
    fn all_listed(&self, on: &str) -> BTreeMap<String, String> {
        wait_until(
            &format!("{on} to list every agent {AGENTS:?}"),
            || self.diag(),
            || {
                let view = agents_view(self.fleet.node(on))?;
                let mut out = BTreeMap::new();
                for id in AGENTS {
                    match view.get(id).map(Vec::as_slice) {
                        Some([node]) => out.insert(id.to_owned(), node.clone()),
                        other => return Err(format!("{id}: {other:?} in {view:?}")),
                    };
                }
                Ok(out)
            },
        )
    }

    /// The index of the broker node manager `m`'s AMQP listener connected to last
    /// (its newest "listener ready" line: an earlier one may name a node it has left
    /// since, as both managers do when a round before killed their common node).
    fn listener_node(&self, m: &ManagerProc, from: usize) -> (usize, usize) {
        let is_ready = |l: &str| l.contains("AMQP listener ready");
        let (line, _) = m
            .proc
            .wait_for_line_after(from, is_ready, TIMEOUT * 2)
            .unwrap_or_else(|e| panic!("no AMQP listener ready line: {e}\n{}", self.diag()));
        let text = m
            .proc
            .lines()
            .into_iter()
            .rfind(|l| is_ready(l))
            .unwrap_or_default();
        let port = text
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no broker port in {text}"));
        let node = self
            .rmq
            .by_port(port)
            .unwrap_or_else(|| panic!("port {port} is no broker node: {text}"));
        (node, line)
    }

    fn hello_queue_type(&self, node: usize) -> String {
        let out = self
            .rmq
            .node(node)
            .ctl(&["list_queues", "-p", VHOST, "name", "type"])
            .unwrap_or_else(|e| panic!("{e}"));
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(QUEUE))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
            .unwrap_or_else(|| format!("(no {QUEUE} in {out})"))
    }
}

fn call(m: &ManagerProc, id: &str, timeout: u64) -> mpsc::Receiver<Answer> {
    let (tx, rx) = mpsc::channel();
    let admin = m.admin();
    let path = format!("/v1/agents/{id}/calls");
    std::thread::spawn(move || {
        let body = json!({"method": "echo", "args": ["hi"], "timeout": timeout});
        let _ = tx.send(http(admin, "POST", &path, Some(ADMIN_TOKEN), Some(&body)));
    });
    rx
}

fn start() -> World {
    let rmq = RabbitCluster::start();
    let mut users = vec![BrokerUser {
        name: MANAGER_USER.into(),
        password: password(MANAGER_USER),
        perms: Perms::cluster_manager(CLUSTER, QUEUE),
    }];
    users.extend(AGENTS.iter().map(|id| BrokerUser {
        name: (*id).into(),
        password: password(id),
        perms: Perms::agent(id),
    }));
    rmq.node(0).add_users(VHOST, &users);
    let list = rmq.amqp_url_list(MANAGER_USER, &password(MANAGER_USER), VHOST);
    // Managers do not ping: the frozen agent holding a call stays connected until
    // its manager's broker node is killed.
    let fleet = builder(&list, &[A, B])
        .entries(AGENTS.iter().map(|id| Entry::pinned(id)))
        .extra(&format!(
            "ping_interval: 0\namqp:\n  url: {list}\n  queue: {QUEUE}\n  queue_type: quorum\n"
        ))
        .build();
    let mut w = World {
        rmq,
        fleet,
        agents: Vec::new(),
    };
    w.fleet.spawn_node(A);
    w.fleet.spawn_node(B);
    for id in AGENTS {
        let urls = w.rmq.amqp_url_list(id, &password(id), VHOST);
        let amqp = format!("transport: amqp\namqp:\n  url: {urls}\n  queue: {QUEUE}\n");
        let yml = w.fleet.agent_yml(id, &secret_of(id), &amqp);
        let path = w.fleet.write_agent_yml(id, &yml);
        let proc = w.fleet.spawn_agent_from(id, &path, &[]);
        w.agents.push((id.to_owned(), proc));
    }
    w
}

/// Kill -9 the broker node of manager `mgr`'s listener, with a call in flight on one of
/// its agents; see the module docs.
fn lose_the_node_of(w: &World, mgr: &str, other: &str) {
    let placed = w.all_listed(mgr);
    let m = w.fleet.node(mgr);
    let (dead, _) = w.listener_node(m, 0);
    assert_eq!(w.hello_queue_type(dead), "quorum", "{}", w.diag());
    let Some((held, _)) = placed.iter().find(|(_, n)| n.as_str() == mgr) else {
        panic!(
            "no agent on {mgr} (placement {placed:?}): the test needs one\n{}",
            w.diag()
        );
    };
    let paused = w.agent(held).pause();
    let in_flight = call(m, held, 50);
    wait_until(
        &format!("the call from {mgr} to {held} in flight"),
        || w.diag(),
        || match m.get(&format!("/v1/agents/{held}")).json() {
            a if a["calls_in_flight"] == 1 => Ok(()),
            a => Err(a.to_string()),
        },
    );
    let from = m.proc.line_count();
    w.rmq.node(dead).kill();

    let answer = in_flight
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|e| panic!("the call in flight on {held} hung: {e}\n{}", w.diag()));
    paused.resume();
    let body: Value = answer.json();
    assert_ne!(answer.status, 200, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("broker connection lost"),
        "the call in flight must fail naming the lost broker connection: {} {body}\n{}",
        answer.status,
        w.diag()
    );

    // The manager reconnects through another node; the hello queue is still a quorum
    // queue there; every agent is back and answers.
    let (now, _) = w.listener_node(m, from);
    assert_ne!(now, dead, "{}", w.diag());
    assert_eq!(w.hello_queue_type(now), "quorum", "{}", w.diag());
    for on in [mgr, other] {
        w.all_listed(on);
    }
    for id in AGENTS {
        let answer = wait_until(
            &format!("a new call from {mgr} to {id} to succeed"),
            || w.diag(),
            || {
                let a = call(m, id, 5)
                    .recv_timeout(TIMEOUT)
                    .map_err(|e| e.to_string())?;
                if a.status == 200 {
                    Ok(a)
                } else {
                    Err(format!("{} {}", a.status, a.body))
                }
            },
        );
        assert_eq!(
            answer.json()["data"]["args"],
            json!(["hi"]),
            "{}",
            answer.body
        );
    }

    // The node comes back and rejoins the RabbitMQ cluster.
    w.rmq.node(dead).start_again();
    w.rmq.wait_running(3);
}

#[test]
fn kill_9_the_broker_node_of_each_manager_sessions_come_back_through_the_others() {
    let w = start();
    lose_the_node_of(&w, A, B);
    lose_the_node_of(&w, B, A);
}
