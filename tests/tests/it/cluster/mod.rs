//! The manager cluster end to end (issue 14, docs/CLUSTER.md): two or three real
//! `redpepper-manager` processes joined through one private RabbitMQ node (a vhost per
//! cluster, the shared node of this test binary), real `redpepper-agent` processes
//! over TLS TCP, WebSocket and AMQP spread over them, driven through `redpepper-ctl` and
//! plain HTTP on the admin APIs, as an operator would.
//!
//! Every wait is bounded (a generous [`TIMEOUT`]) and a failure says which node, which
//! agent, what was expected and what was seen, followed by the last log lines of every
//! manager (killed ones too) and agent. A lone manager is covered, unchanged, by every
//! other module of this binary: nothing here repeats it.
//!
//! # Layout
//! - this file: [`World`] (a cluster fleet, its broker users and its agents), the
//!   cluster shared by the tests that leave it as it is ([`shared`]), views of the
//!   admin API and `redpepper-ctl` against one node.
//! - `fleet_wide`: any node lists, calls and runs every agent, sees every node's
//!   events and the other nodes.
//! - `failover`: kill -9 a node: its agents move, calls to it fail clearly, results
//!   still reach the operator; the node rejoins (its own cluster).
//! - `identity`: one agent id connecting to two nodes: one session cluster-wide.
//! - `intruder`: a broker user that is not a manager publishes cluster messages:
//!   no node acts on them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod failover;
mod fleet_wide;
mod identity;
mod intruder;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redpepper_tests::fleet::{ClusterAgent, Entry, Fleet, FleetBuilder, ManagerProc};
use redpepper_tests::rabbitmq::{BrokerUser, Perms, RabbitNode};
use redpepper_tests::serde_json::Value;
use redpepper_tests::{bin, Proc, TIMEOUT};

use crate::support::admin::{finish, CtlRun};

/// The AMQP transport's hello queue, shared by the nodes.
pub const QUEUE: &str = "redpepper.manager";
/// `cluster.name`.
pub const CLUSTER: &str = "redpepper";
/// The broker user every node logs in as (cluster and AMQP transport).
pub const MANAGER_USER: &str = "manager";

/// A broker user's password.
pub fn password(user: &str) -> String {
    format!("pw-{user}")
}

/// How an agent of a [`World`] reaches the cluster.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// TLS TCP to these nodes, in this order.
    Tls(&'a [&'a str]),
    /// WebSocket to these nodes, in this order.
    Websocket(&'a [&'a str]),
    /// AMQP: the hello queue every node consumes.
    Amqp,
}

/// A cluster: its fleet (files, nodes), its vhost on the shared RabbitMQ node, and the
/// agent processes it started.
pub struct World {
    pub node: &'static RabbitNode,
    pub vhost: String,
    pub fleet: Fleet,
    pub agents: Vec<(String, Proc)>,
}

impl World {
    /// A cluster of `nodes` on `vhost` (created, with broker users: [`MANAGER_USER`]
    /// with [`Perms::cluster_manager`], one per agent of `amqp_agents` with
    /// [`Perms::agent`], and `extra_users`), knowing agents `ids` (TLS/WebSocket, from
    /// loopback) and `amqp_agents` (pinned to their broker user). Managers: tls,
    /// websocket and amqp, admin API on, keepalive 1 s/2 s; agents the same, JSON logs.
    /// `manager_extra` is further manager YAML (its top-level keys win). No node is
    /// started. `tied`: for a world kept in a `static`, its processes die with the test
    /// process ([`FleetBuilder::tied_to_test_process`]).
    pub fn new(
        vhost: &str,
        nodes: &[&str],
        ids: &[&str],
        amqp_agents: &[&str],
        extra_users: Vec<BrokerUser>,
        manager_extra: &str,
        tied: bool,
    ) -> World {
        let node = RabbitNode::shared();
        let mut users = vec![BrokerUser {
            name: MANAGER_USER.into(),
            password: password(MANAGER_USER),
            perms: Perms::cluster_manager(CLUSTER, QUEUE),
        }];
        users.extend(amqp_agents.iter().map(|id| BrokerUser {
            name: (*id).into(),
            password: password(id),
            perms: Perms::agent(id),
        }));
        users.extend(extra_users);
        node.add_users(vhost, &users);
        let url = node.amqp_url(MANAGER_USER, &password(MANAGER_USER), vhost);
        let mut b = builder(&url, nodes)
            .agents(ids)
            .entries(amqp_agents.iter().map(|id| Entry::pinned(id)))
            .extra(manager_extra);
        if tied {
            b = b.tied_to_test_process();
        }
        let fleet = b.build();
        World {
            node,
            vhost: vhost.to_owned(),
            fleet,
            agents: Vec::new(),
        }
    }

    /// Start agent `id` reaching the cluster `via`, plus `extra` YAML; the process is
    /// the caller's (see [`World::keep`]).
    pub fn spawn_agent(&self, id: &str, via: Via<'_>, extra: &str) -> Proc {
        let f = &self.fleet;
        let yml = match via {
            Via::Tls(nodes) => f.cluster_agent_yml(id, ClusterAgent::Tls(nodes), extra),
            Via::Websocket(nodes) => f.cluster_agent_yml(id, ClusterAgent::Websocket(nodes), extra),
            Via::Amqp => {
                let url = self.node.amqp_url(id, &password(id), &self.vhost);
                let amqp = format!("transport: amqp\namqp:\n  url: {url}\n  queue: {QUEUE}\n");
                let base = f.agent_yml(id, &redpepper_tests::fleet::secret_of(id), &amqp);
                redpepper_tests::fleet::overlay(&base, extra)
            }
        };
        let path = f.write_agent_yml(id, &yml);
        f.spawn_agent_from(id, &path, &[])
    }

    /// Keep `proc` as agent `id` of this world (its log shows in [`World::diag`]).
    pub fn keep(&mut self, id: &str, proc: Proc) {
        self.agents.push((id.to_owned(), proc));
    }

    /// Start agent `id` and keep it.
    pub fn start_agent(&mut self, id: &str, via: Via<'_>) {
        let proc = self.spawn_agent(id, via, "");
        self.keep(id, proc);
    }

    /// The last log lines of every manager (killed ones too), every kept agent and
    /// `more`: what a failure message ends with.
    pub fn diag(&self, more: &[&Proc]) -> String {
        let mut out = self.fleet.nodes_tail(30);
        for (id, p) in &self.agents {
            out.push_str(&format!(
                "\n--- agent {id} (pid {}):\n{}\n",
                p.pid(),
                p.tail(15)
            ));
        }
        for p in more {
            out.push_str(&format!(
                "\n--- {} (pid {}):\n{}\n",
                p.name(),
                p.pid(),
                p.tail(15)
            ));
        }
        out
    }

    /// Wait until node `node` logged "agent connected" for `id` at line `from` or later.
    pub fn connected_on(&self, node: &str, id: &str, from: usize) -> usize {
        let m = self.fleet.node(node);
        match m.proc.wait_for_line_after(
            from,
            |l| {
                serde_json::from_str::<Value>(l)
                    .is_ok_and(|v| v["message"] == "agent connected" && v["agent"] == id)
            },
            TIMEOUT * 2,
        ) {
            Ok((i, _)) => i,
            Err(e) => panic!(
                "agent {id} did not connect to node {node}: {e}\n{}",
                self.diag(&[])
            ),
        }
    }

    /// The node whose log says "agent connected" for `id` (waits for one).
    pub fn node_of(&self, id: &str) -> String {
        wait_until(
            &format!("a node logging agent {id} connected"),
            || self.diag(&[]),
            || {
                for name in self.fleet.node_names() {
                    let logged = self.fleet.node_runs(&name).iter().any(|m| {
                        m.proc
                            .find_line(|l| {
                                serde_json::from_str::<Value>(l).is_ok_and(|v| {
                                    v["message"] == "agent connected" && v["agent"] == id
                                })
                            })
                            .is_some()
                    });
                    if logged {
                        return Ok(name);
                    }
                }
                Err("no node logged it".to_owned())
            },
        )
    }

    /// Wait until node `node`'s `/v1/agents` shows every `(agent, node)` of `want`
    /// exactly once, with that node.
    pub fn wait_view(&self, node: &str, want: &[(&str, &str)], more: &[&Proc]) {
        let what = format!("node {node}'s /v1/agents to show (agent, node) {want:?}");
        wait_until(
            &what,
            || self.diag(more),
            || {
                let view = agents_view(self.fleet.node(node))?;
                for (id, on) in want {
                    match view.get(*id).map(Vec::as_slice) {
                        Some([one]) if one == on => {}
                        other => {
                            return Err(format!(
                                "{id} listed with node(s) {other:?}; whole view: {view:?}"
                            ))
                        }
                    }
                }
                Ok(())
            },
        );
    }
}

/// The managers of a cluster at broker URL `url`: tls, websocket (wss with the fleet's
/// certificate) and amqp (hello queue [`QUEUE`]), admin API on, keepalive 1 s / 2 s
/// and a 10 s hello timeout on both sides, agents logging JSON.
pub fn builder(url: &str, nodes: &[&str]) -> FleetBuilder {
    Fleet::builder()
        .transports(&["tls", "websocket", "amqp"])
        .websocket("")
        .amqp(url, QUEUE)
        .admin()
        .agent_host("localhost")
        .ping_interval(1)
        .hello_timeout(10)
        .extra("ping_timeout: 2\n")
        .agent_defaults("ping_interval: 1\nping_timeout: 2\nhello_timeout: 10\n")
        .agent_json_logs()
        .cluster(url, nodes)
        .cluster_name(CLUSTER)
}

/// Poll `check` every 100 ms until it is `Ok` (at most twice [`TIMEOUT`]); on time out
/// panic with `what`, the last thing `check` saw and `diag()`.
pub fn wait_until<T>(
    what: &str,
    diag: impl Fn() -> String,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let limit = TIMEOUT * 2;
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!(
                    "waiting for {what}: not within {limit:?}; last seen: {seen}\n{}",
                    diag()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `GET /v1/agents` of `m`: agent id → the node(s) it is listed with (more than one
/// is a bug the caller reports).
pub fn agents_view(m: &ManagerProc) -> Result<BTreeMap<String, Vec<String>>, String> {
    let a = m.get("/v1/agents");
    if a.status != 200 {
        return Err(format!("GET /v1/agents: {} {}", a.status, a.body));
    }
    let body = a.json();
    let list = body["agents"]
        .as_array()
        .ok_or_else(|| format!("no agents array: {body}"))?;
    let mut view: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in list {
        let id = a["id"].as_str().unwrap_or("?").to_owned();
        let node = a["node"].as_str().unwrap_or("(no node field)").to_owned();
        view.entry(id).or_default().push(node);
    }
    Ok(view)
}

/// `GET /v1/cluster` of `m`: node name → its entry.
pub fn cluster_view(m: &ManagerProc) -> Result<(Value, BTreeMap<String, Value>), String> {
    let a = m.get("/v1/cluster");
    if a.status != 200 {
        return Err(format!("GET /v1/cluster: {} {}", a.status, a.body));
    }
    let body = a.json();
    let nodes = body["nodes"]
        .as_array()
        .ok_or_else(|| format!("no nodes array: {body}"))?;
    let by_name = nodes
        .iter()
        .map(|n| (n["name"].as_str().unwrap_or("?").to_owned(), n.clone()))
        .collect();
    Ok((body, by_name))
}

/// `redpepper-ctl --manager NODE'S-ADMIN-URL --token-file … ARGS` (not started).
pub fn ctl_cmd_on(f: &Fleet, node: &str, args: &[&str]) -> Command {
    let url = f
        .node(node)
        .admin_url
        .as_deref()
        .unwrap_or_else(|| panic!("node {node} has no admin API"));
    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["--manager", url])
        .arg("--token-file")
        .arg(f.token_file.as_ref().expect("the admin API is on"))
        .args(args)
        .env_remove("REDPEPPER_MANAGER")
        .env_remove("REDPEPPER_ADMIN_TOKEN");
    cmd
}

/// `redpepper-ctl ARGS` against node `node`, run to its end.
pub fn ctl_on(f: &Fleet, node: &str, args: &[&str]) -> CtlRun {
    finish(ctl_cmd_on(f, node, args))
}

/// The shared cluster's nodes.
pub const A: &str = "mgr-a";
pub const B: &str = "mgr-b";
pub const C: &str = "mgr-c";

/// An agent id the shared cluster knows that no process takes at start (`identity`).
pub const TWIN: &str = "twin-00";

/// The broker user that may publish to the cluster exchange but is no manager.
pub const INTRUDER: &str = "intruder";

/// The shared cluster: nodes A, B, C on vhost `cluster-shared` and its agents, each
/// listed by A with its node (returned: agent id → node): `c-tls-a`/`c-ws-a` on A,
/// `c-tls-b`/`c-ws-b` on B, `c-tls-c` on C, `c-amqp-1` on B (started while B was the
/// only node), `c-amqp-2` wherever the shared hello queue gave it. Started by the first
/// test that asks; its processes die with the test process. Tests on it leave its
/// agents and nodes as they are. When it cannot start, the first test shows why and
/// the others fail at once, pointing to it (not starting it again, one timeout each).
pub fn shared() -> &'static (World, BTreeMap<String, String>) {
    type Shared = Result<(World, BTreeMap<String, String>), String>;
    static SHARED: OnceLock<Shared> = OnceLock::new();
    let mut first = false;
    let shared = SHARED.get_or_init(|| {
        first = true;
        std::panic::catch_unwind(start_shared).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(no message)".to_owned())
        })
    });
    match shared {
        Ok(s) => s,
        Err(e) if first => panic!("the shared cluster did not start: {e}"),
        Err(_) => {
            panic!("the shared cluster did not start: see the first cluster test that failed")
        }
    }
}

fn start_shared() -> (World, BTreeMap<String, String>) {
    let intruder = BrokerUser {
        name: INTRUDER.into(),
        password: password(INTRUDER),
        perms: Perms {
            configure: "^intruder\\..*".into(),
            write: format!("^{CLUSTER}\\.cluster$"),
            read: "^intruder\\..*".into(),
        },
    };
    let mut w = World::new(
        "cluster-shared",
        &[A, B, C],
        &["c-tls-a", "c-ws-a", "c-tls-b", "c-ws-b", "c-tls-c", TWIN],
        &["c-amqp-1", "c-amqp-2"],
        vec![intruder],
        "",
        true,
    );
    // B alone first: the first AMQP agent's hello can only be taken by B.
    w.fleet.spawn_node(B);
    w.start_agent("c-amqp-1", Via::Amqp);
    w.connected_on(B, "c-amqp-1", 0);
    w.fleet.spawn_node(A);
    w.fleet.spawn_node(C);
    w.start_agent("c-tls-a", Via::Tls(&[A]));
    w.start_agent("c-ws-a", Via::Websocket(&[A]));
    w.start_agent("c-tls-b", Via::Tls(&[B]));
    w.start_agent("c-ws-b", Via::Websocket(&[B]));
    w.start_agent("c-tls-c", Via::Tls(&[C]));
    w.start_agent("c-amqp-2", Via::Amqp);
    let mut nodes: BTreeMap<String, String> = [
        ("c-tls-a", A),
        ("c-ws-a", A),
        ("c-tls-b", B),
        ("c-ws-b", B),
        ("c-tls-c", C),
        ("c-amqp-1", B),
    ]
    .into_iter()
    .map(|(a, n)| (a.to_owned(), n.to_owned()))
    .collect();
    for (id, node) in &nodes {
        w.connected_on(node, id, 0);
    }
    nodes.insert("c-amqp-2".into(), w.node_of("c-amqp-2"));
    let want: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(a, n)| (a.as_str(), n.as_str()))
        .collect();
    w.wait_view(A, &want, &[]);
    (w, nodes)
}
