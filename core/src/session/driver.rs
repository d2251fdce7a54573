//! The driver task: reads the transport, owns the session state, decides.
//!
//! One `select!` over: commands from handles (register, cancel, close), the next
//! payload from the transport, the keepalive deadline, and the writer's end. Nothing in
//! here waits for the writer: Pongs, refusals and Bye go through a bounded control
//! queue with `try_send`, and a peer that floods us while not reading what we send
//! (the queue is full) loses its session.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use redpepper_codec::{decode, encode, Message, Request, Response, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::handler::{Event, Handler, HandlerError};
use super::in_flight::InFlight;
use super::keepalive::{Keepalive, Tick};
use super::writer::WriterCmd;
use super::{Command, Session};
use crate::error::{SessionError, TransportError};
use crate::metrics::ServedOutcome;
use crate::quiet::{printable, LogLimit};

/// Frames of one burst (frames read without the transport running dry) after which
/// the driver first yields to the other tasks; it yields again each time the burst has
/// grown fourfold. Without it a burst of requests is read and answered in full before
/// the writer sends the first answer, and the peer sits idle meanwhile (pipelined
/// throughput between two cores was 0.3-0.4x the raw TLS echo without it, 0.7x with
/// it); yielding every few frames instead would cost a flush each.
const FIRST_YIELD: u32 = 16;

/// The longest deadline an incoming Request's `timeout` sets: a longer one (or one
/// that is not finite, or that overflows an [`Instant`]) is clamped to this.
pub const MAX_REQUEST_DEADLINE: Duration = Duration::from_secs(86400);

/// When a handler of a Request carrying `timeout` seconds must be done (from now), and
/// the timeout as the answer names it.
fn request_deadline(secs: f64) -> (Instant, f64) {
    let wait = Duration::try_from_secs_f64(secs)
        .unwrap_or(MAX_REQUEST_DEADLINE)
        .min(MAX_REQUEST_DEADLINE);
    let now = Instant::now();
    // `wait` is at most a day: adding it cannot overflow unless the clock is near its
    // end, and then there is no deadline to keep.
    let at = now.checked_add(wait).unwrap_or(now);
    (at, secs)
}

/// How long a closing session waits for its writer to flush the Bye.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Driver<R> {
    pub(crate) session: Session,
    pub(crate) reader: Burst<R>,
    pub(crate) cmd_rx: mpsc::UnboundedReceiver<Command>,
    pub(crate) ctrl_tx: mpsc::Sender<WriterCmd>,
    pub(crate) writer: JoinHandle<Result<(), TransportError>>,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) keepalive: Keepalive,
    pub(crate) requests: Arc<Semaphore>,
    pub(crate) expose_errors: bool,
    pub(crate) in_flight: InFlight,
    /// Log lines about refused requests (a peer can provoke them at will).
    pub(crate) quiet_refused: LogLimit,
    /// Log lines about responses to requests we never sent.
    pub(crate) quiet_unknown: LogLimit,
}

/// The transport's reader, noting when it ran dry (returned `Pending`): that ends a
/// burst of frames.
pub(crate) struct Burst<R> {
    inner: R,
    ran_dry: bool,
}

impl<R> Burst<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            ran_dry: true,
        }
    }
}

impl<R: Stream + Unpin> Stream for Burst<R> {
    type Item = R::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<R::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if next.is_pending() {
            self.ran_dry = true;
        }
        next
    }
}

/// How the loop ended: the reason, and the Bye to send (if any).
struct End {
    reason: SessionError,
    bye: Option<String>,
}

impl End {
    fn quiet(reason: SessionError) -> Self {
        Self { reason, bye: None }
    }

    fn with_bye(reason: SessionError) -> Self {
        let bye = reason.to_string();
        Self {
            reason,
            bye: Some(bye),
        }
    }
}

impl<R> Driver<R>
where
    R: Stream<Item = Result<Bytes, TransportError>> + Unpin,
{
    pub(crate) async fn run(mut self) {
        let end = self.run_loop().await;
        self.finish(end).await;
    }

    async fn run_loop(&mut self) -> End {
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        let sleep = tokio::time::sleep_until(self.next_wake().unwrap_or(far));
        tokio::pin!(sleep);
        let (mut burst, mut next_yield) = (0u32, FIRST_YIELD);
        loop {
            let deadline = self.next_wake();
            if let Some(d) = deadline {
                if sleep.deadline() != d {
                    sleep.as_mut().reset(d);
                }
            }
            tokio::select! {
                cmd = self.cmd_rx.recv() => {
                    // The session handle held by `self.session` keeps the sender alive.
                    let Some(cmd) = cmd else { return End::quiet(SessionError::Closed("dropped".into())) };
                    if let Some(end) = self.on_command(cmd) {
                        return end;
                    }
                }
                frame = self.reader.next() => {
                    let end = match frame {
                        Some(Ok(bytes)) => {
                            self.keepalive.heard();
                            if let Some(m) = &self.session.inner.metrics {
                                let t = m.traffic(self.session.peer().kind);
                                t.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                                t.messages_in.fetch_add(1, Ordering::Relaxed);
                            }
                            self.on_frame(&bytes)
                        }
                        Some(Err(e)) => {
                            if let (Some(m), TransportError::TooLarge { .. }) = (&self.session.inner.metrics, &e) {
                                m.oversize_frames.fetch_add(1, Ordering::Relaxed);
                            }
                            tracing::warn!(peer = %self.session.peer(), error = %e, "transport failed");
                            Some(End::quiet(e.into()))
                        }
                        None => Some(End::quiet(SessionError::PeerClosed)),
                    };
                    if let Some(end) = end {
                        return end;
                    }
                    if std::mem::take(&mut self.reader.ran_dry) {
                        burst = 0;
                        next_yield = FIRST_YIELD;
                    }
                    burst += 1;
                    if burst == next_yield {
                        next_yield = next_yield.saturating_mul(4);
                        tokio::task::yield_now().await;
                    }
                }
                () = &mut sleep, if deadline.is_some() => {
                    let now = Instant::now();
                    self.in_flight.expire(now);
                    if self.keepalive.deadline().is_some_and(|d| d <= now) {
                        if let Some(end) = self.on_deadline() {
                            return end;
                        }
                    }
                }
                res = &mut self.writer => {
                    let reason = match res {
                        Ok(Ok(())) => SessionError::Closed("writer stopped".into()),
                        Ok(Err(e)) => e.into(),
                        Err(e) => SessionError::Transport(format!("writer task failed: {e}")),
                    };
                    return End::quiet(reason);
                }
            }
        }
    }

    /// The earlier of the keepalive deadline and the first call deadline.
    fn next_wake(&self) -> Option<Instant> {
        match (self.keepalive.deadline(), self.in_flight.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_command(&mut self, cmd: Command) -> Option<End> {
        match cmd {
            Command::Register(n, tx, deadline) => {
                self.in_flight.insert(n, tx, deadline);
                None
            }
            Command::Cancel(n) => {
                self.in_flight.cancel(n);
                None
            }
            Command::Close(reason) => Some(End {
                reason: SessionError::Closed(reason.clone()),
                bye: Some(reason),
            }),
            Command::Barrier(tx) => {
                let data = rand::random_range(0..=1_000_000);
                if let Some(data) = self.keepalive.barrier(tx, Instant::now(), data) {
                    self.ping_in_order(data);
                }
                None
            }
        }
    }

    /// Send a barrier's Ping through the data queue, behind everything queued before
    /// it (the control queue would overtake them). Like a response, it waits on a task
    /// of its own when the queue is full.
    fn ping_in_order(&self, data: i64) {
        let Ok(bytes) = encode(&Message::Ping { data }) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(bytes)) =
            self.session.inner.data_tx.try_send(bytes)
        {
            let data_tx = self.session.inner.data_tx.clone();
            tokio::spawn(async move {
                // A session that ended meanwhile fails its barriers anyway.
                let _ = data_tx.send(bytes).await;
            });
        }
    }

    fn on_frame(&mut self, bytes: &[u8]) -> Option<End> {
        let msg = match decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                if let Some(m) = &self.session.inner.metrics {
                    m.bad_frames.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(peer = %self.session.peer(), error = %e, "bad message, closing session");
                return Some(End::with_bye(SessionError::codec(e)));
            }
        };
        match msg {
            Message::Ping { data } => self.control(Message::Pong { data }),
            Message::Pong { data } => match self.keepalive.on_pong(data, Instant::now()) {
                Ok(Some(rtt)) => {
                    let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
                    self.session.inner.rtt_micros.store(us, Ordering::Relaxed);
                    if let Some(m) = &self.session.inner.metrics {
                        m.ping_rtt.observe(rtt);
                    }
                    self.handler.event(&self.session, &Event::PingRtt(rtt));
                    let data = rand::random_range(0..=1_000_000);
                    if let Some(data) = self.keepalive.next_barrier(Instant::now(), data) {
                        self.ping_in_order(data);
                    }
                    None
                }
                Ok(None) => {
                    tracing::debug!(peer = %self.session.peer(), data, "unexpected pong ignored");
                    None
                }
                Err(e) => Some(End::with_bye(e)),
            },
            Message::Bye { reason } => {
                Some(End::quiet(SessionError::ByeReceived(printable(&reason))))
            }
            Message::Request(req) => self.on_request(req),
            Message::Response(resp) => {
                self.on_response(resp);
                None
            }
            Message::Notification(n) => {
                if let Some(m) = &self.session.inner.metrics {
                    m.notifications_in.fetch_add(1, Ordering::Relaxed);
                }
                self.handler.notification(&self.session, n);
                None
            }
            Message::AgentHello(_) | Message::ManagerHello(_) => Some(End::with_bye(
                SessionError::unexpected(msg.message_type(), "no second hello"),
            )),
        }
    }

    fn on_request(&mut self, req: Request) -> Option<End> {
        let permit = match self.requests.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(m) = &self.session.inner.metrics {
                    m.served(ServedOutcome::Refused);
                }
                if let Some(others) = self.quiet_refused.admit() {
                    tracing::warn!(peer = %self.session.peer(), method = %printable(&req.method), others_since_last_report = others, "too many requests in flight, refusing one");
                }
                return self.control(Message::Response(Response {
                    id: req.id,
                    success: false,
                    data: Value::from("too many requests in flight"),
                }));
            }
        };
        let id = req.id.clone();
        let deadline = req.timeout.map(request_deadline);
        let mut fut = AssertUnwindSafe(self.handler.request(&self.session, req)).catch_unwind();
        // Poll once here: most handlers answer at once (echo, lookups), and a task per
        // request would cost more than the handler. A handler that is not ready moves
        // to its own task, whose first poll registers that task's waker, so polling with
        // a no-op waker here loses no wake-up.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let session = self.session.clone();
        let expose = self.expose_errors;
        match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(result) => {
                // `None`: not even the error answer encodes; it was logged.
                if let Some(bytes) = response_bytes(&session, id, expose, result) {
                    match session.inner.data_tx.try_send(bytes) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(bytes)) => {
                            tokio::spawn(async move {
                                // A session that ended meanwhile has no one to answer.
                                let _ = session.inner.data_tx.send(bytes).await;
                                drop(permit);
                            });
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
            }
            Poll::Pending => {
                tokio::spawn(async move {
                    let result = match deadline {
                        None => fut.await,
                        // The caller stops waiting at its deadline: stop working too
                        // (dropping the handler's future cancels it) and say why.
                        Some((at, secs)) => match tokio::time::timeout_at(at, fut).await {
                            Ok(result) => result,
                            Err(_) => {
                                tracing::debug!(peer = %session.peer(), id = %id, secs, "request deadline passed, handler cancelled");
                                Ok(Err(HandlerError::Refused(format!(
                                    "deadline of {secs}s exceeded"
                                ))))
                            }
                        },
                    };
                    if let Some(bytes) = response_bytes(&session, id, expose, result) {
                        // A session that ended meanwhile has no one to answer: fine.
                        let _ = session.inner.data_tx.send(bytes).await;
                    }
                    drop(permit);
                });
            }
        }
        None
    }

    fn on_response(&mut self, resp: Response) {
        let Some(n) = self.session.inner.ids.parse(&resp.id) else {
            self.count_dropped();
            if let Some(others) = self.quiet_unknown.admit() {
                tracing::warn!(peer = %self.session.peer(), id = %printable(&resp.id), others_since_last_report = others, "response for a request we never sent, dropped");
            }
            return;
        };
        let resp = match self.in_flight.complete(n, resp) {
            Ok(()) => return,
            Err(resp) => resp,
        };
        // The caller registers before queueing its request, but the two channels race:
        // take in every pending command and look again.
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            match cmd {
                Command::Close(reason) => {
                    // Put it back in order: handle after this response.
                    let _ = self.session.inner.cmd_tx.send(Command::Close(reason));
                    break;
                }
                other => {
                    let _ = self.on_command(other);
                }
            }
        }
        if self.in_flight.complete(n, resp).is_err() {
            self.count_dropped();
            tracing::debug!(peer = %self.session.peer(), "late response for a call that gave up, dropped");
        }
    }

    fn count_dropped(&self) {
        if let Some(m) = &self.session.inner.metrics {
            m.dropped_responses.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_deadline(&mut self) -> Option<End> {
        match self
            .keepalive
            .on_deadline(Instant::now(), rand::random_range(0..=1_000_000))
        {
            Tick::SendPing(data) => self.control(Message::Ping { data }),
            Tick::TimedOut(e) => {
                tracing::warn!(peer = %self.session.peer(), "ping timeout, closing session");
                Some(End::with_bye(e))
            }
            Tick::Idle => None,
        }
    }

    /// Queue a control message without waiting; a full queue ends the session.
    fn control(&mut self, msg: Message) -> Option<End> {
        let bytes = match encode(&msg) {
            Ok(b) => b,
            Err(e) => return Some(End::quiet(SessionError::Protocol(e.to_string()))),
        };
        match self.ctrl_tx.try_send(WriterCmd::Frame(bytes)) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(peer = %self.session.peer(), "peer sends but does not read, closing session");
                Some(End::quiet(SessionError::Congested))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Some(End::quiet(SessionError::Closed("writer stopped".into())))
            }
        }
    }

    async fn finish(mut self, end: End) {
        let shared = &self.session.inner;
        let _ = shared.reason.set(end.reason.clone());
        // Fail every waiting call now; they read the reason set above.
        drop(std::mem::take(&mut self.in_flight));
        self.cmd_rx.close();
        if !self.writer.is_finished() {
            if let Some(reason) = end.bye {
                if let Ok(bytes) = encode(&Message::Bye { reason }) {
                    let _ = self.ctrl_tx.try_send(WriterCmd::Frame(bytes));
                }
            }
            let flushed = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, async {
                let _ = self.ctrl_tx.send(WriterCmd::Close).await;
                let _ = (&mut self.writer).await;
            })
            .await;
            if flushed.is_err() {
                self.writer.abort();
            }
        }
        match &end.reason {
            SessionError::Closed(_) | SessionError::ByeReceived(_) => {
                tracing::info!(peer = %self.session.peer(), reason = %end.reason, "session closed")
            }
            _ => {
                tracing::warn!(peer = %self.session.peer(), reason = %end.reason, "session ended")
            }
        }
        self.handler
            .event(&self.session, &Event::Closed(end.reason));
        shared.done.send_replace(true);
    }
}

/// The encoded Response for a handler's outcome (`None` if even the error answer
/// cannot be encoded).
fn response_bytes(
    session: &Session,
    id: String,
    expose: bool,
    result: std::thread::Result<Result<Value, HandlerError>>,
) -> Option<Bytes> {
    let (outcome, success, data) = match result {
        Ok(Ok(v)) => (ServedOutcome::Ok, true, v),
        Ok(Err(HandlerError::MethodNotFound(m))) => (
            ServedOutcome::NotFound,
            false,
            Value::from(format!("Method {m} not found")),
        ),
        Ok(Err(HandlerError::Failed(text))) => {
            tracing::debug!(peer = %session.peer(), error = %text, "request handler failed");
            let text = if expose {
                text
            } else {
                "RPC call failed".into()
            };
            (ServedOutcome::Error, false, Value::from(text))
        }
        Ok(Err(HandlerError::Refused(text))) => (ServedOutcome::Error, false, Value::from(text)),
        Err(_) => {
            tracing::error!(peer = %session.peer(), "request handler panicked");
            (ServedOutcome::Error, false, Value::from("RPC call failed"))
        }
    };
    if let Some(m) = &session.inner.metrics {
        m.served(outcome);
    }
    let mut msg = Message::Response(Response { id, success, data });
    match session.encode_checked(&msg) {
        Ok(b) => Some(b),
        Err(e) => {
            static NOT_SENDABLE: LogLimit = LogLimit::new(crate::quiet::DEFAULT_INTERVAL, 1);
            if let Some(others) = NOT_SENDABLE.admit() {
                tracing::warn!(peer = %session.peer(), error = %e, others_since_last_report = others, "response not sendable");
            }
            if let Message::Response(r) = &mut msg {
                r.success = false;
                r.data = Value::from("response too large to send");
            }
            encode(&msg).ok()
        }
    }
}
