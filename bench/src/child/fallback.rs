//! The transport-fallback workload's processes (`workloads::fallback`).
//!
//! **`fallback-manager`**: our manager started as its binary starts it
//! (`Manager::start`, multi-threaded runtime) with `transports: [tls, websocket]`
//! (wss, the manager's certificate). Its `ready` line names both ports (`port`: TLS,
//! `ws_port`: WebSocket). Commands on stdin, one answer line each:
//!
//! | command                  | answer                                                   |
//! |--------------------------|----------------------------------------------------------|
//! | `tls N LIMIT`            | `{"tls": Wait}` once N agents have a TLS session         |
//! | `fallback N LIMIT`       | `{"watching": true}` at once, then `{"fallback": Failover}`: until agents 0..N each answered an `echo` over a WebSocket session |
//! | `moveback N LIMIT PACE`  | `{"watching": true}` at once, then `{"moveback": MoveBack}`: until agents 0..N each have a TLS session again, while every agent is called every PACE seconds |
//!
//! The agents are `child cluster-agents` with [`FallbackArgs`]: `transport: [tls,
//! websocket]`, each running the agent program's loop (`Agent::run`), which walks the
//! list and probes TLS again every `transport_probe_interval` (jittered) while on
//! WebSocket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use redpepper_core::{Dialer, TransportKind, Value};
use redpepper_manager::Manager;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::cluster::{count_and_limit, failover, Wait};
use super::fleet::SharedDialer;
use super::{emit, stdin_lines, Common};
use crate::placement::raise_nofile;
use crate::setup::{fleet_id, Transport};
use crate::stats::Samples;

/// How often the manager child looks at its sessions while it waits (a benchmark
/// polls; tests wait on events).
const POLL: Duration = Duration::from_millis(10);

/// Timeout of every call of the move back.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The agents' side: a WebSocket entry after TLS (`cluster-agents` flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FallbackArgs {
    /// Fall back to WebSocket (wss) on this loopback port when TLS cannot connect:
    /// `transport: [tls, websocket]`.
    #[arg(long)]
    pub ws_port: Option<u16>,
    /// `transport_probe_interval` in seconds (default: the agent's, 60).
    #[arg(long)]
    pub probe_interval: Option<f64>,
}

impl FallbackArgs {
    /// Write the fallback into `config` (`transport: [tls, websocket]`,
    /// `websocket.url`, `transport_probe_interval`) and build the fallback entries'
    /// dialers, one for every agent as the transports factory builds them; none
    /// without `--ws-port`.
    pub fn apply(
        &self,
        config: &mut redpepper_config::AgentConfig,
    ) -> anyhow::Result<Vec<(TransportKind, Arc<dyn Dialer>)>> {
        let Some(port) = self.ws_port else {
            return Ok(Vec::new());
        };
        config.transport_fallbacks = vec![TransportKind::WebSocket];
        config.websocket.urls = vec![format!("wss://127.0.0.1:{port}/redpepper")];
        if let Some(secs) = self.probe_interval {
            config.transport_probe_interval = Duration::try_from_secs_f64(secs)
                .with_context(|| format!("--probe-interval {secs} is not a number of seconds"))?;
        }
        let ws = redpepper_transports::dialer_for(config, TransportKind::WebSocket)?;
        Ok(vec![(TransportKind::WebSocket, Arc::from(ws))])
    }
}

/// One agent's fallback entries over the shared dialers.
pub fn shared(
    fallbacks: &[(TransportKind, Arc<dyn Dialer>)],
) -> Vec<(TransportKind, Box<dyn Dialer>)> {
    fallbacks
        .iter()
        .map(|(kind, dialer)| {
            let dialer: Box<dyn Dialer> = Box::new(SharedDialer(Arc::clone(dialer)));
            (*kind, dialer)
        })
        .collect()
}

/// Arguments of the fallback manager.
#[derive(Debug, Clone, clap::Args)]
pub struct ManagerArgs {
    /// Work directory, CPU.
    #[command(flatten)]
    pub common: Common,
}

/// What the manager saw while the agents moved back to TLS: seconds from the
/// `watching` line.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MoveBack {
    /// Agents expected back on TLS.
    pub agents: usize,
    /// Agents with a TLS session before the limit.
    pub on_tls: usize,
    /// When half of them had one.
    pub secs_p50: f64,
    /// When 90 % had.
    pub secs_p90: f64,
    /// When the last one did.
    pub secs_all: f64,
    /// Calls made to the agents meanwhile (through `Manager::call`).
    pub calls: u64,
    /// Those that failed.
    pub failed_calls: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

/// The fallback manager child.
pub async fn manager(args: ManagerArgs) -> anyhow::Result<()> {
    raise_nofile(1 << 16)?;
    let world = args.common.world();
    let mut config = world.manager_config(Transport::Tls, &args.common.amqp_url)?;
    config.transports = vec![TransportKind::Tls, TransportKind::WebSocket];
    let manager = Manager::start(&config).await?;
    let port = |kind| manager.local_addr(kind).map_or(0, |a| a.port());
    emit(
        "ready",
        serde_json::json!({
            "port": port(TransportKind::Tls),
            "ws_port": port(TransportKind::WebSocket),
            "pid": std::process::id(),
        }),
    );
    let mut commands = stdin_lines();
    while let Some(line) = commands.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("tls") => {
                let (n, limit) = count_and_limit(&mut words)?;
                emit("tls", on_tls(&manager, n, limit).await);
            }
            Some("fallback") => {
                let (n, limit) = count_and_limit(&mut words)?;
                emit("watching", true);
                let over = Some(TransportKind::WebSocket);
                emit(
                    "fallback",
                    failover(&manager, 0, n, limit, None, over).await,
                );
            }
            Some("moveback") => {
                let (n, limit) = count_and_limit(&mut words)?;
                let pace = words.next().context("moveback: no pace")?;
                let pace: f64 = pace
                    .parse()
                    .with_context(|| format!("moveback: pace {pace:?} is not seconds"))?;
                let pace = Duration::try_from_secs_f64(pace)
                    .with_context(|| format!("moveback: pace {pace} is not seconds"))?;
                emit("watching", true);
                emit("moveback", move_back(&manager, n, limit, pace).await);
            }
            Some("quit") => break,
            _ => emit("error", format!("unknown command {line:?}")),
        }
    }
    Ok(())
}

/// Wait until `n` agents have a TLS session.
async fn on_tls(manager: &Manager, n: usize, limit: Duration) -> Wait {
    let start = Instant::now();
    loop {
        let count = manager
            .connected_per_transport()
            .iter()
            .find(|(kind, _)| *kind == TransportKind::Tls)
            .map_or(0, |(_, count)| *count);
        if count >= n || start.elapsed() >= limit {
            return Wait {
                count,
                local: count,
                secs: start.elapsed().as_secs_f64(),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Failed calls and the first failure, shared by the callers.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// From now until agents `0..n` each have a TLS session (at most `limit`), while each
/// is called (`echo` through `Manager::call`) every `pace`, from a random phase.
async fn move_back(manager: &Manager, n: usize, limit: Duration, pace: Duration) -> MoveBack {
    let start = Instant::now();
    let ids: Vec<String> = (0..n).map(fleet_id).collect();
    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    let mut callers = JoinSet::new();
    for id in &ids {
        let (manager, id, tally, stop) = (
            manager.clone(),
            id.clone(),
            Arc::clone(&tally),
            stop.clone(),
        );
        callers.spawn(async move {
            let mut next = tokio::time::Instant::now() + pace.mul_f64(rand::random::<f64>());
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep_until(next) => {}
                }
                next += pace;
                let r = manager
                    .call(&id, "echo", vec![Value::from("x")], vec![], CALL_TIMEOUT)
                    .await;
                tally.calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = r {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    tally
                        .first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert_with(|| format!("{id}: {e}"));
                }
            }
        });
    }
    let mut back = vec![false; n];
    let mut samples = Samples::with_capacity(n);
    let mut on_tls = 0;
    while on_tls < n && start.elapsed() < limit {
        for (id, back) in ids.iter().zip(back.iter_mut()) {
            if !*back
                && manager
                    .session(id)
                    .is_some_and(|s| s.peer().kind == TransportKind::Tls)
            {
                *back = true;
                on_tls += 1;
                samples.push(start.elapsed());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    // Calls in flight finish (or fail) before they are counted.
    stop.cancel();
    while callers.join_next().await.is_some() {}
    let q = samples.quantiles_us(&[0.5, 0.9, 1.0]);
    let secs = |i: usize| q.get(i).copied().flatten().unwrap_or(0.0) / 1e6;
    let first_error = tally
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    MoveBack {
        agents: n,
        on_tls,
        secs_p50: secs(0),
        secs_p90: secs(1),
        secs_all: secs(2),
        calls: tally.calls.load(Ordering::Relaxed),
        failed_calls: tally.failed.load(Ordering::Relaxed),
        first_error,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_fallback_makes_tls_then_websocket() {
        let dir = tempfile::tempdir().unwrap();
        let world = crate::setup::World::create(dir.path(), 1, "amqp://h/v").unwrap();
        let mut config = world
            .agent_config(Transport::Tls, 7001, "fleet-00000", "amqp://h/v")
            .unwrap();
        let none = FallbackArgs::default().apply(&mut config).unwrap();
        assert!(none.is_empty());
        assert_eq!(config.transports(), [TransportKind::Tls]);
        let args = FallbackArgs {
            ws_port: Some(7002),
            probe_interval: Some(1.5),
        };
        let entries = args.apply(&mut config).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, TransportKind::WebSocket);
        assert!(
            entries[0].1.describe().contains("7002"),
            "{}",
            entries[0].1.describe()
        );
        assert_eq!(
            config.transports(),
            [TransportKind::Tls, TransportKind::WebSocket]
        );
        assert_eq!(config.transport_probe_interval, Duration::from_millis(1500));
        let bad = FallbackArgs {
            ws_port: Some(7002),
            probe_interval: Some(-1.0),
        };
        assert!(bad.apply(&mut config).is_err());
    }
}
