//! The session layer: one RedPepper conversation over one transport.
//!
//! ```text
//!  Session (clonable handle) ──Register/Cancel/Close──▶ driver task ◀── transport reader
//!        │                                                │   │
//!        └──── encoded Request/Notification (bounded) ──▶ │   └─ Pong, refusals, Bye (bounded
//!                                                         │      control queue)
//!        driver / handler tasks ── Responses (bounded) ──▶ writer task ──feed…flush──▶ transport
//! ```
//!
//! - [`Session::connect`] (agent) and [`Session::accept`] (manager) run the hello
//!   handshake ([`handshake`](self)) and then spawn two tasks: the *driver*, which owns
//!   all session state (calls in flight, keepalive) and reads the transport, and the
//!   *writer*, the only task that writes, which drains everything queued and flushes
//!   once per batch.
//! - Calls in flight live in the driver alone, keyed by request id; a caller registers
//!   before its request is queued, and every waiting call fails with the close reason
//!   when the session ends for any reason.
//! - Incoming requests: the driver polls the handler's future once; an answer that is
//!   ready at once (most are) is queued right there, and a handler that must wait moves
//!   to its own task, at most `max_concurrent_requests` at once, so a slow handler never
//!   delays pings, responses or notifications.
//! - Call timeouts are deadlines kept by the driver next to the calls in flight, with
//!   one timer per session, not one per call.
//! - Handles also count their calls in flight (two atomic operations a call, no lock);
//!   [`Session::idle`] waits for that count to reach zero ([`idle`](self)).

mod config;
mod driver;
mod handler;
mod handshake;
mod idle;
mod in_flight;
mod keepalive;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redpepper_codec::{encode, Kwargs, Message, Notification, Request, Value};
use tokio::sync::{mpsc, oneshot, watch};

pub use config::{SessionConfig, VERSION};
pub use driver::MAX_REQUEST_DEADLINE;
pub use handler::{echo_reply, Authenticator, CallContext, Event, Handler, HandlerError, Router};
pub use handshake::{valid_agent_id, AUTH_FAILED, HELLO_FRAME_LIMIT};

use crate::error::{CallError, SessionError};
use crate::metrics::{CallOutcome, Metrics};
use crate::transport::PeerInfo;
use idle::CallCount;
use in_flight::IdScheme;

/// Which side of the protocol we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The server: accepts agents.
    Manager,
    /// The client: dials the manager.
    Agent,
}

/// What the peer said in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerHello {
    /// We are the manager; this agent introduced itself.
    Agent {
        /// Agent id.
        id: String,
        /// Agent version.
        version: String,
    },
    /// We are the agent; the manager answered with this version.
    Manager {
        /// Manager version.
        version: String,
    },
}

/// What handles send to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// A call is about to be queued with this id counter.
    Register(u64, oneshot::Sender<in_flight::Reply>, tokio::time::Instant),
    /// The caller gave up on this id.
    Cancel(u64),
    /// Send Bye with this reason and close.
    Close(String),
    /// Answer when the peer has read everything queued before (see
    /// [`Session::barrier`]).
    Barrier(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Shared {
    role: Role,
    peer: PeerInfo,
    hello: PeerHello,
    call_timeout: Duration,
    max_message_size: usize,
    ids: IdScheme,
    next_id: AtomicU64,
    in_flight: CallCount,
    rtt_micros: AtomicU64,
    established: SystemTime,
    cmd_tx: mpsc::UnboundedSender<Command>,
    data_tx: mpsc::Sender<Bytes>,
    reason: OnceLock<SessionError>,
    done: watch::Sender<bool>,
    metrics: Option<Arc<Metrics>>,
}

/// A handle to an established session. Cheap to clone; every clone talks to the same
/// connection. The session lives until either side closes it or the transport fails,
/// whether or not handles remain.
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<Shared>,
}

impl Session {
    /// Whether two handles refer to the same session.
    pub fn same_session(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Our role in this session.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// Transport facts about the peer.
    pub fn peer(&self) -> &PeerInfo {
        &self.inner.peer
    }

    /// What the peer said in its hello.
    pub fn peer_hello(&self) -> &PeerHello {
        &self.inner.hello
    }

    /// The agent's id (manager side), `None` on the agent side.
    pub fn agent_id(&self) -> Option<&str> {
        match &self.inner.hello {
            PeerHello::Agent { id, .. } => Some(id),
            PeerHello::Manager { .. } => None,
        }
    }

    /// The version the peer announced.
    pub fn peer_version(&self) -> &str {
        match &self.inner.hello {
            PeerHello::Agent { version, .. } | PeerHello::Manager { version } => version,
        }
    }

    /// When the handshake finished.
    pub fn established_at(&self) -> SystemTime {
        self.inner.established
    }

    /// The last measured ping round trip, if any ping was answered yet.
    pub fn last_rtt(&self) -> Option<Duration> {
        match self.inner.rtt_micros.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Calls we made that are waiting for their response.
    pub fn calls_in_flight(&self) -> usize {
        self.inner.in_flight.get()
    }

    /// Resolves when none of our calls is in flight: at once if none is, otherwise as
    /// soon as the last one has its answer (or fails, times out, or is given up), or
    /// when the session ends. A call started meanwhile does not make it wait again:
    /// it resolves at the first moment the count reaches zero. Waiting costs the calls
    /// nothing until the count does reach zero.
    pub async fn idle(&self) {
        tokio::select! {
            () = self.inner.in_flight.zero() => {}
            _ = self.closed() => {}
        }
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<SessionError> {
        self.inner.reason.get().cloned()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.reason.get().is_some()
    }

    /// Wait until the session has ended and its writer has finished; the reason.
    pub async fn closed(&self) -> SessionError {
        let mut rx = self.inner.done.subscribe();
        // The sender lives in `Shared`, which we hold: `wait_for` cannot fail.
        let _ = rx.wait_for(|done| *done).await;
        self.reason_or_closed()
    }

    fn reason_or_closed(&self) -> SessionError {
        self.close_reason()
            .unwrap_or_else(|| SessionError::Closed("session ended".into()))
    }

    /// Send Bye with `reason`, close the transport, and wait until that is done.
    /// Pending calls fail. Closing an ended session returns at once.
    pub async fn close(&self, reason: &str) -> SessionError {
        let _ = self.inner.cmd_tx.send(Command::Close(reason.to_owned()));
        self.closed().await
    }

    /// Call `method` on the peer with the default call timeout.
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, CallError> {
        self.call_with_timeout(method, args, kwargs, self.inner.call_timeout)
            .await
    }

    /// Call `method` on the peer; give up after `timeout` (queueing included).
    ///
    /// The Request carries `timeout` (our extension to the protocol, ignored by
    /// RedPepper 0.3.4): one of our sessions receiving it cancels the handler when
    /// the timeout has passed since the Request arrived (capped at
    /// [`MAX_REQUEST_DEADLINE`]) and answers "deadline of Ns exceeded", which this
    /// side, having given up, drops quietly.
    pub async fn call_with_timeout(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let started = tokio::time::Instant::now();
        // A timeout too large to add means no deadline that matters: a century.
        let deadline = started
            .checked_add(timeout)
            .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 86400));
        let result = match self
            .call_inner(method, args, kwargs, timeout, deadline)
            .await
        {
            Err(CallError::Timeout { .. }) => Err(CallError::Timeout {
                method: method.to_owned(),
                secs: timeout.as_secs_f64(),
            }),
            other => other,
        };
        if let Some(m) = &self.inner.metrics {
            let outcome = match &result {
                Ok(_) => CallOutcome::Ok,
                Err(CallError::Remote(_)) => CallOutcome::RemoteError,
                Err(CallError::Timeout { .. }) => CallOutcome::Timeout,
                Err(CallError::SessionClosed(_)) => CallOutcome::Closed,
                Err(CallError::Encode(_)) => CallOutcome::EncodeError,
            };
            m.call_done(outcome, started.elapsed());
        }
        result
    }

    /// The call itself; the driver times it out at `deadline` (one timer per session,
    /// not one per call), and the Request carries `timeout` so that the peer can stop
    /// working on it when we stop waiting. A timeout comes back as a `Timeout` without
    /// its details.
    async fn call_inner(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<Value, CallError> {
        let inner = &*self.inner;
        if let Some(reason) = inner.reason.get() {
            return Err(CallError::SessionClosed(reason.clone()));
        }
        let n = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = Message::Request(Request {
            id: inner.ids.make(n),
            method: method.to_owned(),
            args,
            kwargs,
            timeout: Some(timeout.as_secs_f64()),
        });
        let bytes = self.encode_checked(&msg)?;
        let (tx, mut rx) = oneshot::channel();
        if inner
            .cmd_tx
            .send(Command::Register(n, tx, deadline))
            .is_err()
        {
            return Err(CallError::SessionClosed(self.reason_or_closed()));
        }
        let mut guard = CallGuard::new(inner, n);
        match inner.data_tx.try_send(bytes) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(CallError::SessionClosed(self.reason_or_closed()))
            }
            // The writer is behind: wait for room, unless the deadline passes first.
            Err(mpsc::error::TrySendError::Full(bytes)) => tokio::select! {
                sent = inner.data_tx.send(bytes) => if sent.is_err() {
                    return Err(CallError::SessionClosed(self.reason_or_closed()));
                },
                reply = &mut rx => {
                    guard.done = true;
                    return self.reply(reply, method);
                }
            },
        }
        let reply = rx.await;
        guard.done = true;
        self.reply(reply, method)
    }

    fn reply(
        &self,
        reply: Result<in_flight::Reply, oneshot::error::RecvError>,
        method: &str,
    ) -> Result<Value, CallError> {
        match reply {
            Ok(Some(resp)) if resp.success => Ok(resp.data),
            Ok(Some(resp)) => Err(CallError::Remote(value_text(resp.data))),
            Ok(None) => Err(CallError::Timeout {
                method: method.to_owned(),
                secs: 0.0,
            }),
            Err(_) => Err(CallError::SessionClosed(self.reason_or_closed())),
        }
    }

    /// Send a notification to the peer (waits for room in the outgoing queue).
    pub async fn notify(&self, kind: &str, data: Value) -> Result<(), CallError> {
        let msg = Message::Notification(Notification {
            r#type: kind.to_owned(),
            data,
        });
        let bytes = self.encode_checked(&msg)?;
        self.inner
            .data_tx
            .send(bytes)
            .await
            .map_err(|_| CallError::SessionClosed(self.reason_or_closed()))
    }

    /// The largest message this session sends (`max_message_size`): a notification
    /// must encode within it.
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size
    }

    /// A receipt barrier: returns once the peer has read every message queued on this
    /// session before the call (notifications whose [`Session::notify`] returned).
    ///
    /// RedPepper has no acknowledgement; this sends a Ping behind those messages in the
    /// same ordered queue and waits for its Pong (a peer answers a Ping after reading
    /// what came before it). It shares the keepalive's single outstanding ping: while
    /// one is outstanding, the barrier waits for the next, sent as soon as that Pong
    /// arrives. It fails when the session ends first (the Pong not coming within
    /// `ping_timeout` ends the session, as any missing Pong does).
    pub async fn barrier(&self) -> Result<(), CallError> {
        if let Some(reason) = self.inner.reason.get() {
            return Err(CallError::SessionClosed(reason.clone()));
        }
        let (tx, rx) = oneshot::channel();
        if self.inner.cmd_tx.send(Command::Barrier(tx)).is_err() {
            return Err(CallError::SessionClosed(self.reason_or_closed()));
        }
        rx.await
            .map_err(|_| CallError::SessionClosed(self.reason_or_closed()))
    }

    fn encode_checked(&self, msg: &Message) -> Result<Bytes, CallError> {
        let bytes = encode(msg).map_err(|e| CallError::Encode(e.to_string()))?;
        if bytes.len() > self.inner.max_message_size {
            return Err(CallError::Encode(format!(
                "{} of {} bytes exceeds max_message_size {}",
                msg.message_type().name(),
                bytes.len(),
                self.inner.max_message_size
            )));
        }
        Ok(bytes)
    }
}

/// Counts a call in flight and cancels its registration if the caller gives up.
struct CallGuard<'a> {
    shared: &'a Shared,
    n: u64,
    done: bool,
}

impl<'a> CallGuard<'a> {
    fn new(shared: &'a Shared, n: u64) -> Self {
        shared.in_flight.start();
        Self {
            shared,
            n,
            done: false,
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.shared.in_flight.end();
        if !self.done {
            let _ = self.shared.cmd_tx.send(Command::Cancel(self.n));
        }
    }
}

/// The text of an error value: strings as they are, anything else in debug form.
fn value_text(v: Value) -> String {
    match v {
        Value::String(s) => s.into_str().unwrap_or_else(|| "<invalid UTF-8>".into()),
        other => other.to_string(),
    }
}
