//! The measured processes. The orchestrator re-runs its own binary with the hidden
//! `child` subcommand; each child pins itself to its CPU first, then builds its
//! runtime, so every thread it starts stays on that core.
//!
//! Children talk to the orchestrator in JSON lines: one object per line on stdout,
//! whose single key says what it is (`ready`, `result`, `done`, `storm`, `agents`,
//! `fanout`, `codec`, or `error` with the reason). They read commands from stdin
//! (the manager child answers `count` and `fanout`), and exit when stdin closes, so a
//! dying orchestrator never leaves them behind.
//!
//! - [`session`]: our two sides over the session layer (`pair-server`, `pair-client`).
//! - [`raw`]: the raw baselines: the transport with no session layer (for websocket
//!   plain tokio-tungstenite, [`raw_ws`]; for amqp plain lapin, [`raw_amqp`]).
//! - [`fleet`]: the manager process of the fleet workloads and the load generator.
//! - [`codec`]: encode/decode timings.
//! - [`storm`]: the manager and the agents of the all-at-once storm.
//! - [`cluster`]: a clustered manager node and a reconnecting agent fleet (the
//!   cluster workloads).
//! - [`fallback`]: the manager of the transport-fallback workload (tls and websocket);
//!   its agents are `cluster-agents` with a WebSocket fallback.

pub mod cluster;
pub mod codec;
pub mod fallback;
pub mod fleet;
pub mod raw;
pub mod raw_amqp;
pub mod raw_ws;
pub mod session;
pub mod storm;

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use redpepper_core::codec::{encode, Message, Notification, Request};
use redpepper_core::Value;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::placement;
use crate::setup::{Transport, World};
use crate::tasks::Task;

/// The hidden `child` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ChildCommand {
    /// Listening side of a two-process measurement (manager role, echo server).
    PairServer(PairArgs),
    /// Dialing side of a two-process measurement (agent role, echo client).
    PairClient(PairArgs),
    /// The manager of the fleet workloads, driven over stdin.
    Manager(fleet::ManagerArgs),
    /// Many agents dialing one manager.
    Loadgen(fleet::LoadgenArgs),
    /// Encode/decode timings.
    Codec(codec::CodecArgs),
    /// The manager of the all-at-once storm (counts the ClientHellos it answers).
    StormManager(storm::StormManagerArgs),
    /// The agents of the all-at-once storm (rate or storm).
    StormClient(storm::StormClientArgs),
    /// A manager joined to a cluster, driven over stdin.
    ClusterNode(cluster::NodeArgs),
    /// Agents that reconnect as the agent program does (the cluster workloads).
    ClusterAgents(cluster::AgentsArgs),
    /// The manager of the transport-fallback workload, driven over stdin.
    FallbackManager(fallback::ManagerArgs),
}

/// Which code runs on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stack {
    /// Our session layer (redpepper-core) over the factory's transport.
    Ours,
    /// The factory's transport alone: length-framed echo, no session layer.
    Raw,
}

/// What every measured process over a transport is told.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The scratch world (certificates, agents.yml).
    #[arg(long)]
    pub work: PathBuf,
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Transport name (tls, websocket, amqp).
    #[arg(long, default_value = "tls")]
    pub transport: String,
    /// Broker URL for the amqp transport.
    #[arg(long, default_value = "amqp://127.0.0.1:5672/%2f")]
    pub amqp_url: String,
}

impl Common {
    /// The transport named by `--transport`.
    pub fn transport(&self) -> anyhow::Result<Transport> {
        Transport::parse(&self.transport)
            .with_context(|| format!("unknown transport {}", self.transport))
    }

    /// The scratch world at `--work`.
    pub fn world(&self) -> World {
        World::at(&self.work)
    }
}

/// Arguments of both sides of a two-process measurement.
#[derive(Debug, Clone, clap::Args)]
pub struct PairArgs {
    /// Work directory, CPU, transport, broker.
    #[command(flatten)]
    pub common: Common,
    /// Session layer or raw transport.
    #[arg(long, value_enum)]
    pub stack: Stack,
    /// Port to dial (client side).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Run these tasks (a JSON array) and report; without it, serve until stdin closes.
    #[arg(long)]
    pub drive: Option<String>,
    /// The listening side's queue over amqp (client side: our manager's hello queue,
    /// or the raw echo server's queue; the server names it in its `ready` line).
    #[arg(long)]
    pub amqp_queue: Option<String>,
}

impl PairArgs {
    fn tasks(&self) -> anyhow::Result<Option<Vec<Task>>> {
        self.drive
            .as_deref()
            .map(|json| serde_json::from_str(json).context("--drive is not a JSON task list"))
            .transpose()
    }
}

/// Run a child subcommand; failures are reported as an `error` line too.
pub fn main(cmd: ChildCommand) -> anyhow::Result<()> {
    let result = run(cmd);
    if let Err(e) = &result {
        emit("error", format!("{e:#}"));
    }
    result
}

fn run(cmd: ChildCommand) -> anyhow::Result<()> {
    let cpu = match &cmd {
        ChildCommand::PairServer(a) | ChildCommand::PairClient(a) => a.common.cpu,
        ChildCommand::Manager(a) => a.common.cpu,
        ChildCommand::Loadgen(a) => a.common.cpu,
        ChildCommand::Codec(a) => a.cpu,
        ChildCommand::StormManager(a) => a.common.cpu,
        ChildCommand::StormClient(a) => a.common.cpu,
        ChildCommand::ClusterNode(a) => a.common.cpu,
        ChildCommand::ClusterAgents(a) => a.common.cpu,
        ChildCommand::FallbackManager(a) => a.common.cpu,
    };
    if let Some(cpu) = cpu {
        placement::pin_self(cpu)?;
    }
    match cmd {
        ChildCommand::PairServer(a) => current_thread()?.block_on(pair(a, true)),
        ChildCommand::PairClient(a) => current_thread()?.block_on(pair(a, false)),
        ChildCommand::Manager(a) => multi_thread()?.block_on(fleet::manager(a)),
        ChildCommand::Loadgen(a) => current_thread()?.block_on(fleet::loadgen(a)),
        ChildCommand::Codec(a) => codec::run(&a),
        ChildCommand::StormManager(a) => multi_thread()?.block_on(storm::manager(a)),
        ChildCommand::StormClient(a) => current_thread()?.block_on(storm::client(a)),
        ChildCommand::ClusterNode(a) => multi_thread()?.block_on(cluster::node(a)),
        ChildCommand::ClusterAgents(a) => current_thread()?.block_on(cluster::agents(a)),
        ChildCommand::FallbackManager(a) => multi_thread()?.block_on(fallback::manager(a)),
    }
}

async fn pair(args: PairArgs, server: bool) -> anyhow::Result<()> {
    match (args.stack, server) {
        (Stack::Ours, true) => session::server(&args).await,
        (Stack::Ours, false) => session::client(&args).await,
        (Stack::Raw, true) => raw::server(&args).await,
        (Stack::Raw, false) => raw::client(&args).await,
    }
}

/// The runtime of a manager process: the binary's `#[tokio::main]`, multi-threaded.
fn multi_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The runtime of a process pinned to one core.
fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Print `{"key": value}` as one line (stdout is line-buffered).
pub fn emit(key: &str, value: impl Serialize) {
    let mut line = serde_json::Map::new();
    line.insert(
        key.to_owned(),
        serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
    );
    println!("{}", serde_json::Value::Object(line));
}

/// The port of the manager's first listener on a socket address (0: none), for its
/// `ready` line.
pub fn listening_port(manager: &redpepper_manager::Manager) -> u16 {
    manager
        .listening()
        .iter()
        .find_map(|(_, _, a)| *a)
        .map_or(0, |a| a.port())
}

/// Raise the open-file limit for a child holding `agents` connections (1,024 more
/// for the rest); an error naming the limit when fewer than `agents` + 64 are allowed.
pub fn raise_nofile_for(agents: usize) -> anyhow::Result<()> {
    let limit = placement::raise_nofile(agents as u64 + 1024)?;
    anyhow::ensure!(
        limit >= agents as u64 + 64,
        "open-file limit {limit} is too low for {agents} agents"
    );
    Ok(())
}

/// Lines from stdin, read on a thread; the process exits when stdin closes.
pub fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        std::process::exit(0);
    });
    rx
}

/// The arguments of the echo calls: one short string (what RedPepper 0.3.4 accepts
/// in `args`) or a binary keyword argument of `payload` bytes.
pub fn call_args(payload: usize) -> (Vec<Value>, Vec<(String, Value)>) {
    if payload == 0 {
        (vec![Value::from("x")], vec![])
    } else {
        (
            vec![],
            vec![("data".to_owned(), Value::Binary(vec![0x5a; payload]))],
        )
    }
}

/// Size of our encoded echo Request for `payload`: the raw baseline sends frames of
/// the same size, so both move the same bytes.
pub fn request_len(payload: usize) -> usize {
    let (args, kwargs) = call_args(payload);
    let msg = Message::Request(Request {
        id: "0123456789abcdef0123456789abcdef".to_owned(),
        method: "echo".to_owned(),
        args,
        kwargs,
        timeout: None,
    });
    encode(&msg).map(|b| b.len()).unwrap_or(payload + 64)
}

/// Size of the encoded notification the notify task sends.
pub fn notification_len() -> usize {
    let msg = Message::Notification(notification(1 << 20));
    encode(&msg).map(|b| b.len()).unwrap_or(24)
}

/// The notification the notify task sends (its data is a counter).
pub fn notification(n: u64) -> Notification {
    Notification {
        r#type: "bench".to_owned(),
        data: Value::from(n),
    }
}

/// A frame of `len` bytes starting with `tag` (the raw peers' only protocol).
pub fn tagged_frame(tag: u8, len: usize) -> Bytes {
    let mut v = vec![0x5a; len.max(1)];
    v[0] = tag;
    Bytes::from(v)
}
