//! Clusters: a [`Fleet`] whose builder was given [`FleetBuilder::cluster`] has several
//! managers ("nodes") joined through one RabbitMQ vhost, each with its own
//! `manager-NODE.yml`: the fleet's `manager.yml` plus its own `cluster:` section (node
//! name, broker URL, cluster name) and its own ports, pinned when the files are written
//! (TLS TCP, WebSocket, admin API), so agents' files can list nodes that are not started
//! yet and a node killed with `kill -9` comes back on the same ports.
//!
//! ```no_run
//! use redpepper_tests::fleet::{ClusterAgent, Fleet};
//!
//! let url = "amqp://manager:pw@127.0.0.1:5672/cluster-1";
//! let mut fleet = Fleet::builder()
//!     .agent("a1")
//!     .admin()
//!     .cluster(url, &["mgr-a", "mgr-b"])
//!     .build();
//! fleet.spawn_node("mgr-b");
//! let yml = fleet.cluster_agent_yml("a1", ClusterAgent::Tls(&["mgr-b", "mgr-a"]), "");
//! let agent = fleet.spawn_agent_from("a1", &fleet.write_agent_yml("a1", &yml), &[]);
//! fleet.node("mgr-b").connected("a1", 0);
//! fleet.kill_node("mgr-b"); // kill -9; its log stays readable in `nodes_tail`
//! # drop(agent);
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

use super::builder::FleetBuilder;
use super::manager::ManagerProc;
use super::{write_file, Fleet};
use crate::net::free_port;
use crate::process::TAIL_LINES;

/// The `cluster:` settings of a fleet (see [`FleetBuilder::cluster`]).
#[derive(Debug, Clone)]
pub(super) struct ClusterSpec {
    pub(super) url: String,
    pub(super) name: String,
    pub(super) nodes: Vec<String>,
    pub(super) settings: String,
}

/// One node of a cluster fleet: its file, its pinned ports, its running manager and
/// the managers it ran before (killed or stopped: their logs stay for diagnostics).
#[derive(Debug)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) yml: PathBuf,
    pub(super) tls_port: Option<u16>,
    pub(super) ws_port: Option<u16>,
    pub(super) running: Option<ManagerProc>,
    pub(super) past: Vec<ManagerProc>,
}

/// How a cluster agent reaches its managers (see [`Fleet::cluster_agent_yml`]).
#[derive(Debug, Clone, Copy)]
pub enum ClusterAgent<'a> {
    /// TLS TCP to these nodes: `manager_host` is the list of `127.0.0.1:PORT` of each;
    /// for one node, `manager_host: 127.0.0.1` and `manager_port: PORT`.
    Tls(&'a [&'a str]),
    /// WebSocket (`wss://localhost:PORT/redpepper`) to these nodes: `websocket.url` as
    /// a list or, for one node, the plain value.
    Websocket(&'a [&'a str]),
}

impl FleetBuilder {
    /// Managers `nodes` joined in a cluster through the broker at `url` (`cluster.url`;
    /// `cluster.name` is `redpepper`, see [`FleetBuilder::cluster_name`]), each with its
    /// own `manager-NODE.yml` and ports ([`Fleet::spawn_node`]). The fleet's
    /// `manager.yml` stays the shared part, without a `cluster:` section.
    pub fn cluster(mut self, url: &str, nodes: &[&str]) -> Self {
        self.cluster = Some(ClusterSpec {
            url: url.to_owned(),
            name: "redpepper".to_owned(),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            settings: String::new(),
        });
        self
    }

    /// `cluster.name` (the prefix of the cluster's exchange and queues).
    ///
    /// # Panics
    ///
    /// Before [`FleetBuilder::cluster`].
    pub fn cluster_name(mut self, name: &str) -> Self {
        self.cluster_spec().name = name.to_owned();
        self
    }

    /// Further `cluster:` lines for every node, indented (`"  heartbeat: 1\n"`).
    ///
    /// # Panics
    ///
    /// Before [`FleetBuilder::cluster`].
    pub fn cluster_settings(mut self, yaml: &str) -> Self {
        self.cluster_spec().settings.push_str(yaml);
        self
    }

    fn cluster_spec(&mut self) -> &mut ClusterSpec {
        self.cluster
            .as_mut()
            .unwrap_or_else(|| panic!("FleetBuilder::cluster first"))
    }

    /// Write `manager-NODE.yml` of every node in `dir` (`base` is the fleet's
    /// `manager.yml`): its `cluster:` section and pinned ports.
    pub(super) fn write_nodes(&self, dir: &std::path::Path, base: &str) -> Vec<Node> {
        let Some(spec) = &self.cluster else {
            return Vec::new();
        };
        let listeners = self.listeners();
        spec.nodes
            .iter()
            .map(|name| {
                let tls_port = listeners.iter().any(|l| l == "tls").then(free_port);
                let ws_port = listeners.iter().any(|l| l == "websocket").then(free_port);
                let text = super::overlay(base, &node_yaml(self, spec, name, tls_port, ws_port));
                let yml = dir.join(format!("manager-{name}.yml"));
                write_file(&yml, &text);
                Node {
                    name: name.clone(),
                    yml,
                    tls_port,
                    ws_port,
                    running: None,
                    past: Vec::new(),
                }
            })
            .collect()
    }
}

/// The per-node top-level keys laid over the fleet's `manager.yml`.
fn node_yaml(
    options: &FleetBuilder,
    spec: &ClusterSpec,
    name: &str,
    tls_port: Option<u16>,
    ws_port: Option<u16>,
) -> String {
    let mut y = String::new();
    if let Some(p) = tls_port {
        let _ = writeln!(y, "bind_port: {p}");
    }
    if let (Some(p), Some(body)) = (ws_port, &options.websocket) {
        let _ = write!(y, "websocket:\n  bind: 127.0.0.1:{p}\n{body}");
    }
    if options.admin.is_some() {
        let _ = writeln!(y, "admin_bind: 127.0.0.1:{}", free_port());
    }
    let _ = write!(
        y,
        "cluster:\n  url: {}\n  name: {}\n  node: {name}\n{}",
        spec.url, spec.name, spec.settings
    );
    y
}

impl Fleet {
    /// The node names of a cluster fleet, in the builder's order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn slot(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in this fleet (FleetBuilder::cluster)"))
    }

    fn slot_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in this fleet (FleetBuilder::cluster)"))
    }

    /// `manager-NODE.yml` of node `name`.
    pub fn node_yml(&self, name: &str) -> PathBuf {
        self.slot(name).yml.clone()
    }

    /// Start node `name` (JSON logs, labelled with its name) and wait until its
    /// listeners and admin API are up. A node killed before comes back on its ports.
    ///
    /// # Panics
    ///
    /// When it is running already, or does not get there (the message shows its
    /// output).
    pub fn spawn_node(&mut self, name: &str) -> &ManagerProc {
        let yml = self.slot(name).yml.clone();
        assert!(
            self.slot(name).running.is_none(),
            "node {name} is running already"
        );
        let mut cmd = crate::bin_command("redpepper-manager");
        // Panics keep their backtraces; an error exit shows its message, not a
        // backtrace that pushes it out of the log tail a failure shows.
        cmd.arg("--config-file")
            .arg(&yml)
            .args(["--log-format", "json"])
            .env("RUST_LIB_BACKTRACE", "0");
        let proc = self.spawn(name, cmd);
        let listeners = self.options.listeners();
        let admin = self.options.admin.is_some();
        let ready = ManagerProc::ready(proc, &listeners, admin);
        self.slot_mut(name).running.insert(ready)
    }

    /// The running manager of node `name`.
    ///
    /// # Panics
    ///
    /// When it is not running (not started, or killed).
    pub fn node(&self, name: &str) -> &ManagerProc {
        self.slot(name)
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("node {name} is not running (spawn_node)"))
    }

    /// Every manager node `name` ran, the running one last (killed ones first): to find
    /// what a node logged before it was killed.
    pub fn node_runs(&self, name: &str) -> Vec<&ManagerProc> {
        let n = self.slot(name);
        n.past.iter().chain(n.running.as_ref()).collect()
    }

    /// `kill -9` node `name` (SIGKILL to its process group, by pid: no shutdown, its
    /// connections break) and wait until it is reaped; its log stays for
    /// [`Fleet::nodes_tail`].
    ///
    /// # Panics
    ///
    /// When it is not running.
    pub fn kill_node(&mut self, name: &str) {
        let slot = self.slot_mut(name);
        let proc = slot
            .running
            .take()
            .unwrap_or_else(|| panic!("kill_node: node {name} is not running"));
        proc.proc.kill();
        slot.past.push(proc);
    }

    /// `127.0.0.1:PORT` of node `name`'s TLS TCP listener (pinned: known before it
    /// starts).
    ///
    /// # Panics
    ///
    /// When the fleet serves no TLS TCP.
    pub fn node_tls_addr(&self, name: &str) -> String {
        let port = self
            .slot(name)
            .tls_port
            .unwrap_or_else(|| panic!("node {name} serves no tls"));
        format!("127.0.0.1:{port}")
    }

    /// `wss://localhost:PORT/redpepper` of node `name` (`ws://` when the fleet's
    /// `websocket:` body says `tls: false`).
    ///
    /// # Panics
    ///
    /// When the fleet serves no WebSocket.
    pub fn node_ws_url(&self, name: &str) -> String {
        let port = self
            .slot(name)
            .ws_port
            .unwrap_or_else(|| panic!("node {name} serves no websocket"));
        let plain = self
            .options
            .websocket
            .as_deref()
            .is_some_and(|b| b.contains("tls: false"));
        let scheme = if plain { "ws" } else { "wss" };
        format!("{scheme}://localhost:{port}/redpepper")
    }

    /// The YAML of agent `id` (its secret, [`Fleet::agent_yml`]) reaching the nodes of
    /// `how`, plus `extra` (its top-level keys win).
    pub fn cluster_agent_yml(&self, id: &str, how: ClusterAgent<'_>, extra: &str) -> String {
        let list = |items: Vec<String>| -> String {
            match items.as_slice() {
                [one] => one.clone(),
                _ => format!("[{}]", items.join(", ")),
            }
        };
        let own = match how {
            // One node: the plain `manager_host` and `manager_port` every agent version
            // reads.
            ClusterAgent::Tls([one]) => {
                let addr = self.node_tls_addr(one);
                let (host, port) = addr.rsplit_once(':').unwrap_or((&addr, ""));
                format!("transport: tls\nmanager_host: {host}\nmanager_port: {port}\n")
            }
            ClusterAgent::Tls(nodes) => format!(
                "transport: tls\nmanager_host: {}\n",
                list(nodes.iter().map(|n| self.node_tls_addr(n)).collect())
            ),
            ClusterAgent::Websocket(nodes) => format!(
                "transport: websocket\nwebsocket:\n  url: {}\n",
                list(nodes.iter().map(|n| self.node_ws_url(n)).collect())
            ),
        };
        let base = self.agent_yml(id, &super::secret_of(id), &own);
        super::overlay(&base, extra)
    }

    /// The last lines of every manager every node ran (killed ones too), labelled:
    /// for failure messages.
    pub fn nodes_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            for (i, m) in n.past.iter().chain(n.running.as_ref()).enumerate() {
                let state = match m.proc.exit_status() {
                    Some(s) => format!("exited: {s}"),
                    None => "running".to_owned(),
                };
                let _ = write!(
                    out,
                    "\n--- node {} (run {}, pid {}, {state}), last {lines} lines:\n{}\n",
                    n.name,
                    i + 1,
                    m.proc.pid(),
                    m.proc.tail(lines)
                );
            }
            if n.past.is_empty() && n.running.is_none() {
                let _ = write!(out, "\n--- node {}: never started\n", n.name);
            }
        }
        out
    }

    /// [`Fleet::nodes_tail`] with the default number of lines.
    pub fn nodes_log(&self) -> String {
        self.nodes_tail(TAIL_LINES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_gets_its_own_file_ports_and_name() {
        let fleet = Fleet::builder()
            .agent("a1")
            .admin()
            .transports(&["tls", "websocket"])
            .websocket("  tls: false\n")
            .cluster("amqp://m:pw@127.0.0.1:5672/v", &["mgr-a", "mgr-b"])
            .cluster_settings("  heartbeat: 0.5\n")
            .build();
        assert_eq!(fleet.node_names(), ["mgr-a", "mgr-b"]);
        let a = std::fs::read_to_string(fleet.node_yml("mgr-a")).unwrap();
        let b = std::fs::read_to_string(fleet.node_yml("mgr-b")).unwrap();
        for (text, node) in [(&a, "mgr-a"), (&b, "mgr-b")] {
            assert!(text.contains(&format!("  node: {node}\n")), "{text}");
            assert!(
                text.contains("  url: amqp://m:pw@127.0.0.1:5672/v\n"),
                "{text}"
            );
            assert!(text.contains("  heartbeat: 0.5\n"), "{text}");
            assert!(text.contains("  tls: false\n"), "{text}");
            assert_eq!(text.matches("bind_port:").count(), 1, "{text}");
            assert_eq!(text.matches("admin_bind:").count(), 1, "{text}");
            assert!(text.contains("admin_token_file:"), "{text}");
        }
        assert_ne!(fleet.node_tls_addr("mgr-a"), fleet.node_tls_addr("mgr-b"));
        assert!(fleet.node_ws_url("mgr-b").starts_with("ws://localhost:"));
        let shared = std::fs::read_to_string(&fleet.manager_yml).unwrap();
        assert!(!shared.contains("cluster:"), "{shared}");

        let tls = fleet.cluster_agent_yml("a1", ClusterAgent::Tls(&["mgr-b", "mgr-a"]), "");
        let want = format!(
            "manager_host: [{}, {}]\n",
            fleet.node_tls_addr("mgr-b"),
            fleet.node_tls_addr("mgr-a")
        );
        assert!(tls.contains(&want), "{tls}");
        assert_eq!(tls.matches("manager_host:").count(), 1, "{tls}");
        let one = fleet.cluster_agent_yml("a1", ClusterAgent::Tls(&["mgr-b"]), "");
        let port = fleet.node_tls_addr("mgr-b").replace("127.0.0.1:", "");
        assert!(one.contains("manager_host: 127.0.0.1\n"), "{one}");
        assert!(one.contains(&format!("manager_port: {port}\n")), "{one}");
        let ws = fleet.cluster_agent_yml("a1", ClusterAgent::Websocket(&["mgr-a"]), "");
        let want = format!("  url: {}\n", fleet.node_ws_url("mgr-a"));
        assert!(
            ws.contains(&want) && ws.contains("transport: websocket\n"),
            "{ws}"
        );
        assert!(fleet.nodes_log().contains("node mgr-a: never started"));
    }
}
