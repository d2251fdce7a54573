//! Workloads 10-13: managers joined into one cluster through the run's RabbitMQ
//! broker (issue 14, docs/CLUSTER.md). Every node is a real process
//! (`child cluster-node`: `Manager::start` with a `cluster:` section, as the
//! `redpepper-manager` binary starts it), so everything between nodes goes through
//! the broker; agents are sessions of our agent library over TLS in one process per
//! node (`child cluster-agents`, each agent running the agent program's
//! reconnecting loop with the configuration the program reads).
//!
//! | workload | nodes | agents | measured |
//! |----------|-------|--------|----------|
//! | 10 cluster calls ([`calls`]) | A, B | one on A, one on B | closed loops of `echo` from A: to B's agent (cross-node) and to A's (local), 1 and 64 in flight; the raw lapin round trip through the same broker |
//! | 11 cluster fan-out ([`fleet`]) | A, B | `--cluster-agents`, half on each | one `echo` from A to every agent of the cluster at once, until the last answer |
//! | 12 cluster failover ([`failover`]) | A, B | `--failover-agents`, all on B, `manager_host: [B, A]` | kill -9 B: until every agent answers a call through A |
//! | 13 cluster memory ([`fleet`]) | A, B | `--cluster-agents`, all on B | A's RSS growth per agent in its directory |
//!
//! Node A is pinned to side A's CPU, node B and the agents to side B's (one
//! placement: cross-core when asked for and possible); the broker runs on any CPU.
//! Each setup is a cluster of its own (`cluster.name` = `bench-<random>`), with the
//! default heartbeat (1 s) and `dead_after` (3).

pub mod calls;
pub mod failover;
pub mod fleet;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use redpepper_tests::Proc;

use super::{progress, Ctx, Workload};
use crate::child::cluster::Wait;
use crate::launcher;
use crate::placement::Placement;
use crate::report::{Better, Row};
use crate::tasks::Burst;

/// The name of the cluster workloads' node A (the one operators talk to).
pub const NODE_A: &str = "bench-a";
/// Node B.
pub const NODE_B: &str = "bench-b";
/// What the transport column says: agents over TLS, nodes linked through the broker.
pub const TRANSPORT: &str = "tls+amqp";
/// How long a node may take to see the other alive.
const JOIN_LIMIT: Duration = Duration::from_secs(30);

/// The cluster workloads.
pub const WORKLOADS: [Workload; 4] = [
    Workload::ClusterCalls,
    Workload::ClusterFanout,
    Workload::ClusterFailover,
    Workload::ClusterMemory,
];

/// A node process and the TLS port its agents dial.
pub struct Node {
    /// The `child cluster-node` process.
    pub proc: Proc,
    /// Its TLS port.
    pub port: u16,
    /// Its node name.
    pub name: &'static str,
}

/// A fresh cluster name (each setup is a cluster of its own on the broker).
pub fn cluster_name() -> String {
    format!("bench-{:08x}", rand::random::<u32>())
}

/// The one placement of the cluster workloads: cross-core when asked for and there
/// are two CPUs, else same-core.
pub fn placement(ctx: &Ctx) -> Placement {
    if ctx.opts.placements.contains(&Placement::CrossCore) && ctx.cpus.len() >= 2 {
        Placement::CrossCore
    } else {
        Placement::SameCore
    }
}

/// Start node `name` of `cluster` on `cpu`, agents on `port` (0: any).
pub fn start_node(
    ctx: &Ctx,
    cluster: &str,
    name: &'static str,
    cpu: usize,
    port: u16,
) -> anyhow::Result<Node> {
    let args = [
        "cluster-node",
        "--work",
        &ctx.world.dir.display().to_string(),
        "--cpu",
        &cpu.to_string(),
        "--amqp-url",
        &ctx.opts.amqp_url,
        "--cluster",
        cluster,
        "--node",
        name,
        "--port",
        &port.to_string(),
    ]
    .map(str::to_owned);
    let proc = launcher::spawn(&format!("cluster node {name}"), ctx.launcher.ours(&args))?;
    let ready = proc
        .expect("ready", Duration::from_secs(60))
        .with_context(|| format!("node {name} did not start"))?;
    let port = ready
        .get("port")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("node {name} named no port"))?;
    Ok(Node { proc, port, name })
}

impl Node {
    /// Send `line` and wait up to `limit` for the answer keyed `key`.
    pub fn ask(&self, line: &str, key: &str, limit: Duration) -> anyhow::Result<serde_json::Value> {
        self.proc.send_line(line).map_err(anyhow::Error::msg)?;
        self.proc
            .expect(key, limit)
            .with_context(|| format!("node {}: {line}", self.name))
    }

    /// Wait until this node sees `n` nodes alive (itself included); an error when it
    /// does not within [`JOIN_LIMIT`].
    pub fn wait_nodes(&self, n: usize) -> anyhow::Result<Wait> {
        let line = format!("nodes {n} {}", JOIN_LIMIT.as_secs_f64());
        let wait: Wait = serde_json::from_value(self.ask(&line, "nodes", JOIN_LIMIT * 2)?)?;
        anyhow::ensure!(
            wait.count >= n,
            "node {} sees {} of {n} nodes alive after {:.1} s: the cluster did not form",
            self.name,
            wait.count,
            wait.secs
        );
        Ok(wait)
    }

    /// Wait until this node's directory lists `n` agents; an error when it does not
    /// within `limit`.
    pub fn wait_agents(&self, n: usize, limit: Duration) -> anyhow::Result<Wait> {
        let line = format!("agents {n} {}", limit.as_secs_f64());
        let wait: Wait =
            serde_json::from_value(self.ask(&line, "agents", limit + Duration::from_secs(30))?)?;
        anyhow::ensure!(
            wait.count >= n,
            "node {} lists {} of {n} agents ({} on itself) after {:.1} s",
            self.name,
            wait.count,
            wait.local,
            wait.secs
        );
        Ok(wait)
    }
}

/// Start agents `first..first+n` on `cpu`, dialing the managers at `ports` (their
/// `manager_host` list, in order), and wait until each had a session.
pub fn start_agents(
    ctx: &Ctx,
    ports: &[u16],
    first: usize,
    n: usize,
    cpu: usize,
) -> anyhow::Result<(Proc, Burst)> {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let ports = ports.join(",");
    spawn_agents(
        ctx,
        &format!("cluster agents (ports {ports})"),
        &ctx.world.dir,
        cpu,
        n,
        &["--ports", &ports, "--first", &first.to_string()],
    )
}

/// Start `child cluster-agents` for `n` agents on `cpu` in the world at `work`,
/// `args` saying how they reach their managers, and wait until each had a session.
/// `what` names them, for the process and for the error when some did not connect.
pub fn spawn_agents(
    ctx: &Ctx,
    what: &str,
    work: &Path,
    cpu: usize,
    n: usize,
    args: &[&str],
) -> anyhow::Result<(Proc, Burst)> {
    let limit = 120.0 + n as f64 / 20.0;
    let mut all: Vec<String> = [
        "cluster-agents",
        "--work",
        &work.display().to_string(),
        "--cpu",
        &cpu.to_string(),
        "--agents",
        &n.to_string(),
        "--concurrency",
        &ctx.opts.storm_concurrency.to_string(),
        "--limit",
        &limit.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let proc = launcher::spawn(what, ctx.launcher.ours(&all))?;
    let value = proc.expect("connected", Duration::from_secs_f64(limit + 60.0))?;
    let burst: Burst = serde_json::from_value(value)?;
    anyhow::ensure!(
        burst.ok == n,
        "{} of {n} {what} connected in {:.1} s; first error: {}",
        burst.ok,
        burst.secs,
        burst.first_error.as_deref().unwrap_or("none")
    );
    Ok((proc, burst))
}

/// Nodes A (on side A's CPU) and B (on side B's) of a fresh cluster, each seeing the
/// other alive; and side B's CPU, where the agents go.
pub fn start_joined(ctx: &Ctx, placement: Placement) -> anyhow::Result<(Node, Node, usize)> {
    let (cpu_a, cpu_b) = placement.cpus(&ctx.cpus)?;
    let cluster = cluster_name();
    let a = start_node(ctx, &cluster, NODE_A, cpu_a, 0)?;
    let b = start_node(ctx, &cluster, NODE_B, cpu_b, 0)?;
    a.wait_nodes(2)?;
    b.wait_nodes(2)?;
    Ok((a, b, cpu_b))
}

/// Before a kill: hold every session until `--cluster-hold` has passed since
/// `connected` (the agent's backoff counts a session of 60 s as stable, and then
/// spreads its first retry over 10 s). The seconds the sessions were held.
pub fn hold_sessions(ctx: &Ctx, connected: Instant) -> f64 {
    let hold = Duration::from_secs_f64(ctx.opts.cluster_hold.max(0.0));
    if let Some(rest) = hold.checked_sub(connected.elapsed()) {
        progress(&format!(
            "  holding every session {:.0} s (a stable session for the agents' backoff)",
            hold.as_secs_f64()
        ));
        std::thread::sleep(rest);
    }
    connected.elapsed().as_secs_f64()
}

/// What a note says of sessions held `held` seconds before the kill.
pub fn held_note(held: f64) -> &'static str {
    if held >= 60.0 {
        " (stable: each agent's first retry falls within 10 s)"
    } else {
        " (not stable: first retries within 1 s; --cluster-hold 61 for a real fleet's)"
    }
}

/// A row of a cluster workload.
pub fn row(
    workload: &str,
    placement: Placement,
    metric: &str,
    unit: &str,
    better: Better,
    value: Result<f64, String>,
) -> Row {
    Row::new(
        workload,
        TRANSPORT,
        placement.as_str(),
        metric,
        unit,
        better,
        value,
    )
}

/// Run the asked-for cluster workloads.
pub fn run(ctx: &Ctx) -> Vec<Row> {
    let o = &ctx.opts;
    let placement = placement(ctx);
    let mut rows = Vec::new();
    if let Some(why) = &ctx.amqp_off {
        for w in WORKLOADS.iter().filter(|w| o.wants(**w)) {
            rows.push(row(
                w.cluster_title(),
                placement,
                "cluster over the broker",
                "-",
                Better::Lower,
                Err(format!("no broker: {why}")),
            ));
        }
        return rows;
    }
    if o.wants(Workload::ClusterCalls) {
        progress("cluster: cross-node calls (nodes A and B, one agent on each)");
        rows.extend(calls::run(ctx, placement));
    }
    if o.wants(Workload::ClusterFanout) {
        progress(&format!(
            "cluster: fan-out to {} agents split over two nodes",
            o.cluster_agents
        ));
        rows.extend(fleet::fanout(ctx, placement));
    }
    if o.wants(Workload::ClusterFailover) {
        progress(&format!(
            "cluster: failover of {} agents from a killed node",
            o.failover_agents
        ));
        rows.extend(failover::run(ctx, placement));
    }
    if o.wants(Workload::ClusterMemory) {
        progress(&format!(
            "cluster: a node's memory for {} agents of another node",
            o.cluster_agents
        ));
        rows.extend(fleet::memory(ctx, placement));
    }
    rows
}
