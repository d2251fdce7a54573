//! The processes of the all-at-once storm ([`crate::workloads::storm`]).
//!
//! - `storm-manager`: our manager over TLS with the certificates of `--certs` (ECDSA
//!   or RSA-2048), started as [`Manager::start`] starts it (the factory's
//!   [`TlsListener`] with `admission.handshake_timeout`, the registry authenticator,
//!   the `admission.*` limits) except that the certificate resolver of its TLS
//!   configuration counts every ClientHello it answers: that is where the manager's
//!   handshake work (key exchange, signature) starts, so ClientHellos answered minus
//!   sessions established is the work spent on agents that did not get a session.
//!   Answers `stats` on stdin with `{"stats": {...}}`.
//! - `storm-client`, `--mode rate`: `--concurrency` agents in a closed loop, each
//!   connecting (full TLS handshake, hello) and saying Bye, for `--secs`: the
//!   manager's handshake rate (`{"rate": {...}}`).
//! - `storm-client`, `--mode storm`: `--agents` agents started at once, each running
//!   the agent program's own loop ([`Agent::run`]: its dialer's connect timeout, its
//!   hello timeout, its backoff), through a dialer wrapper that times every attempt.
//!   `{"storm": {...}}` when every agent has a session; then, on `mark`, the same
//!   figures counted afresh until every agent has a new session (`{"reconnect": ...}`),
//!   for a manager restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use redpepper_agent::Agent;
use redpepper_config::{AgentConfig, CachedRegistry};
use redpepper_core::{BoxTransport, Dialer, Handler, TransportError};
use redpepper_manager::admission::Limits;
use redpepper_manager::{session_config, Manager, RegistryAuthenticator};
use redpepper_tests::certs::names;
use redpepper_transports::TlsListener;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::fleet::{storm_dialer, SharedDialer};
use super::{emit, stdin_lines, Common};
use crate::placement::raise_nofile;
use crate::setup::{fleet_id, Transport};

/// Arguments of the storm's manager.
#[derive(Debug, Clone, clap::Args)]
pub struct StormManagerArgs {
    /// Work directory, CPU (the transport is always tls).
    #[command(flatten)]
    pub common: Common,
    /// Directory of the certificates (ca.pem, manager.pem, manager-key.pem).
    #[arg(long)]
    pub certs: PathBuf,
    /// Port to listen on (0: any; a restarted manager takes its predecessor's).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// What the storm's agents do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientMode {
    /// Closed loop: the manager's handshake rate.
    Rate,
    /// Every agent at once, retrying as the agent does.
    Storm,
}

/// Arguments of the storm's agents.
#[derive(Debug, Clone, clap::Args)]
pub struct StormClientArgs {
    /// Work directory, CPU (the transport is always tls).
    #[command(flatten)]
    pub common: Common,
    /// Directory of the certificates (the agents trust its ca.pem).
    #[arg(long)]
    pub certs: PathBuf,
    /// The manager's port.
    #[arg(long)]
    pub port: u16,
    /// Rate or storm.
    #[arg(long, value_enum)]
    pub mode: ClientMode,
    /// Storm: how many agents.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// Rate: agents in the closed loop.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Rate: measured seconds (after a warm-up of a tenth of it).
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// Storm: give up waiting for every agent after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub limit: f64,
}

/// What the storm's manager counted so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ManagerStats {
    /// ClientHellos the TLS layer answered (each costs a key exchange and a signature).
    pub client_hellos: u64,
    /// Sessions established (hello accepted).
    pub sessions: u64,
    /// Hellos that failed after the TLS handshake (timed out, peer gone).
    pub hello_failures: u64,
    /// Connections closed to make room (`admission.max_pending`).
    pub evicted: u64,
    /// Connections closed at accept (per-source caps).
    pub refused: u64,
    /// Agents connected now.
    pub agents: usize,
}

/// Counts the ClientHellos a TLS server answers.
#[derive(Debug)]
struct CountingResolver {
    inner: Arc<dyn ResolvesServerCert>,
    hellos: Arc<AtomicU64>,
}

impl ResolvesServerCert for CountingResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.hellos.fetch_add(1, Ordering::Relaxed);
        self.inner.resolve(hello)
    }
}

/// The storm's manager child.
pub async fn manager(args: StormManagerArgs) -> anyhow::Result<()> {
    raise_nofile(1 << 16)?;
    let world = args.common.world();
    let mut config = world.manager_config(Transport::Tls, &args.common.amqp_url)?;
    config.tls.cert_file = Some(args.certs.join(names::MANAGER_CERT));
    config.tls.key_file = Some(args.certs.join(names::MANAGER_KEY));
    let base = redpepper_transports::tls::server_config(&config.tls)?;
    let mut tls = (*base).clone();
    let hellos = Arc::new(AtomicU64::new(0));
    tls.cert_resolver = Arc::new(CountingResolver {
        inner: Arc::clone(&tls.cert_resolver),
        hellos: Arc::clone(&hellos),
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TlsListener::bind(addr, Arc::new(tls), config.session.max_message_size)
        .await?
        .with_handshake_timeout(config.admission.handshake_timeout);
    let registry = CachedRegistry::open(config.agents_file())?;
    let manager = Manager::start_admitting(
        session_config(&config),
        vec![Box::new(listener)],
        Arc::new(RegistryAuthenticator::new(registry)),
        Limits::from_config(&config),
    );
    let port = super::listening_port(&manager);
    emit(
        "ready",
        serde_json::json!({ "port": port, "pid": std::process::id() }),
    );
    let metrics = manager.metrics();
    let mut commands = stdin_lines();
    while let Some(line) = commands.recv().await {
        match line.trim() {
            "stats" => emit(
                "stats",
                ManagerStats {
                    client_hellos: hellos.load(Ordering::Relaxed),
                    sessions: metrics.handshakes.load(Ordering::Relaxed),
                    hello_failures: metrics.handshake_failures.load(Ordering::Relaxed),
                    evicted: metrics.preauth_evicted.load(Ordering::Relaxed),
                    refused: metrics.preauth_refused.load(Ordering::Relaxed),
                    agents: manager.agents().len(),
                },
            ),
            "quit" => break,
            other => emit("error", format!("unknown command {other:?}")),
        }
    }
    Ok(())
}

/// The closed-loop rate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rate {
    /// Sessions established in the measured window.
    pub handshakes: u64,
    /// Failed attempts in the window.
    pub failures: u64,
    /// Measured seconds.
    pub secs: f64,
    /// Agents in the loop.
    pub concurrency: usize,
    /// The first failure.
    pub first_error: Option<String>,
}

/// What one phase of a storm measured (from its start until every agent had a
/// session, or the limit).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    /// Agents.
    pub agents: usize,
    /// Agents that got a session in this phase.
    pub connected: usize,
    /// Seconds from the phase's start until the last of them got its session.
    pub secs_all: f64,
    /// Seconds until half of them had one.
    pub secs_p50: f64,
    /// Seconds until 90 % had one.
    pub secs_p90: f64,
    /// Dials started (TCP + TLS; each is one connect attempt).
    pub attempts: u64,
    /// Most attempts one agent needed.
    pub max_attempts: u64,
    /// Dials that hit the dialer's connect timeout.
    pub dial_timeouts: u64,
    /// Dials that failed otherwise (refused, reset, closed by the manager).
    pub dial_errors: u64,
    /// Attempts whose dial worked but whose hello did not.
    pub hello_failures: u64,
    /// Longest dial (TCP connect + TLS handshake) of any attempt, seconds.
    pub max_dial_secs: f64,
    /// Longest attempt that got a session, dial start to session, seconds.
    pub max_attempt_secs: f64,
    /// The agent's connect timeout (its dialer's), seconds.
    pub connect_timeout_secs: f64,
    /// The first dial error.
    pub first_error: Option<String>,
}

#[derive(Debug, Default)]
struct AgentTrack {
    /// Start of the attempt whose dial worked and whose hello is under way.
    awaiting_session: Option<Instant>,
    connected_in_phase: bool,
    attempts: u64,
}

#[derive(Debug)]
struct Track {
    start: Instant,
    agents: Vec<AgentTrack>,
    times: Vec<f64>,
    phase: Phase,
}

/// Every agent's attempts, counted per phase.
#[derive(Debug)]
struct Tracker {
    track: Mutex<Track>,
    connected: watch::Sender<usize>,
}

impl Tracker {
    fn new(agents: usize, connect_timeout: Duration) -> Arc<Tracker> {
        Arc::new(Tracker {
            track: Mutex::new(Track {
                start: Instant::now(),
                agents: (0..agents).map(|_| AgentTrack::default()).collect(),
                times: Vec::with_capacity(agents),
                phase: Phase {
                    agents,
                    connect_timeout_secs: connect_timeout.as_secs_f64(),
                    ..Phase::default()
                },
            }),
            connected: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a new phase now.
    fn mark(&self) {
        let mut t = self.lock();
        t.start = Instant::now();
        for a in &mut t.agents {
            a.connected_in_phase = false;
            a.attempts = 0;
        }
        t.times.clear();
        t.phase = Phase {
            agents: t.phase.agents,
            connect_timeout_secs: t.phase.connect_timeout_secs,
            ..Phase::default()
        };
        self.connected.send_replace(0);
    }

    fn dial_started(&self, agent: usize) {
        let mut t = self.lock();
        let Track { agents, phase, .. } = &mut *t;
        let Some(a) = agents.get_mut(agent) else {
            return;
        };
        if a.awaiting_session.take().is_some() {
            phase.hello_failures += 1;
        }
        a.attempts += 1;
        phase.attempts += 1;
        phase.max_attempts = phase.max_attempts.max(a.attempts);
    }

    fn dial_ended(&self, agent: usize, started: Instant, result: Result<(), String>) {
        let secs = started.elapsed().as_secs_f64();
        let mut t = self.lock();
        let Track { agents, phase, .. } = &mut *t;
        phase.max_dial_secs = phase.max_dial_secs.max(secs);
        match result {
            Ok(()) => {
                if let Some(a) = agents.get_mut(agent) {
                    a.awaiting_session = Some(started);
                }
            }
            Err(e) => {
                if is_timeout(&e) {
                    phase.dial_timeouts += 1;
                } else {
                    phase.dial_errors += 1;
                }
                phase.first_error.get_or_insert(e);
            }
        }
    }

    fn session(&self, agent: usize) {
        let now = Instant::now();
        let mut t = self.lock();
        let since_start = now.saturating_duration_since(t.start).as_secs_f64();
        let Track {
            agents,
            phase,
            times,
            ..
        } = &mut *t;
        let Some(a) = agents.get_mut(agent) else {
            return;
        };
        if let Some(started) = a.awaiting_session.take() {
            let secs = now.saturating_duration_since(started).as_secs_f64();
            phase.max_attempt_secs = phase.max_attempt_secs.max(secs);
        }
        if !a.connected_in_phase {
            a.connected_in_phase = true;
            times.push(since_start);
            phase.connected += 1;
            let n = phase.connected;
            drop(t);
            self.connected.send_replace(n);
        }
    }

    /// The phase so far.
    fn phase(&self) -> Phase {
        let t = self.lock();
        let mut phase = t.phase.clone();
        let mut times = t.times.clone();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((times.len() as f64 * q).ceil() as usize).saturating_sub(1);
            times.get(i).copied().unwrap_or(0.0)
        };
        phase.secs_all = times.last().copied().unwrap_or(0.0);
        phase.secs_p50 = at(0.5);
        phase.secs_p90 = at(0.9);
        phase
    }

    /// Wait until every agent has a session in this phase, at most `limit`.
    async fn all_connected(&self, limit: Duration) -> Phase {
        let n = self.lock().agents.len();
        let mut rx = self.connected.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|c| *c >= n)).await;
        self.phase()
    }
}

/// One agent's dialer: the shared one, every attempt timed.
struct TimedDialer {
    inner: SharedDialer,
    agent: usize,
    tracker: Arc<Tracker>,
}

impl Dialer for TimedDialer {
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
        Box::pin(async move {
            self.tracker.dial_started(self.agent);
            let started = Instant::now();
            let result = self.inner.dial().await;
            let outcome = match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
            self.tracker.dial_ended(self.agent, started, outcome);
            result
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The storm's agents child.
pub async fn client(args: StormClientArgs) -> anyhow::Result<()> {
    let want = args.agents.max(args.concurrency) as u64 + 1024;
    let limit = raise_nofile(want)?;
    anyhow::ensure!(
        limit >= want,
        "open-file limit {limit} is too low for {} agents",
        args.agents
    );
    let world = args.common.world();
    let mut base = world.agent_config(Transport::Tls, args.port, &fleet_id(0), "")?;
    base.tls.ca_file = Some(args.certs.join(names::CA_CERT));
    let dialer = storm_dialer(Transport::Tls, &base)?;
    let handler: Arc<dyn Handler> = Arc::new(redpepper_agent::operations::router());
    match args.mode {
        ClientMode::Rate => {
            let rate = rate(&args, &base, dialer, handler).await;
            emit("rate", rate);
            Ok(())
        }
        ClientMode::Storm => storm(&args, &base, dialer, handler).await,
    }
}

fn agent(
    base: &AgentConfig,
    i: usize,
    dialer: Box<dyn Dialer>,
    handler: &Arc<dyn Handler>,
) -> Agent {
    let mut config = base.clone();
    config.agent_id = fleet_id(i);
    Agent::with_dialer(config, dialer, Arc::clone(handler))
}

async fn rate(
    args: &StormClientArgs,
    base: &AgentConfig,
    dialer: Arc<dyn Dialer>,
    handler: Arc<dyn Handler>,
) -> Rate {
    let secs = args.secs.max(0.01);
    let from = Instant::now() + Duration::from_secs_f64(secs / 10.0);
    let until = from + Duration::from_secs_f64(secs);
    let loops = (0..args.concurrency.max(1)).map(|i| {
        let agent = agent(
            base,
            i,
            Box::new(SharedDialer(Arc::clone(&dialer))),
            &handler,
        );
        async move {
            let mut out = Rate::default();
            loop {
                let result = agent.connect().await;
                let now = Instant::now();
                let counted = now >= from && now < until;
                match result {
                    Ok(session) => {
                        if counted {
                            out.handshakes += 1;
                        }
                        session.close("rate measured").await;
                    }
                    Err(e) => {
                        if counted {
                            out.failures += 1;
                        }
                        out.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                if now >= until {
                    return out;
                }
            }
        }
    });
    let results = futures::future::join_all(loops).await;
    let mut total = Rate {
        secs,
        concurrency: args.concurrency.max(1),
        ..Rate::default()
    };
    for r in results {
        total.handshakes += r.handshakes;
        total.failures += r.failures;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
    }
    total
}

async fn storm(
    args: &StormClientArgs,
    base: &AgentConfig,
    dialer: Arc<dyn Dialer>,
    handler: Arc<dyn Handler>,
) -> anyhow::Result<()> {
    let tracker = Tracker::new(
        args.agents,
        redpepper_transports::tls::DEFAULT_CONNECT_TIMEOUT,
    );
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tracker.mark();
    for i in 0..args.agents {
        let timed = TimedDialer {
            inner: SharedDialer(Arc::clone(&dialer)),
            agent: i,
            tracker: Arc::clone(&tracker),
        };
        let agent = agent(base, i, Box::new(timed), &handler);
        let tracker = Arc::clone(&tracker);
        let stop = stop.clone();
        tasks.spawn(async move {
            let _ = agent.run(stop, move |_| tracker.session(i)).await;
        });
    }
    let limit = Duration::from_secs_f64(args.limit.max(1.0));
    emit("storm", tracker.all_connected(limit).await);
    let mut commands = stdin_lines();
    while let Some(line) = commands.recv().await {
        match line.trim() {
            "mark" => {
                tracker.mark();
                emit("marked", true);
                emit("reconnect", tracker.all_connected(limit).await);
            }
            "quit" => break,
            other => emit("error", format!("unknown command {other:?}")),
        }
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Whether a dial error's text is the TLS dialer's own connect timeout.
fn is_timeout(error: &str) -> bool {
    error.contains("no TLS connection within")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_text_is_the_dialers() {
        let e = TransportError::Connect {
            target: "tls://127.0.0.1:1".to_owned(),
            reason: format!(
                "no TLS connection within {:.1}s",
                redpepper_transports::tls::DEFAULT_CONNECT_TIMEOUT.as_secs_f64()
            ),
        };
        assert!(is_timeout(&e.to_string()));
    }

    #[test]
    fn a_phase_counts_each_agent_once_and_restarts_on_mark() {
        let t = Tracker::new(2, Duration::from_secs(10));
        t.dial_started(0);
        t.dial_ended(0, Instant::now(), Ok(()));
        t.session(0);
        t.dial_started(1);
        t.dial_ended(
            1,
            Instant::now(),
            Err("no TLS connection within 10.0s".into()),
        );
        t.dial_started(1);
        t.dial_ended(1, Instant::now(), Ok(()));
        t.dial_started(1);
        t.dial_ended(1, Instant::now(), Ok(()));
        t.session(1);
        t.session(1);
        let p = t.phase();
        assert_eq!(
            (p.connected, p.attempts, p.max_attempts),
            (2, 4, 3),
            "{p:?}"
        );
        assert_eq!(
            (p.dial_timeouts, p.dial_errors, p.hello_failures),
            (1, 0, 1)
        );
        t.mark();
        let p = t.phase();
        assert_eq!((p.connected, p.attempts, p.agents), (0, 0, 2));
    }
}
