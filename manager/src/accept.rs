//! Accepting agents: one loop per listener, then for each connection the transport
//! handshake, the hello and authentication, and the agent table.
//!
//! Connections that are not yet authenticated (TLS handshake, WebSocket upgrade, hello)
//! cost memory and a file descriptor each and are made by anyone who can reach the
//! port: at most [`MAX_UNAUTHENTICATED`] exist at once, across all listeners. Beyond
//! that the accept loops stop accepting until one finishes (at the latest when the
//! handshake or hello timeout ends it), so new connections wait in the kernel's listen
//! backlog; established sessions are not affected. With `hello_timeout: 0` (no limit
//! on the hello) the cap covers the transport handshake only, so silent peers cannot
//! hold every slot for ever.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redpepper_core::quiet::LogLimit;
use redpepper_core::transport::{BoxListener, Connecting};
use redpepper_core::{Handler, Session, SessionError, TransportError};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::server::{Inner, ManagerEvent, ManagerHandler};

/// Most connections between accept and the end of their hello, across all listeners.
pub const MAX_UNAUTHENTICATED: usize = 4096;

/// "Too many connections in their handshake" lines: one per 10 s.
static FULL: LogLimit = LogLimit::new(Duration::from_secs(10), 1);

/// Lines about connections that failed before or during their hello (anyone reaching
/// the port can cause them, as fast as they like): at most 20 a second, the next one
/// logged carrying the count left out. Every one still counts in the metrics.
static BEFORE_HELLO: LogLimit = LogLimit::new(Duration::from_secs(1), 20);

/// "Authentication failed" lines: at most 20 a second, with the count left out (each
/// failure is also an `auth_failed` event and counts in `redpepper_auth_failures_total`).
static AUTH_FAILED: LogLimit = LogLimit::new(Duration::from_secs(1), 20);

/// Accepts connections on one listener until shutdown.
pub(crate) async fn accept_loop(
    inner: Weak<Inner>,
    mut listener: BoxListener,
    shutdown: CancellationToken,
) {
    let kind = listener.kind();
    let Some(budget) = inner.upgrade().map(|i| Arc::clone(&i.unauthenticated)) else {
        return;
    };
    loop {
        // A slot among the connections not yet authenticated, before accepting: when
        // they are all taken, new connections wait in the kernel's backlog.
        let permit = match budget.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(others) = FULL.admit() {
                    tracing::warn!(transport = %kind, others_since_last_report = others, "too many connections in their handshake: new ones wait until one is done");
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
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = listener.accept() => next,
        };
        let Some(strong) = inner.upgrade() else { break };
        match next {
            Ok(connecting) => {
                strong
                    .tasks
                    .spawn(handle_connection(strong.clone(), connecting, permit));
            }
            Err(TransportError::Closed) => break,
            Err(e) => {
                tracing::warn!(transport = %kind, error = %e, "accept failed");
                // Out of file descriptors and the like: give it a moment, never spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!(transport = %kind, "accept loop ended");
}

async fn handle_connection(inner: Arc<Inner>, connecting: Connecting, slot: OwnedSemaphorePermit) {
    // The transport handshake (TLS, WebSocket upgrade) is always bounded, even when
    // hello_timeout is 0 (no limit on the hello itself).
    let timeout = match inner.session_config.hello_timeout {
        t if t.is_zero() => Duration::from_secs(30),
        t => t,
    };
    let transport = match tokio::time::timeout(timeout, connecting).await {
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
    // With `hello_timeout: 0` (no limit on the hello, as RedPepper) a silent peer would
    // keep its slot for ever: the slot then covers the transport handshake only.
    let slot = (!inner.session_config.hello_timeout.is_zero()).then_some(slot);
    let peer = redpepper_core::Transport::peer(&transport).clone();
    let _ = inner.events.send(ManagerEvent::Accepted {
        peer: peer.to_string(),
    });
    let handler: Arc<dyn Handler> = Arc::new(ManagerHandler {
        inner: Arc::downgrade(&inner),
    });
    let session = Session::accept(
        transport,
        inner.session_config.clone(),
        inner.authenticator.as_ref(),
        handler,
    )
    .await;
    // Authenticated or not, this connection is past its hello.
    drop(slot);
    let session = match session {
        Ok(s) => s,
        Err(SessionError::AuthFailed { agent, reason }) => {
            if let Some(others) = AUTH_FAILED.admit() {
                tracing::warn!(%peer, agent = %agent, %reason, others_since_last_report = others, "authentication failed");
            }
            let _ = inner.events.send(ManagerEvent::AuthFailed {
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
            old.close(REPLACED).await;
        });
    }
    tracing::info!(agent = %agent, %peer, version = %session.peer_version(), "agent connected");
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
        tracing::info!(agent = %agent, %reason, "agent disconnected");
        let _ = inner
            .events
            .send(ManagerEvent::Disconnected { agent, reason });
    }
}
