//! The fleet workloads' processes: our manager (the `redpepper-manager` library
//! started exactly as its binary starts it: `Manager::start` with a configuration,
//! on a multi-threaded runtime) and a load generator that opens many agent sessions
//! with our agent library from one process.
//!
//! The manager child answers on stdin: `count` → `{"agents": N}`, `fanout` → one
//! `echo` call to every connected agent at once, `{"fanout": {...}}` when all answered,
//! `received` → `{"received": N}` (notifications read from agents so far).
//! The load generator dials `--agents` agents, at most `--concurrency` handshakes in
//! flight, reports `{"storm": {...}}`, and keeps every session open until stdin
//! closes. On `blob BYTES` every agent sends the manager one notification carrying
//! BYTES bytes ([`BLOB_KIND`]), [`BLOB_IN_FLIGHT`] agents at a time, each followed by a
//! receipt barrier; `{"blob": {...}}` once the manager has read them all.
//!
//! Over amqp every agent opens its own broker connection, as the agent program does.
//! lapin gives each connection a receive and a send buffer of 32 frames, zero-filled
//! (2 × 32 × the broker's `frame_max`, 128 KiB by default: 8 MiB of RSS per agent),
//! which 10,000 agents in one process cannot afford: the load generator's agents ask
//! for [`FLEET_FRAME_MAX`]-byte frames (`?frame_max=`, unless the URL sets it), 256
//! KiB per agent. Their messages are far smaller than a frame either way; the
//! manager's own connection keeps the broker's frame size.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{join_all, BoxFuture};
use redpepper_agent::Agent;
use redpepper_core::{BoxTransport, Dialer, Handler, Session, TransportError, Value};
use redpepper_manager::Manager;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Common;
use super::{emit, stdin_lines};
use crate::placement::raise_nofile;
use crate::setup::{fleet_id, hello_queue, Transport};
use crate::tasks::Burst;

/// Arguments of the manager child.
#[derive(Debug, Clone, clap::Args)]
pub struct ManagerArgs {
    /// Work directory, CPU, transport, broker.
    #[command(flatten)]
    pub common: Common,
    /// Declare the hello queue as a quorum queue (`amqp.queue_type: quorum`: it
    /// outlives a broker node of a RabbitMQ cluster).
    #[arg(long)]
    pub quorum: bool,
}

/// Arguments of the load generator.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Work directory, CPU, transport, broker.
    #[command(flatten)]
    pub common: Common,
    /// The manager's port.
    #[arg(long)]
    pub port: u16,
    /// How many agents.
    #[arg(long)]
    pub agents: usize,
    /// Most handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// The manager's hello queue over amqp (the manager names it in its `ready` line).
    #[arg(long)]
    pub amqp_queue: Option<String>,
}

/// `frame_max` of the load generator's broker connections: AMQP's minimum.
pub const FLEET_FRAME_MAX: u32 = 4096;

/// `url` asking for [`FLEET_FRAME_MAX`]-byte frames, unless it sets `frame_max`.
pub(crate) fn with_small_frames(url: &str) -> String {
    if url.contains(',') {
        let urls: Vec<String> = url.split(',').map(with_small_frames).collect();
        return urls.join(",");
    }
    let url = url.trim();
    let query = url.split_once('?').map(|(_, q)| q);
    if query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("frame_max="))) {
        return url.to_owned();
    }
    let sep = if query.is_some() { '&' } else { '?' };
    format!("{url}{sep}frame_max={FLEET_FRAME_MAX}")
}

/// The manager child.
pub async fn manager(args: ManagerArgs) -> anyhow::Result<()> {
    raise_nofile(1 << 16)?;
    let world = args.common.world();
    let transport = args.common.transport()?;
    let mut config = world.manager_config(transport, &args.common.amqp_url)?;
    if transport == Transport::Amqp {
        config.amqp.queue = hello_queue();
        if args.quorum {
            config.amqp.queue_type = redpepper_config::AmqpQueueType::Quorum;
        }
    }
    let manager = Manager::start(&config).await?;
    let port = super::listening_port(&manager);
    let mut ready = serde_json::json!({ "port": port, "pid": std::process::id() });
    if transport == Transport::Amqp {
        ready["queue"] = config.amqp.queue.clone().into();
    }
    emit("ready", ready);
    let mut commands = stdin_lines();
    while let Some(line) = commands.recv().await {
        if let Some(rest) = line.trim().strip_prefix("failover ") {
            // `failover N LIMIT`: until agents 0..N each answered a call again.
            let mut words = rest.split_whitespace();
            let (n, limit) = super::cluster::count_and_limit(&mut words)?;
            emit("watching", true);
            emit(
                "failover",
                super::cluster::failover(&manager, 0, n, limit, None, None).await,
            );
            continue;
        }
        match line.trim() {
            "count" => {
                emit("agents", manager.agents().len());
            }
            "fanout" => emit("fanout", fanout(&manager).await),
            "received" => emit(
                "received",
                manager.metrics().notifications_in.load(Ordering::Relaxed),
            ),
            "quit" => break,
            other => emit("error", format!("unknown command {other:?}")),
        }
    }
    Ok(())
}

/// One `echo` call to every connected agent at once, through the manager's API.
pub(crate) async fn fanout(manager: &Manager) -> Burst {
    let start = Instant::now();
    let agents = manager.agents();
    let calls = agents.iter().map(|a| {
        manager.call(
            &a.id,
            "echo",
            vec![Value::from("x")],
            vec![],
            Duration::from_secs(60),
        )
    });
    let results = join_all(calls).await;
    let secs = start.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    Burst {
        agents: agents.len(),
        ok: results.len() - failed,
        failed,
        secs,
        first_error: results
            .into_iter()
            .find_map(|r| r.err())
            .map(|e| e.to_string()),
    }
}

/// Type of the large one-way notification of the memory workload (the manager routes
/// it nowhere: it is neither `command_progress` nor `command_result`).
pub const BLOB_KIND: &str = "bench_blob";

/// Agents sending their large notification at once: bounds the load generator's memory
/// (each holds its copy until the manager has read it) whatever the fleet's size.
pub const BLOB_IN_FLIGHT: usize = 16;

/// Every session sends one [`BLOB_KIND`] notification of `bytes` bytes and waits until
/// the manager has read it (a receipt barrier), [`BLOB_IN_FLIGHT`] at a time.
async fn blob_all(sessions: &[Session], bytes: usize) -> Burst {
    let start = Instant::now();
    let blob = Arc::new(vec![0x5a_u8; bytes]);
    let permits = Arc::new(Semaphore::new(BLOB_IN_FLIGHT));
    let mut set = JoinSet::new();
    for session in sessions {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let session = session.clone();
        let blob = Arc::clone(&blob);
        set.spawn(async move {
            let data = Value::Map(vec![(Value::from("blob"), Value::Binary(blob.to_vec()))]);
            let sent = match session.notify(BLOB_KIND, data).await {
                Ok(()) => session.barrier().await,
                Err(e) => Err(e),
            };
            drop(permit);
            sent.map_err(|e| e.to_string())
        });
    }
    let mut ok = 0;
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Burst {
        agents: sessions.len(),
        ok,
        failed: sessions.len() - ok,
        secs: start.elapsed().as_secs_f64(),
        first_error,
    }
}

/// Lets many agents share one dialer (and its TLS client configuration).
pub(crate) struct SharedDialer(pub(crate) Arc<dyn Dialer>);

impl Dialer for SharedDialer {
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
        self.0.dial()
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// The dialer of the storm. For tls, TLS session resumption is off: every agent is a
/// fresh process in real life, so every handshake here is a full one.
pub(crate) fn storm_dialer(
    transport: Transport,
    config: &redpepper_config::AgentConfig,
) -> anyhow::Result<Arc<dyn Dialer>> {
    match transport {
        Transport::Tls => {
            let base = redpepper_transports::tls::client_config(&config.tls)?;
            let mut tls = (*base).clone();
            tls.resumption = rustls::client::Resumption::disabled();
            let manager = config
                .manager_hosts
                .first()
                .ok_or_else(|| anyhow::anyhow!("manager_host: no manager"))?;
            let dialer = redpepper_transports::TlsDialer::new(
                manager.host.clone(),
                manager.port,
                Arc::new(tls),
                config.session.max_message_size,
            )?;
            Ok(Arc::new(dialer))
        }
        _ => Ok(Arc::from(redpepper_transports::dialer(config)?)),
    }
}

/// The load generator child.
pub async fn loadgen(args: LoadgenArgs) -> anyhow::Result<()> {
    super::raise_nofile_for(args.agents)?;
    let world = args.common.world();
    let transport = args.common.transport()?;
    let amqp_url = with_small_frames(&args.common.amqp_url);
    let mut base = world.agent_config(transport, args.port, &fleet_id(0), &amqp_url)?;
    if let Some(queue) = &args.amqp_queue {
        base.amqp.queue.clone_from(queue);
    }
    let dialer = storm_dialer(transport, &base)?;
    let handler: Arc<dyn Handler> = Arc::new(redpepper_agent::operations::router());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..args.agents {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let mut config = base.clone();
        config.agent_id = fleet_id(i);
        let dialer = Box::new(SharedDialer(Arc::clone(&dialer)));
        let agent = Agent::with_dialer(config, dialer, Arc::clone(&handler));
        set.spawn(async move {
            let session = agent.connect().await;
            drop(permit);
            session
        });
    }
    let mut sessions = Vec::with_capacity(args.agents);
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(session)) => sessions.push(session),
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    emit(
        "storm",
        Burst {
            agents: args.agents,
            ok: sessions.len(),
            failed: args.agents - sessions.len(),
            secs,
            first_error,
        },
    );
    // Hold every session until the orchestrator closes stdin (which exits).
    let mut commands = stdin_lines();
    while let Some(line) = commands.recv().await {
        let line = line.trim();
        if line == "quit" {
            break;
        }
        if let Some(bytes) = line.strip_prefix("blob ") {
            match bytes.trim().parse::<usize>() {
                Ok(bytes) => emit("blob", blob_all(&sessions, bytes).await),
                Err(e) => emit("error", format!("blob size {bytes:?}: {e}")),
            }
            continue;
        }
        let alive = sessions.iter().filter(|s| !s.is_closed()).count();
        emit("alive", alive);
    }
    drop(sessions);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_urls_ask_for_small_frames() {
        assert_eq!(
            with_small_frames("amqp://u:p@127.0.0.1:5672/v"),
            "amqp://u:p@127.0.0.1:5672/v?frame_max=4096"
        );
        assert_eq!(
            with_small_frames("amqp://h/v?heartbeat=5"),
            "amqp://h/v?heartbeat=5&frame_max=4096"
        );
        assert_eq!(
            with_small_frames("amqp://h/v?frame_max=65536"),
            "amqp://h/v?frame_max=65536"
        );
    }
}
