//! The agent's life: dial, hello, serve, and reconnect with backoff after any loss.
//!
//! # Transport fallback
//!
//! With `transport: [tls, websocket, amqp]` one connection attempt is a round over the
//! entries in order ([`Agent::connect`]): an entry that cannot connect (refused,
//! timeout, proxy refusal, TLS failure, no hello) moves on to the next; a manager that
//! refuses the agent ends the round (the refusal is about the agent, not the path).
//! The backoff runs between whole rounds.
//!
//! ```text
//!   entries   [ tls, websocket, amqp ]
//!   round     tls: refused -> websocket: connected            serve on websocket
//!   probe     every transport_probe_interval/2 .. interval:  tls ... connected
//!   move      new tls session authenticated -> current = tls; the old one serves
//!             until the manager replaces it (Bye after MOVED_GRACE if it does not)
//! ```
//!
//! Connected over a lower entry, the agent probes the entries above it in the
//! background. A probe that connects is a whole new authenticated session: it becomes
//! the current one (the outbox sends pending results there, `on_session` sees it).
//! The manager keeps the newest session of an agent id, so calls go to the new one as
//! soon as it is authenticated, and it closes the old one once the calls in flight
//! there are answered. The agent keeps serving the old session until then (a call the
//! manager sent there just before it took the new one is still answered: no moment
//! without a session, no call lost), and says Bye on it itself only after
//! [`MOVED_GRACE`], for a manager that keeps both.

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redpepper_config::{AgentConfig, TransportKind};
use redpepper_core::{Dialer, Handler, Session, SessionError, TransportError};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::commands::Commands;
use crate::error::AgentError;
use crate::operations;

/// A probe in progress.
type Probe<'a> = Pin<Box<dyn Future<Output = Option<Connected>> + Send + 'a>>;

/// Reason of the Bye on a session left for a better transport.
pub const MOVED_REASON: &str = "moving to a better transport";

/// How long a session left for a better transport keeps serving, waiting for the
/// manager to close it, before the agent says Bye itself ([`MOVED_REASON`]). Longer
/// than our manager's grace for a replaced session's calls in flight (5 s).
pub const MOVED_GRACE: Duration = Duration::from_secs(10);

/// One `transport` entry: its kind and its dialer.
struct Entry {
    kind: TransportKind,
    dialer: Box<dyn Dialer>,
}

/// An authenticated session and where it goes.
struct Connected {
    session: Session,
    /// Its entry in the transport list.
    index: usize,
    /// The manager that answered (a list's entry, or the dialer's description).
    manager: String,
}

/// Why a round found no session.
enum RoundError {
    /// The manager refused the agent on entry `kind`: final for the round.
    Refused {
        kind: TransportKind,
        manager: String,
        reason: String,
    },
    /// No entry could connect: the last error, and every entry's, joined.
    Unreachable { last: AgentError, all: String },
}

/// A configured agent, ready to run.
pub struct Agent {
    config: AgentConfig,
    entries: Vec<Entry>,
    handler: Arc<dyn Handler>,
    /// Attached to every new session (results outlive reconnects); `None` with a
    /// handler of the caller's ([`Agent::with_dialer`]).
    commands: Option<Arc<Commands>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.config.agent_id)
            .field("manager", &self.describe())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Build the agent's transports from its configuration (one dialer per `transport`
    /// entry). The handler serves RedPepper's `command`, `cancel` and `echo` requests;
    /// command results are kept until the manager has them (`commands.*` bounds),
    /// across reconnects and transport moves.
    pub fn new(config: AgentConfig) -> Result<Self, AgentError> {
        let entries = redpepper_transports::dialers(&config)?
            .into_iter()
            .map(|(kind, dialer)| Entry { kind, dialer })
            .collect();
        let commands = Commands::new(&config.commands);
        let handler = Arc::new(operations::router_with(commands.clone()));
        Ok(Self {
            config,
            entries,
            handler,
            commands: Some(commands),
        })
    }

    /// An agent over a given dialer serving [`operations::router_with`] `commands`,
    /// attached to each new session (library use and tests).
    pub fn with_commands(
        config: AgentConfig,
        dialer: Box<dyn Dialer>,
        commands: Arc<Commands>,
    ) -> Self {
        let handler = Arc::new(operations::router_with(commands.clone()));
        Self {
            commands: Some(commands),
            ..Self::with_dialer(config, dialer, handler)
        }
    }

    /// An agent over a given dialer and handler (library use and tests). Results of a
    /// router's commands go out once, on the session their command came in on. The
    /// dialer is the entry of the configuration's `transport`.
    pub fn with_dialer(
        config: AgentConfig,
        dialer: Box<dyn Dialer>,
        handler: Arc<dyn Handler>,
    ) -> Self {
        let kind = config.transport;
        Self {
            config,
            entries: vec![Entry { kind, dialer }],
            handler,
            commands: None,
        }
    }

    /// Replace the entries after the first with `fallbacks`, tried in order when the
    /// ones before cannot connect (see the module documentation).
    pub fn with_fallbacks(mut self, fallbacks: Vec<(TransportKind, Box<dyn Dialer>)>) -> Self {
        self.entries.truncate(1);
        self.entries.extend(
            fallbacks
                .into_iter()
                .map(|(kind, dialer)| Entry { kind, dialer }),
        );
        self
    }

    /// The commands this agent keeps (cancel, outbox), unless it serves a handler of
    /// the caller's ([`Agent::with_dialer`]).
    pub fn commands(&self) -> Option<&Arc<Commands>> {
        self.commands.as_ref()
    }

    /// Every entry, `kind: target`, in order.
    fn describe(&self) -> String {
        let each: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{}: {}", e.kind, e.dialer.describe()))
            .collect();
        each.join("; ")
    }

    /// Connect once: one round over the transport entries (dial, hello), and return
    /// the first established session.
    pub async fn connect(&self) -> Result<Session, AgentError> {
        match self.round().await {
            Ok(c) => Ok(c.session),
            Err(RoundError::Refused { reason, .. }) => Err(SessionError::Refused(reason).into()),
            Err(RoundError::Unreachable { last, .. }) => Err(last),
        }
    }

    /// Dial entry `index` and hello; the session and the manager that answered, or
    /// the error and the manager (or list of them) it is about.
    async fn connect_entry(&self, index: usize) -> Result<Connected, (AgentError, String)> {
        let Some(entry) = self.entries.get(index) else {
            let e = TransportError::Connect {
                target: format!("transport entry {index}"),
                reason: "no such entry".into(),
            };
            return Err((e.into(), String::new()));
        };
        let (transport, manager) = entry
            .dialer
            .dial_described()
            .await
            .map_err(|e| (e.into(), entry.dialer.describe()))?;
        let session = Session::connect(
            transport,
            &self.config.agent_id,
            self.config.agent_secret.expose(),
            self.config.session.session_config(),
            self.handler.clone(),
        )
        .await
        .map_err(|e| (e.into(), manager.clone()))?;
        Ok(Connected {
            session,
            index,
            manager,
        })
    }

    /// One round: each entry in order until one connects; a refusal ends it.
    async fn round(&self) -> Result<Connected, RoundError> {
        let mut failures = Vec::with_capacity(self.entries.len());
        let mut last = None;
        for (index, entry) in self.entries.iter().enumerate() {
            match self.connect_entry(index).await {
                Ok(c) => return Ok(c),
                Err((AgentError::Session(SessionError::Refused(reason)), manager)) => {
                    return Err(RoundError::Refused {
                        kind: entry.kind,
                        manager,
                        reason,
                    })
                }
                Err((e, manager)) => {
                    if index + 1 < self.entries.len() {
                        tracing::warn!(transport = %entry.kind, manager = %manager, error = %e, next = %self.entries[index + 1].kind, "cannot connect over this transport, trying the next");
                    }
                    failures.push(format!("{}: {e}", entry.kind));
                    last = Some(e);
                }
            }
        }
        let last = last.unwrap_or_else(|| {
            TransportError::Connect {
                target: "manager".into(),
                reason: "no transport configured".into(),
            }
            .into()
        });
        Err(RoundError::Unreachable {
            last,
            all: failures.join("; "),
        })
    }

    /// One probe from entry `index`: the entries before it, in order; the first
    /// session established, or `None` (a refusal ends the probe: it is about the
    /// agent, not the path).
    async fn probe_once(&self, index: usize) -> Option<Connected> {
        for better in 0..index {
            let kind = self.entries[better].kind;
            match self.connect_entry(better).await {
                Ok(c) => return Some(c),
                Err((AgentError::Session(SessionError::Refused(reason)), manager)) => {
                    tracing::warn!(transport = %kind, manager = %manager, %reason, "manager refused this agent over a better transport, staying on the current one");
                    return None;
                }
                Err((e, manager)) => {
                    tracing::debug!(transport = %kind, manager = %manager, error = %e, "better transport still unreachable");
                }
            }
        }
        None
    }

    /// The wait before the next probe from entry `index`: forever when there is no
    /// better entry or probing is off.
    fn next_probe(&self, index: usize) -> Pin<Box<tokio::time::Sleep>> {
        let interval = self.config.transport_probe_interval;
        let wait = if index == 0 || interval.is_zero() {
            // About thirty years: never, as tokio counts.
            Duration::from_secs(86400 * 365 * 30)
        } else {
            probe_wait(interval)
        };
        Box::pin(tokio::time::sleep(wait))
    }

    /// Stay connected until `shutdown` fires; then say Bye "shutting down".
    /// `on_session` is called with every newly established session (also the one a
    /// move to a better transport brings).
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        on_session: impl Fn(&Session),
    ) -> Result<(), AgentError> {
        let mut backoff = Backoff::new(Backoff::BASE, Backoff::CAP);
        if self.config.uses(TransportKind::Amqp) {
            if let Some(host) = redpepper_config::plain_amqp_remote_host(&self.config.amqp.url) {
                tracing::warn!(key = "amqp.url", %host, "amqp.url is amqp:// (no TLS) to a broker on another host: the agent's broker password and every message cross the network in clear; use amqps://");
            }
        }
        loop {
            let attempt = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                r = self.round() => r,
            };
            let delay = match attempt {
                Ok(connected) => {
                    let started = Instant::now();
                    let Some((manager, reason)) =
                        self.serve(connected, &shutdown, &on_session).await
                    else {
                        return Ok(());
                    };
                    backoff.session_ended(started.elapsed());
                    let delay = backoff.next_delay();
                    tracing::warn!(manager = %manager, %reason, retry_in = ?delay, "disconnected from manager");
                    delay
                }
                // A manager that is only busy (its accept backlog full) is retried with
                // the normal backoff; any other refusal waits for the cap.
                Err(RoundError::Refused {
                    kind,
                    manager,
                    reason,
                }) if reason.contains("busy") => {
                    let delay = backoff.next_delay();
                    tracing::warn!(transport = %kind, manager = %manager, %reason, retry_in = ?delay, "manager busy");
                    delay
                }
                Err(RoundError::Refused {
                    kind,
                    manager,
                    reason,
                }) => {
                    let delay = backoff.refused_delay();
                    let rest = if self.entries.len() > 1 {
                        "; the transports after it are not tried this round"
                    } else {
                        ""
                    };
                    tracing::error!(transport = %kind, manager = %manager, %reason, retry_in = ?delay, "manager refused this agent{rest}");
                    delay
                }
                Err(RoundError::Unreachable { last, all }) => {
                    let delay = backoff.next_delay();
                    if self.entries.len() > 1 {
                        tracing::warn!(errors = %all, retry_in = ?delay, "cannot connect to manager over any transport");
                    } else {
                        let manager = self
                            .entries
                            .first()
                            .map(|e| e.dialer.describe())
                            .unwrap_or_default();
                        tracing::warn!(manager = %manager, error = %last, retry_in = ?delay, "cannot connect to manager");
                    }
                    delay
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Serve `current`, moving to better transports as probes find them, until it
    /// ends (the manager and why) or `shutdown` (Bye said; `None`).
    ///
    /// The manager closes the old session as soon as a probe's session is
    /// authenticated (newest wins), which the agent may see before the probe's own
    /// hello completes here: when the current session ends during a probe, the probe
    /// is awaited first, and a session it brings is a move, not a disconnection.
    async fn serve(
        &self,
        mut current: Connected,
        shutdown: &CancellationToken,
        on_session: &impl Fn(&Session),
    ) -> Option<(String, SessionError)> {
        tracing::info!(transport = %self.entries[current.index].kind, manager = %current.manager, agent_id = %self.config.agent_id, version = %current.session.peer_version(), "connected to manager");
        self.adopt(&current.session, on_session);
        let mut next_probe = self.next_probe(current.index);
        let mut probing: Option<Probe<'_>> = None;
        loop {
            let better = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    current.session.close("shutting down").await;
                    tracing::info!("said bye to the manager, exiting");
                    return None;
                }
                found = poll_probe(&mut probing), if probing.is_some() => found,
                () = &mut next_probe, if probing.is_none() => {
                    probing = Some(Box::pin(self.probe_once(current.index)));
                    continue;
                }
                reason = current.session.closed() => {
                    let found = match probing.take() {
                        Some(probe) => tokio::select! {
                            found = probe => found,
                            () = shutdown.cancelled() => return None,
                        },
                        None => None,
                    };
                    match found {
                        Some(better) => Some(better),
                        None => return Some((current.manager, reason)),
                    }
                }
            };
            probing = None;
            if let Some(better) = better {
                let old = std::mem::replace(&mut current, better);
                tracing::info!(transport = %self.entries[current.index].kind, manager = %current.manager, from_transport = %self.entries[old.index].kind, from_manager = %old.manager, "moved to a better transport");
                self.adopt(&current.session, on_session);
                tokio::spawn(leave(old.session, shutdown.clone()));
            }
            next_probe = self.next_probe(current.index);
        }
    }

    /// Make `session` the one results and the caller's hook use.
    fn adopt(&self, session: &Session, on_session: &impl Fn(&Session)) {
        if let Some(commands) = &self.commands {
            commands.attach(session);
        }
        on_session(session);
    }
}

/// Leave `old`, a session replaced by a better one that is authenticated: it keeps
/// serving until the manager closes it (ours replaces the older session of an agent
/// once the calls in flight on it are answered), so a call the manager sent there
/// before it took the new session is still answered; the agent says Bye itself only
/// after [`MOVED_GRACE`] (a manager that keeps both), or at `shutdown`.
async fn leave(old: Session, shutdown: CancellationToken) {
    tokio::select! {
        _ = old.closed() => {}
        () = shutdown.cancelled() => {
            old.close("shutting down").await;
        }
        () = tokio::time::sleep(MOVED_GRACE) => {
            old.close(MOVED_REASON).await;
        }
    }
}

/// The outcome of the running probe (there is one: the branch checks).
async fn poll_probe(probing: &mut Option<Probe<'_>>) -> Option<Connected> {
    match probing {
        Some(probe) => probe.await,
        None => pending().await,
    }
}

/// A probe wait: uniform in `[interval / 2, interval]`, so a fleet that fell back at
/// the same moment does not probe (and move back) in lockstep.
fn probe_wait(interval: Duration) -> Duration {
    interval.mul_f64(0.5 + 0.5 * rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_waits_fall_in_the_second_half_of_the_interval() {
        let interval = Duration::from_secs(60);
        let waits: Vec<Duration> = (0..1000).map(|_| probe_wait(interval)).collect();
        assert!(waits.iter().all(|w| *w >= interval / 2 && *w <= interval));
        // Spread, not one value: 1000 draws all in one quarter has chance 2^-1000.
        assert!(waits.iter().any(|w| *w < interval * 3 / 4));
        assert!(waits.iter().any(|w| *w > interval * 3 / 4));
    }
}
