//! [`RabbitCluster`]: three private RabbitMQ nodes joined into one RabbitMQ cluster
//! (`rabbitmqctl join_cluster`), for the broker-failover tests and benchmark.
//!
//! Each node is a [`RabbitNode`] (own ports, base directory, `HOME`), all registering
//! with one private `epmd` and sharing one Erlang cookie, so that they can reach each
//! other and `rabbitmqctl` can reach each of them. The nodes boot in parallel (a node
//! takes seconds to start); the second and third then join the first. Users, vhosts
//! and permissions are cluster-wide: create them through any node
//! ([`RabbitCluster::node`]). Every node is stopped, and its directory deleted, when
//! the cluster is dropped; a node killed with [`RabbitNode::kill`] and started again
//! with [`RabbitNode::start_again`] rejoins by itself (it keeps its data).
//!
//! ```no_run
//! use redpepper_tests::rabbitmq::{Perms, RabbitCluster};
//!
//! let rmq = RabbitCluster::start();
//! rmq.node(0).add_user("manager", "pw", "t1", &Perms::manager("redpepper.manager"));
//! let urls = rmq.amqp_urls("manager", "pw", "t1"); // one per node
//! rmq.node(1).kill();
//! rmq.node(1).start_again();
//! rmq.wait_running(3);
//! # let _ = urls;
//! ```

use std::time::{Duration, Instant};

use super::{start_epmd, RabbitNode};
use crate::TIMEOUT;

/// Nodes in a [`RabbitCluster`].
pub const CLUSTER_NODES: usize = 3;

/// Three RabbitMQ nodes in one RabbitMQ cluster (see the module docs).
#[derive(Debug)]
pub struct RabbitCluster {
    nodes: Vec<RabbitNode>,
}

impl RabbitCluster {
    /// Start three nodes in parallel and join them into one cluster; wait until the
    /// first node reports all three running.
    ///
    /// # Panics
    ///
    /// When RabbitMQ is not installed (run `scripts/test`), a node does not start or
    /// does not join.
    pub fn start() -> RabbitCluster {
        super::script("rabbitmq-server");
        let (epmd, epmd_port) = start_epmd();
        let cookie = format!("{:032X}", rand::random::<u128>());
        let nodes: Vec<RabbitNode> = (0..CLUSTER_NODES)
            .map(|_| RabbitNode::prepare(epmd.clone(), epmd_port, &cookie))
            .collect();
        std::thread::scope(|s| {
            for node in &nodes {
                s.spawn(|| node.boot());
            }
        });
        let first = nodes[0].name().to_owned();
        for node in &nodes[1..] {
            for args in [
                &["stop_app"][..],
                &["join_cluster", &first][..],
                &["start_app"][..],
            ] {
                node.ctl(args).unwrap_or_else(|e| {
                    panic!(
                        "node {} joining {first}: {e}\n{}",
                        node.name(),
                        node.log_tail(30)
                    )
                });
            }
        }
        let cluster = RabbitCluster { nodes };
        cluster.wait_running(CLUSTER_NODES);
        cluster
    }

    /// Node `i` (0, 1 or 2).
    ///
    /// # Panics
    ///
    /// When `i` is not a node.
    pub fn node(&self, i: usize) -> &RabbitNode {
        &self.nodes[i]
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RabbitNode] {
        &self.nodes
    }

    /// `amqp://USER:PASS@127.0.0.1:PORT/VHOST` of every node, in node order.
    pub fn amqp_urls(&self, user: &str, pass: &str, vhost: &str) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.amqp_url(user, pass, vhost))
            .collect()
    }

    /// The nodes' URLs as a YAML flow list: `['URL1', 'URL2', 'URL3']`.
    pub fn amqp_url_list(&self, user: &str, pass: &str, vhost: &str) -> String {
        let quoted: Vec<String> = self
            .amqp_urls(user, pass, vhost)
            .iter()
            .map(|u| format!("'{u}'"))
            .collect();
        format!("[{}]", quoted.join(", "))
    }

    /// The node whose AMQP port is `port`, if any.
    pub fn by_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// Wait until some running node reports `n` running nodes in the cluster.
    ///
    /// # Panics
    ///
    /// After [`TIMEOUT`] × 2.
    pub fn wait_running(&self, n: usize) {
        let deadline = Instant::now() + TIMEOUT * 2;
        let mut last = String::new();
        while Instant::now() < deadline {
            for node in &self.nodes {
                match node.ctl(&["cluster_status", "--formatter", "json"]) {
                    Ok(text) => match running_nodes(&text) {
                        Some(running) if running >= n => return,
                        _ => last = text,
                    },
                    Err(e) => last = e,
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("the RabbitMQ cluster did not reach {n} running nodes: {last}");
    }
}

impl Drop for RabbitCluster {
    /// Stop every node at once (`rabbitmqctl stop`, which returns once the node's
    /// process has exited), so that each node's directory is deleted after its node
    /// is gone (a node still shutting down would write into it again).
    fn drop(&mut self) {
        std::thread::scope(|s| {
            let stopping: Vec<_> = self.nodes.iter().map(|n| s.spawn(|| n.stop())).collect();
            for (i, t) in stopping.into_iter().enumerate() {
                if t.join().is_err() {
                    eprintln!("RabbitMQ cluster node {i} did not stop cleanly");
                }
            }
        });
    }
}

/// The number of `running_nodes` in `rabbitmqctl cluster_status --formatter json`.
fn running_nodes(json: &str) -> Option<usize> {
    let start = json.find('{')?;
    let v: serde_json::Value = serde_json::from_str(json.get(start..)?).ok()?;
    Some(v.get("running_nodes")?.as_array()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_running_nodes() {
        let text = r#"{"running_nodes":["a@h","b@h"],"disk_nodes":["a@h","b@h","c@h"]}"#;
        assert_eq!(running_nodes(text), Some(2));
        assert_eq!(running_nodes("garbage"), None);
    }
}
