//! Accepting agents: one loop per listener, then for each connection the transport
//! handshake, the hello and authentication, and the agent table.
//!
//! Connections that are not yet authenticated (TLS handshake, WebSocket upgrade, hello)
//! cost memory and a file descriptor each and are made by anyone who can reach the
//! port: [`admission`](crate::admission) bounds them. On the socket listeners (TLS,
//! WebSocket) accepting never stops: a connection whose address or network is at its
//! cap is closed at once, and when the total is full the oldest pending connection is
//! closed to make room; the transport handshake has its own short limit
//! (`admission.handshake_timeout`, set on the listeners). AMQP sessions have a budget of
//! their own: when it is full the AMQP loop waits and the AMQP listener answers
//! further hellos "busy". Established sessions are never affected. With
//! `hello_timeout: 0` (no limit on the hello) a connection leaves the budget when its
//! transport handshake is done, so silent peers cannot hold it for ever.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redpepper_core::quiet::LogLimit;
use redpepper_core::transport::{BoxListener, Connecting, Incoming};
use redpepper_core::{Handler, Session, SessionError, TransportError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::admission::{Gate, Ticket};
use crate::server::{Inner, ManagerEvent, ManagerHandler};

/// How long a session replaced by a newer one of the same agent keeps serving the
/// calls already in flight on it before its Bye (none are sent to it any more).
const REPLACED_GRACE: Duration = Duration::from_secs(5);

/// "AMQP sessions waiting for authentication are at their budget" lines: one per 10 s.
static FULL: LogLimit = LogLimit::new(Duration::from_secs(10), 1);

/// "Closed at accept: over its per-source cap" lines: one per 10 s, with the count
/// left out (each one counts in `redpepper_preauth_refused_total`).
static REFUSED: LogLimit = LogLimit::new(Duration::from_secs(10), 1);

/// "Oldest pending connection closed to make room" lines: one per 10 s, with the count
/// left out (each one counts in `redpepper_preauth_evicted_total`).
static EVICTED: LogLimit = LogLimit::new(Duration::from_secs(10), 1);

/// Lines about connections that failed before or during their hello (anyone reaching
/// the port can cause them, as fast as they like): at most 20 a second, the next one
/// logged carrying the count left out. Every one still counts in the metrics.
static BEFORE_HELLO: LogLimit = LogLimit::new(Duration::from_secs(1), 20);

/// "Authentication failed" lines: at most 20 a second, with the count left out (each
/// failure is also an `auth_failed` event and counts in `redpepper_auth_failures_total`).
static AUTH_FAILED: LogLimit = LogLimit::new(Duration::from_secs(1), 20);

/// A connection's place among those not yet authenticated.
enum Slot {
    /// In the socket listeners' [`Gate`]: may be evicted.
    Gate(Ticket),
    /// In the AMQP budget (held, given back when dropped).
    Permit { _held: OwnedSemaphorePermit },
}

impl Slot {
    /// Runs `work` unless the connection is evicted first (`None` then).
    async fn unless_evicted<F: Future>(&self, work: F) -> Option<F::Output> {
        match self {
            Slot::Gate(ticket) => tokio::select! {
                out = work => Some(out),
                () = ticket.evicted() => None,
            },
            Slot::Permit { .. } => Some(work.await),
        }
    }
}

/// Accepts connections on one listener until shutdown.
pub(crate) async fn accept_loop(
    inner: Weak<Inner>,
    listener: BoxListener,
    shutdown: CancellationToken,
) {
    let kind = listener.kind();
    let Some(gate) = inner.upgrade().map(|i| Arc::clone(&i.admission)) else {
        return;
    };
    // Listeners without a socket of their own (AMQP; the in-memory one) have no
    // source addresses to count: they get the plain budget.
    if listener.local_addr().is_none() {
        let budget = Arc::new(Semaphore::new(gate.limits().max_pending_amqp.max(1)));
        budgeted_loop(inner, listener, shutdown, budget).await;
    } else {
        gated_loop(inner, listener, shutdown, gate).await;
    }
    tracing::debug!(transport = %kind, "accept loop ended");
}

/// The next connection, `None` when the loop should end (shutdown, listener closed,
/// manager gone).
async fn next_incoming(
    inner: &Weak<Inner>,
    listener: &mut BoxListener,
    shutdown: &CancellationToken,
) -> Option<(Arc<Inner>, Option<Incoming>)> {
    let next = tokio::select! {
        () = shutdown.cancelled() => return None,
        next = listener.accept_incoming() => next,
    };
    let strong = inner.upgrade()?;
    match next {
        Ok(incoming) => Some((strong, Some(incoming))),
        Err(TransportError::Closed) => None,
        Err(e) => {
            tracing::warn!(transport = %listener.kind(), error = %e, "accept failed");
            // Out of file descriptors and the like: give it a moment, never spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((strong, None))
        }
    }
}

/// Socket listeners: accept always; the [`Gate`] refuses or evicts.
async fn gated_loop(
    inner: Weak<Inner>,
    mut listener: BoxListener,
    shutdown: CancellationToken,
    gate: Arc<Gate>,
) {
    let kind = listener.kind();
    while let Some((strong, incoming)) = next_incoming(&inner, &mut listener, &shutdown).await {
        let Some(incoming) = incoming else { continue };
        let metrics = &strong.metrics;
        match gate.admit(incoming.remote_addr) {
            Ok(admitted) => {
                if admitted.evicted {
                    metrics
                        .preauth_evicted
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(others) = EVICTED.admit() {
                        tracing::warn!(transport = %kind, max_pending = gate.limits().max_pending, others_since_last_report = others, "too many connections not yet authenticated (admission.max_pending): closed the oldest to make room");
                    }
                }
                let slot = Slot::Gate(admitted.ticket);
                strong
                    .tasks
                    .spawn(handle_connection(strong.clone(), incoming.connecting, slot));
            }
            Err(refusal) => {
                // Dropping the connection closes it at once.
                drop(incoming);
                metrics
                    .preauth_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(others) = REFUSED.admit() {
                    tracing::warn!(transport = %kind, reason = %refusal, others_since_last_report = others, "connection closed at accept");
                }
            }
        }
    }
}

/// Listeners without sockets (AMQP, memory): a slot first; when there is none, wait (the
/// listener's own bounded backlog answers further hellos).
async fn budgeted_loop(
    inner: Weak<Inner>,
    mut listener: BoxListener,
    shutdown: CancellationToken,
    budget: Arc<Semaphore>,
) {
    let kind = listener.kind();
    loop {
        let permit = match budget.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(others) = FULL.admit() {
                    tracing::warn!(transport = %kind, others_since_last_report = others, "too many sessions waiting for authentication (admission.max_pending_amqp): new ones wait until one is done");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    permit = budget.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let Some((strong, incoming)) = next_incoming(&inner, &mut listener, &shutdown).await else {
            break;
        };
        if let Some(incoming) = incoming {
            strong.tasks.spawn(handle_connection(
                strong.clone(),
                incoming.connecting,
                Slot::Permit { _held: permit },
            ));
        }
    }
}

async fn handle_connection(inner: Arc<Inner>, connecting: Connecting, slot: Slot) {
    if let Slot::Gate(ticket) = &slot {
        ticket.started();
    }
    // The transport handshake (TLS, WebSocket upgrade) is always bounded: by the
    // listener's handshake timeout, and here by the hello timeout (30 s when that is
    // 0, no limit on the hello itself) for listeners without one.
    let timeout = match inner.session_config.hello_timeout {
        t if t.is_zero() => Duration::from_secs(30),
        t => t,
    };
    let Some(handshake) = slot
        .unless_evicted(tokio::time::timeout(timeout, connecting))
        .await
    else {
        return evicted(None);
    };
    let transport = match handshake {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            if let Some(others) = BEFORE_HELLO.admit() {
                tracing::info!(error = %e, others_since_last_report = others, "connection failed before hello");
            }
            return;
        }
        Err(_) => {
            if let Some(others) = BEFORE_HELLO.admit() {
                tracing::info!(
                    others_since_last_report = others,
                    "transport handshake timed out"
                );
            }
            return;
        }
    };
    if let Slot::Gate(ticket) = &slot {
        ticket.handshake_done();
    }
    // With `hello_timeout: 0` (no limit on the hello, as RedPepper) a silent peer would
    // keep its slot for ever: the slot then covers the transport handshake only.
    let slot = (!inner.session_config.hello_timeout.is_zero()).then_some(slot);
    let peer = redpepper_core::Transport::peer(&transport).clone();
    inner.send_event(ManagerEvent::Accepted {
        peer: peer.to_string(),
    });
    let handler: Arc<dyn Handler> = Arc::new(ManagerHandler {
        inner: Arc::downgrade(&inner),
    });
    let accepting = Session::accept(
        transport,
        inner.session_config.clone(),
        inner.authenticator.as_ref(),
        handler,
    );
    let session = match &slot {
        Some(slot) => match slot.unless_evicted(accepting).await {
            Some(session) => session,
            None => return evicted(Some(&peer)),
        },
        None => accepting.await,
    };
    // Authenticated or not, this connection is past its hello.
    drop(slot);
    let session = match session {
        Ok(s) => s,
        Err(SessionError::AuthFailed { agent, reason }) => {
            if let Some(others) = AUTH_FAILED.admit() {
                tracing::warn!(%peer, agent = %agent, %reason, others_since_last_report = others, "authentication failed");
            }
            inner.send_event(ManagerEvent::AuthFailed {
                agent,
                peer: peer.to_string(),
            });
            return;
        }
        Err(e) => {
            if let Some(others) = BEFORE_HELLO.admit() {
                tracing::info!(%peer, error = %e, others_since_last_report = others, "handshake failed");
            }
            return;
        }
    };
    let Some(agent) = session.agent_id().map(str::to_owned) else {
        return;
    };
    if inner.shutdown.is_cancelled() {
        session.close("server shutting down").await;
        return;
    }
    // Announced before it is in the table: its end, whenever it comes, finds it in
    // both (the Closed event, or the check below), so no ended session stays announced.
    if let Some(cluster) = inner.cluster.get() {
        cluster.local_up(&agent, &session);
    }
    if let Some(old) = inner.agents.insert(&agent, session.clone()) {
        const REPLACED: &str = "replaced by a new connection";
        tracing::info!(agent = %agent, old = %old.peer(), new = %peer, "agent reconnected, replacing its older session");
        // The old session's own Closed event finds the new one in the table and
        // stays quiet: say here that it went.
        let _ = inner.events.send(ManagerEvent::Disconnected {
            agent: agent.clone(),
            reason: REPLACED.to_owned(),
        });
        tokio::spawn(async move {
            // Calls already sent on the old session are answered there (an agent
            // moving to a better transport keeps it until the new one is in): let
            // them finish, for a short while, before the Bye fails them.
            if tokio::time::timeout(REPLACED_GRACE, old.idle())
                .await
                .is_err()
            {
                tracing::info!(agent = old.agent_id().unwrap_or_default(), calls = old.calls_in_flight(), "replaced session still had calls in flight after its grace period: closing it fails them");
            }
            old.close(REPLACED).await;
        });
    }
    tracing::info!(agent = %agent, %peer, version = %redpepper_core::quiet::printable(session.peer_version()), "agent connected");
    let _ = inner.events.send(ManagerEvent::Connected {
        agent: agent.clone(),
        peer: peer.to_string(),
    });
    // Shutdown may have begun between the check above and the insert, after
    // `Manager::shutdown` took its list of sessions: this one gets its Bye too.
    if inner.shutdown.is_cancelled() {
        session.close("server shutting down").await;
    }
    // The peer may have gone between `Session::accept` and the insert, when the
    // session's Closed event found nothing to remove: do it now.
    if session.is_closed() && inner.agents.remove_if_current(&agent, &session) {
        let reason = session
            .close_reason()
            .map_or_else(|| "connection closed".to_owned(), |e| e.to_string());
        if let Some(cluster) = inner.cluster.get() {
            cluster.local_down(&agent, &session, &reason);
        }
        tracing::info!(agent = %agent, %reason, "agent disconnected");
        let _ = inner
            .events
            .send(ManagerEvent::Disconnected { agent, reason });
    }
}

/// A pending connection was closed to make room (counted and logged, rate-limited,
/// where the eviction happened).
fn evicted(peer: Option<&redpepper_core::PeerInfo>) {
    match peer {
        Some(peer) => tracing::debug!(%peer, "closed before its hello was done, to make room"),
        None => tracing::debug!("closed during its transport handshake, to make room"),
    }
}
