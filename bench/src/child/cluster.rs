//! The cluster workloads' processes (`workloads::cluster`): a clustered manager node
//! and a fleet of agents that reconnect as the agent program does.
//!
//! **`cluster-node`**: our manager started as its binary starts it
//! (`Manager::start` with a configuration that has a `cluster:` section, on a
//! multi-threaded runtime): it joins the cluster through the broker at `--amqp-url`
//! and serves agents over TLS on `--port` (0: any). Commands on stdin, one answer
//! line each:
//!
//! | command                      | answer                                                    |
//! |------------------------------|-----------------------------------------------------------|
//! | `nodes N LIMIT`              | `{"nodes": Wait}` once N nodes (itself included) are alive |
//! | `agents N LIMIT`             | `{"agents": Wait}` once its directory lists N agents       |
//! | `calls AGENT TASK`           | `{"result": TaskResult}`: a closed loop of routed `echo` calls (TASK: a JSON `Calls`) |
//! | `fanout`                     | `{"fanout": Burst}`: one routed `echo` to every agent of the cluster at once |
//! | `failover FIRST N LIMIT DEAD`| `{"watching": true}` at once, then `{"failover": Failover}` |
//!
//! **`cluster-agents`**: agents `fleet-FIRST` .. `fleet-(FIRST+N-1)` in one process,
//! each running `Agent::run` (the agent program's loop: reconnects with its
//! backoff) with the configuration the agent program would read
//! (`manager_host` one host, or the list of `--ports`), at most `--concurrency`
//! first handshakes at once. Reports `{"connected": Burst}` once every agent had a
//! session (or the limit passed); answers `live` with `{"live": N}` (sessions open
//! now).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use redpepper_agent::Agent;
use redpepper_core::{Dialer, Handler, Kwargs, TransportKind, Value};
use redpepper_manager::cluster::NodeState;
use redpepper_manager::Manager;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::fleet::SharedDialer;
use super::session::Caller;
use super::{emit, stdin_lines, Common};
use crate::placement::raise_nofile;
use crate::setup::{fleet_id, Transport};
use crate::tasks::{Burst, Calls};
use redpepper_tests::yaml_str;

/// How often a node child looks again while it waits for a condition (a benchmark
/// polls; tests wait on events).
const POLL: Duration = Duration::from_millis(10);

/// How often it counts the directory while it waits for agents: each count copies
/// the whole directory, which must neither load the node nor, freed, stay in its RSS.
const AGENTS_POLL: Duration = Duration::from_millis(200);

/// Timeout of every routed call the node child makes.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of a cluster node.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Work directory, CPU, broker (the cluster's `cluster.url`).
    #[command(flatten)]
    pub common: Common,
    /// `cluster.name`.
    #[arg(long)]
    pub cluster: String,
    /// `cluster.node`.
    #[arg(long)]
    pub node: String,
    /// TLS port for agents (0: any).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Arguments of the agents child.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentsArgs {
    /// Work directory, CPU.
    #[command(flatten)]
    pub common: Common,
    /// The managers' TLS ports on loopback, in the agents' `manager_host` order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub ports: Vec<u16>,
    /// Index of the first fleet agent.
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// How many agents.
    #[arg(long)]
    pub agents: usize,
    /// Most first handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to wait for every first session before reporting.
    #[arg(long, default_value_t = 600.0)]
    pub limit: f64,
    /// The manager's hello queue, over amqp (`--transport amqp`, `--amqp-url` one
    /// URL or several separated by commas).
    #[arg(long)]
    pub amqp_queue: Option<String>,
    /// A WebSocket fallback after TLS (the transport-fallback workload).
    #[command(flatten)]
    pub fallback: super::fallback::FallbackArgs,
}

/// What a node waited for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Wait {
    /// What it counted at the end (nodes alive, or agents in the directory).
    pub count: usize,
    /// Of those agents, how many are on this node.
    pub local: usize,
    /// Seconds it waited.
    pub secs: f64,
}

/// What the surviving node saw after another node was killed: seconds from the
/// `watching` line.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Failover {
    /// Agents expected back.
    pub agents: usize,
    /// Agents that answered a call through this node before the limit.
    pub callable: usize,
    /// When this node counted the killed node dead.
    pub secs_dead: Option<f64>,
    /// When half of the agents had answered.
    pub secs_p50: f64,
    /// When 90 % had.
    pub secs_p90: f64,
    /// When the last one did.
    pub secs_all: f64,
    /// Calls that failed (then retried).
    pub failed_calls: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

/// The `cluster:` section of a node's configuration.
pub fn cluster_yaml(url: &str, cluster: &str, node: &str) -> String {
    format!(
        "cluster:\n  url: {}\n  name: {}\n  node: {}\n",
        yaml_str(url),
        yaml_str(cluster),
        yaml_str(node)
    )
}

/// Routed `echo` calls to one agent through a manager's API.
#[derive(Clone)]
struct Routed {
    manager: Manager,
    agent: Arc<str>,
}

impl Caller for Routed {
    async fn echo(&self, args: Vec<Value>, kwargs: Kwargs) -> Result<Value, String> {
        self.manager
            .call(&self.agent, "echo", args, kwargs, CALL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    fn gone(&self) -> bool {
        false
    }
}

/// The node child.
pub async fn node(args: NodeArgs) -> anyhow::Result<()> {
    raise_nofile(1 << 16)?;
    let world = args.common.world();
    let url = &args.common.amqp_url;
    let extra = cluster_yaml(url, &args.cluster, &args.node);
    let config = world.manager_config_with(Transport::Tls, url, args.port, &extra)?;
    let manager = Manager::start(&config).await?;
    let port = super::listening_port(&manager);
    emit(
        "ready",
        serde_json::json!({ "port": port, "pid": std::process::id(), "node": manager.node_name() }),
    );
    let mut commands = stdin_lines();
    while let Some(line) = commands.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nodes") => {
                let (n, limit) = count_and_limit(&mut words)?;
                emit("nodes", wait_nodes(&manager, n, limit).await);
            }
            Some("agents") => {
                let (n, limit) = count_and_limit(&mut words)?;
                emit("agents", wait_agents(&manager, n, limit).await);
            }
            Some("calls") => {
                // `calls AGENT JSON`: the JSON is the rest of the line (labels hold spaces).
                let mut parts = line.trim_start().splitn(3, ' ');
                let agent = parts.nth(1).context("calls: no agent")?;
                let task: Calls = serde_json::from_str(parts.next().context("calls: no task")?)
                    .context("calls: the task is not a JSON Calls")?;
                let caller = Routed {
                    manager: manager.clone(),
                    agent: Arc::from(agent),
                };
                emit("result", super::session::calls(&caller, &task).await);
            }
            Some("fanout") => emit("fanout", super::fleet::fanout(&manager).await),
            Some("failover") => {
                let first = number(words.next(), "failover: first agent")?;
                let (n, limit) = count_and_limit(&mut words)?;
                let dead = words.next().context("failover: no node name")?;
                emit("watching", true);
                emit(
                    "failover",
                    failover(&manager, first, n, limit, Some(dead), None).await,
                );
            }
            Some("quit") => break,
            _ => emit("error", format!("unknown command {line:?}")),
        }
    }
    Ok(())
}

fn number(word: Option<&str>, what: &str) -> anyhow::Result<usize> {
    let word = word.with_context(|| format!("{what}: missing"))?;
    word.parse()
        .with_context(|| format!("{what}: {word:?} is not a number"))
}

pub(crate) fn count_and_limit<'a>(
    words: &mut impl Iterator<Item = &'a str>,
) -> anyhow::Result<(usize, Duration)> {
    let n = number(words.next(), "count")?;
    let limit = words.next().context("no limit")?;
    let limit: f64 = limit
        .parse()
        .with_context(|| format!("limit {limit:?} is not a number of seconds"))?;
    Ok((n, Duration::from_secs_f64(limit.max(0.0))))
}

/// Wait until `n` nodes (this one included) are alive.
async fn wait_nodes(manager: &Manager, n: usize, limit: Duration) -> Wait {
    let start = Instant::now();
    loop {
        let alive = manager
            .cluster_nodes()
            .iter()
            .filter(|node| node.state != NodeState::Dead)
            .count();
        if alive >= n || start.elapsed() >= limit {
            return Wait {
                count: alive,
                local: 0,
                secs: start.elapsed().as_secs_f64(),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until the directory lists `n` agents.
async fn wait_agents(manager: &Manager, n: usize, limit: Duration) -> Wait {
    let start = Instant::now();
    loop {
        let agents = manager.agents();
        if agents.len() >= n || start.elapsed() >= limit {
            let me = manager.node_name();
            return Wait {
                count: agents.len(),
                local: agents.iter().filter(|a| a.node == me).count(),
                secs: start.elapsed().as_secs_f64(),
            };
        }
        tokio::time::sleep(AGENTS_POLL).await;
    }
}

/// From now until agents `first..first+n` each answered an `echo` through this node
/// (they had a session here: the node holding them before is `dead`, when given; a
/// session over `over` only, when given), at most `limit`.
pub(crate) async fn failover(
    manager: &Manager,
    first: usize,
    n: usize,
    limit: Duration,
    dead: Option<&str>,
    over: Option<TransportKind>,
) -> Failover {
    let start = Instant::now();
    let mut out = Failover {
        agents: n,
        ..Failover::default()
    };
    // Per agent: whether a call is under way or done.
    let mut asked = vec![false; n];
    let mut times: Vec<f64> = Vec::with_capacity(n);
    let mut calls = JoinSet::new();
    while times.len() < n && start.elapsed() < limit {
        if let (None, Some(dead)) = (out.secs_dead, dead) {
            if manager
                .cluster_nodes()
                .iter()
                .any(|node| node.name == dead && node.state == NodeState::Dead)
            {
                out.secs_dead = Some(start.elapsed().as_secs_f64());
            }
        }
        for (i, asked) in asked.iter_mut().enumerate() {
            let id = fleet_id(first + i);
            let ready = manager
                .session(&id)
                .is_some_and(|s| over.is_none_or(|kind| s.peer().kind == kind));
            if *asked || !ready {
                continue;
            }
            *asked = true;
            let manager = manager.clone();
            calls.spawn(async move {
                let r = manager
                    .call(&id, "echo", vec![Value::from("x")], vec![], CALL_TIMEOUT)
                    .await;
                (i, r.map(|_| ()).map_err(|e| e.to_string()))
            });
        }
        let tick = tokio::time::sleep(POLL);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                Some(joined) = calls.join_next() => match joined {
                    Ok((_, Ok(()))) => times.push(start.elapsed().as_secs_f64()),
                    Ok((i, Err(e))) => {
                        // Asked again once it has a session here.
                        if let Some(a) = asked.get_mut(i) {
                            *a = false;
                        }
                        out.failed_calls += 1;
                        out.first_error.get_or_insert(e);
                    }
                    Err(e) => {
                        out.failed_calls += 1;
                        out.first_error.get_or_insert_with(|| e.to_string());
                    }
                },
                () = &mut tick => break,
            }
        }
    }
    // Agents may be back before the killed node is counted dead (a short hold, quick
    // mode): keep watching for that, within the same limit.
    while let (None, Some(dead)) = (out.secs_dead, dead) {
        if start.elapsed() >= limit {
            break;
        }
        if manager
            .cluster_nodes()
            .iter()
            .any(|node| node.name == dead && node.state == NodeState::Dead)
        {
            out.secs_dead = Some(start.elapsed().as_secs_f64());
        } else {
            tokio::time::sleep(POLL).await;
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((times.len() as f64 * q).ceil() as usize).saturating_sub(1);
        times.get(i).copied().unwrap_or(0.0)
    };
    out.callable = times.len();
    out.secs_p50 = at(0.5);
    out.secs_p90 = at(0.9);
    out.secs_all = times.last().copied().unwrap_or(0.0);
    out
}

/// One agent's first session: counted once, its handshake permit given back.
struct First {
    had: AtomicBool,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

/// The agents child.
pub async fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    super::raise_nofile_for(args.agents)?;
    let world = args.common.world();
    let transport = args.common.transport()?;
    let amqp_url = if transport == Transport::Amqp {
        super::fleet::with_small_frames(&args.common.amqp_url)
    } else {
        String::new()
    };
    let mut base =
        world.agent_config_to(transport, &args.ports, &fleet_id(args.first), &amqp_url)?;
    if let Some(queue) = &args.amqp_queue {
        base.amqp.queue.clone_from(queue);
    }
    let fallbacks = args.fallback.apply(&mut base)?;
    // One dialer (its TLS configuration, its host list) for every agent, as the
    // transports factory builds it for the agent program.
    let dialer: Arc<dyn Dialer> = Arc::from(redpepper_transports::dialer(&base)?);
    let handler: Arc<dyn Handler> = Arc::new(redpepper_agent::operations::router());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let live = Arc::new(AtomicUsize::new(0));
    let (connected, mut seen) = watch::channel(0usize);
    let connected = Arc::new(connected);
    let errors: Arc<Mutex<Option<String>>> = Arc::default();
    let stop = CancellationToken::new();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.agents {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let first = Arc::new(First {
            had: AtomicBool::new(false),
            permit: Mutex::new(Some(permit)),
        });
        let mut config = base.clone();
        config.agent_id = fleet_id(args.first + i);
        let agent = Agent::with_dialer(
            config,
            Box::new(SharedDialer(Arc::clone(&dialer))),
            Arc::clone(&handler),
        )
        .with_fallbacks(super::fallback::shared(&fallbacks));
        let (live, connected, errors, stop) = (
            Arc::clone(&live),
            Arc::clone(&connected),
            Arc::clone(&errors),
            stop.clone(),
        );
        tasks.spawn(async move {
            let on_session = |session: &redpepper_core::Session| {
                live.fetch_add(1, Ordering::Relaxed);
                let (live, session) = (Arc::clone(&live), session.clone());
                tokio::spawn(async move {
                    session.closed().await;
                    live.fetch_sub(1, Ordering::Relaxed);
                });
                if !first.had.swap(true, Ordering::Relaxed) {
                    drop(
                        first
                            .permit
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .take(),
                    );
                    connected.send_modify(|n| *n += 1);
                }
            };
            if let Err(e) = agent.run(stop, on_session).await {
                errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| e.to_string());
            }
        });
    }
    let want = args.agents;
    let limit = Duration::from_secs_f64(args.limit.max(1.0));
    let _ = tokio::time::timeout(limit, seen.wait_for(|n| *n >= want)).await;
    let ok = *connected.borrow();
    emit(
        "connected",
        Burst {
            agents: want,
            ok,
            failed: want - ok.min(want),
            secs: start.elapsed().as_secs_f64(),
            first_error: errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        },
    );
    let mut commands = stdin_lines();
    while let Some(line) = commands.recv().await {
        match line.trim() {
            "live" => emit("live", live.load(Ordering::Relaxed)),
            "quit" => break,
            other => emit("error", format!("unknown command {other:?}")),
        }
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_cluster_section_parses_as_a_managers() {
        let dir = tempfile::tempdir().unwrap();
        let world = crate::setup::World::at(dir.path());
        let url = "amqp://u:p@127.0.0.1:5672/v";
        let extra = cluster_yaml(url, "bench-x", "bench-a");
        let config = world
            .manager_config_with(Transport::Tls, url, 7, &extra)
            .unwrap();
        assert_eq!(config.bind_port, 7);
        let cluster = config
            .cluster
            .as_ref()
            .map(|c| (c.name.as_str(), c.node.as_str()));
        assert_eq!(cluster, Some(("bench-x", "bench-a")));
    }
}
