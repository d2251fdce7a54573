//! The workloads of the issue, one module each, and what they share.
//!
//! The two-process workloads ([`rtt`], [`pipeline`], [`notify`], [`payload`]) each
//! contribute tasks to the runs of [`pair`], which starts one listening and one
//! dialing process per (transport, placement, implementation, driving side) and
//! collects what the driving side measured; each module then turns the results into
//! rows. The fleet workloads (storm, fan-out, memory) share the processes of
//! [`fleet`]; [`codec`] times the codec in a pinned child; [`storm`] runs the
//! all-at-once storm with its own manager and agents; [`cluster`] runs the cluster
//! workloads (10-13) on managers joined through the broker; [`brokers`] kills a node
//! of a three-node RabbitMQ cluster under AMQP agents (14); [`fallback`] cuts the TLS
//! path of `[tls, websocket]` agents, then restores it (15).

pub mod brokers;
pub mod cluster;
pub mod codec;
pub mod fallback;
pub mod fleet;
pub mod notify;
pub mod pair;
pub mod payload;
pub mod pipeline;
pub mod rtt;
pub mod storm;

use crate::launcher::Launcher;
use crate::placement::Placement;
use crate::setup::{Transport, World};
use crate::tasks::{Calls, Task};

/// The workloads, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    /// 1: sequential call round trip, both directions.
    Rtt,
    /// 2: pipelined throughput with 1, 16, 64, 256 calls in flight.
    Pipeline,
    /// 3: one-way notifications.
    Notify,
    /// 4: payload sizes 64 B .. 1 MiB.
    Payload,
    /// 5: connect storm.
    Storm,
    /// 6: one call to every connected agent.
    Fanout,
    /// 7: manager memory, idle and per agent.
    Memory,
    /// 8: codec encode/decode per message type.
    Codec,
    /// 9: N agents at once, retrying as the agent does; then a manager restart.
    StormAtOnce,
    /// 10: calls from one cluster node to an agent on another, against local calls
    /// and the raw lapin round trip.
    ClusterCalls,
    /// 11: one call from a node to every agent of a two-node cluster.
    ClusterFanout,
    /// 12: kill -9 a node: until its agents answer through the other.
    ClusterFailover,
    /// 13: a node's memory per agent of another node in its directory.
    ClusterMemory,
    /// 14: kill -9 the manager's node of a three-node RabbitMQ cluster: until every
    /// AMQP agent answers again.
    BrokerFailover,
    /// 15: cut the TLS path of `[tls, websocket]` agents: until every agent answers
    /// over WebSocket; then restore it: until every agent is back on TLS.
    TransportFallback,
}

impl Workload {
    /// The workload column of a cluster workload's rows.
    pub fn cluster_title(self) -> &'static str {
        match self {
            Workload::ClusterCalls => "10 cluster calls",
            Workload::ClusterFanout => "11 cluster fan-out",
            Workload::ClusterFailover => "12 cluster failover",
            Workload::ClusterMemory => "13 cluster memory",
            _ => "-",
        }
    }

    /// Whether this is one of the cluster workloads (10-13).
    pub fn is_cluster(self) -> bool {
        cluster::WORKLOADS.contains(&self)
    }
}

/// Settings of a run, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds to settle and measure as little as possible.
    pub quick: bool,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Placements to measure.
    pub placements: Vec<Placement>,
    /// Fleet sizes.
    pub agents: Vec<usize>,
    /// Fleet sizes for amqp: `agents` when given, else 1,000 only (10,000 AMQP agents
    /// and their broker exceed a 2-core machine: connect and ping timeouts).
    pub amqp_agents: Vec<usize>,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// Measured seconds per task.
    pub secs: f64,
    /// Warm-up seconds per task.
    pub warmup: f64,
    /// Most agent handshakes in flight during a storm.
    pub storm_concurrency: usize,
    /// Agents of the all-at-once storm.
    pub storm_agents: usize,
    /// Manager certificate keys of the all-at-once storm.
    pub storm_keys: Vec<storm::KeyKind>,
    /// Seconds every session lives before the manager restart of the all-at-once
    /// storm (0: no restart).
    pub storm_hold: f64,
    /// Fan-out rounds per fleet (the median is reported).
    pub fanout_rounds: usize,
    /// Broker URL for amqp (and the cluster workloads' `cluster.url`).
    pub amqp_url: String,
    /// Agents of the cluster fan-out and memory workloads.
    pub cluster_agents: usize,
    /// Agents of the node killed in the cluster failover workload.
    pub failover_agents: usize,
    /// Seconds every session lives before the failover's kill, or the fallback's cut
    /// (0: none).
    pub cluster_hold: f64,
    /// Agents of the transport fallback.
    pub fallback_agents: usize,
    /// The fallback agents' `transport_probe_interval`, seconds.
    pub fallback_probe_interval: f64,
}

impl Options {
    /// Whether `w` was asked for.
    pub fn wants(&self, w: Workload) -> bool {
        self.workloads.contains(&w)
    }
}

/// Everything a workload needs to run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Settings.
    pub opts: Options,
    /// The scratch world.
    pub world: World,
    /// How to start children.
    pub launcher: Launcher,
    /// CPUs we may use.
    pub cpus: Vec<usize>,
    /// Why the RedPepper 0.3.4 baselines are off, when they are.
    pub python_off: String,
    /// Why nothing can be measured over amqp (no broker), when that is so.
    pub amqp_off: Option<String>,
}

/// Name of the RedPepper 0.3.4 baseline in the table.
pub const REDPEPPER: &str = "RedPepper 0.3.4";

/// A closed loop of calls labelled `label`, with the run's warm-up and seconds.
pub fn calls(ctx: &Ctx, label: String, in_flight: usize, payload: usize) -> Task {
    Task::Calls(Calls {
        label,
        in_flight,
        payload,
        warmup: ctx.opts.warmup,
        secs: ctx.opts.secs,
    })
}

/// Name of the raw baseline of a transport.
pub fn raw_name(transport: Transport) -> String {
    match transport {
        Transport::Tls => "raw framed TLS echo".to_owned(),
        Transport::Websocket => "raw tungstenite echo".to_owned(),
        Transport::WebsocketNginx => "raw tungstenite echo via nginx".to_owned(),
        Transport::Amqp => "raw lapin round trip".to_owned(),
    }
}

/// Print progress to stderr (stdout carries the table).
pub fn progress(text: &str) {
    eprintln!("[bench] {text}");
}
