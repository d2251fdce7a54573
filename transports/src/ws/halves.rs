//! The reading and writing halves of a WebSocket connection.
//!
//! Both halves share one tokio-tungstenite [`WebSocketStream`] behind a mutex held only
//! for a single non-blocking `poll_*` call, so one task can read while another writes
//! (tokio-tungstenite keeps separate read and write wakers for exactly this). Sharing
//! by hand rather than with `StreamExt::split` lets the reader send a close frame
//! itself when the peer breaks the rules.
//!
//! - Reading: one binary message is one payload, handed on as the `Bytes` tungstenite
//!   cut out of its read buffer (no copy). Pings are answered by tungstenite: the pong
//!   is queued while reading and written before the next read, so it goes out even
//!   when nothing else is sent. A close frame ends the stream cleanly, after the reply
//!   is written and the connection's write side shut down. A text message, a message
//!   over `max_message_size` or a broken frame is an error; the reader then sends a
//!   close frame with the matching status code (1003, 1009, 1002) and ends.
//! - Pongs nobody reads: tungstenite's write buffer is bounded
//!   ([`max_write_buffer`](super::max_write_buffer)); past it a pong is dropped rather
//!   than queued. The reader also counts the pongs of pings that arrive while the
//!   connection takes none of our bytes ([`Watched`]); past
//!   [`WRITE_BUFFER_MARGIN`](super::WRITE_BUFFER_MARGIN) bytes of them the peer is
//!   sending pings without reading, and the reader ends with
//!   [`TransportError::Protocol`]. It also marks the connection abandoned: the
//!   writer stops waiting for a socket that will never drain (its `close` returns at
//!   once, other calls fail with [`TransportError::Closed`]), so the session drops
//!   the connection instead of hanging in a close.
//! - Writing: `feed` puts each payload as one binary frame into tungstenite's write
//!   buffer; `flush` writes the batch (one TLS write per batch while it fits in
//!   [`WRITE_BUFFER`](super::WRITE_BUFFER)). `close` sends a close frame and shuts the
//!   connection's write side down.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{Sink, Stream};
use redpepper_core::error::TransportError;
use redpepper_core::quiet::{LogLimit, DEFAULT_INTERVAL};
use redpepper_core::transport::ReadLimit;
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, warn};

use super::io::Watched;

/// Largest frame this side writes: messages above it are sent fragmented (see
/// `start_send`). Small enough that the peer's read buffer stays near its 1 KiB
/// between messages, large enough that the frame headers cost 0.3 %.
pub(crate) const FRAGMENT: usize = 4 * 1024;

/// Connections closed for breaking the rules (peer-provoked: rate-limited).
static BROKEN: LogLimit = LogLimit::new(DEFAULT_INTERVAL, 1);
use super::WRITE_BUFFER_MARGIN;

/// The WebSocket connection the halves share.
pub(crate) type Ws = WebSocketStream<Watched>;

type Shared = Arc<Mutex<Ws>>;

/// Set by the reader when it gives up on a peer that does not read: the writer must
/// then stop waiting for the socket (it would wait forever).
#[derive(Debug, Default)]
struct Abandon {
    flag: AtomicBool,
    /// The writer's task, woken when the flag is set.
    waker: AtomicWaker,
}

impl Abandon {
    fn set(&self) {
        self.flag.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the connection is abandoned; registers `cx` to hear when it becomes so.
    fn check(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.flag.load(Ordering::Acquire)
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ws> {
    // A panic while holding the lock leaves a consistent stream (every poll is a
    // single call into tungstenite); keep going.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Split a connection into its halves; `peer` labels log lines and errors.
pub(crate) fn split(mut ws: Ws, max: usize, peer: &str) -> (WsReader, WsWriter) {
    let limit = ReadLimit::new(max);
    ws.get_mut().set_limit(limit.clone(), max);
    let shared = Arc::new(Mutex::new(ws));
    let peer: Arc<str> = Arc::from(peer);
    let abandon = Arc::new(Abandon::default());
    let reader = WsReader {
        ws: Arc::clone(&shared),
        limit,
        peer: Arc::clone(&peer),
        abandon: Arc::clone(&abandon),
        done: false,
        pong_backlog: 0,
        written_at_ping: 0,
    };
    let writer = WsWriter {
        ws: shared,
        max,
        peer,
        abandon,
        closed: false,
    };
    (reader, writer)
}

/// Queue a close frame and try once to write it, without waiting.
fn send_close(ws: &mut Ws, cx: &mut Context<'_>, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let mut ws = Pin::new(ws);
    if let Err(e) = ws.as_mut().start_send(Message::Close(Some(frame))) {
        debug!(error = %e, "queueing a close frame");
        return;
    }
    if let Poll::Ready(Err(e)) = ws.poll_flush(cx) {
        debug!(error = %e, "sending a close frame");
    }
}

/// Reading half of a [`WsTransport`](super::WsTransport): whole payloads in order.
///
/// Ends with `None` when the peer sends a close frame or closes the TCP connection
/// between messages. A text message yields [`TransportError::Protocol`], a message or
/// frame over `max_message_size` [`TransportError::TooLarge`] (refused from the frame
/// header, before its body is read); either closes the connection.
pub struct WsReader {
    ws: Shared,
    /// The session lowers it until the hello is accepted (see [`Watched`]).
    limit: ReadLimit,
    peer: Arc<str>,
    abandon: Arc<Abandon>,
    done: bool,
    /// Bytes of pongs queued while the connection took none of our bytes.
    pong_backlog: usize,
    /// [`Watched::written`] when the previous ping arrived.
    written_at_ping: u64,
}

impl fmt::Debug for WsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsReader")
            .field("peer", &self.peer)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl WsReader {
    /// The message size limit this reader applies (see [`ReadLimit`]).
    pub(crate) fn limit(&self) -> ReadLimit {
        self.limit.clone()
    }

    /// Refuse a message of `len` bytes over the (lowered) limit: close, log, error.
    fn too_large(&self, ws: &mut Ws, cx: &mut Context<'_>, len: usize) -> TransportError {
        let max = self.limit.get();
        if let Some(others) = BROKEN.admit() {
            warn!(peer = %self.peer, len, max, others_since_last_report = others,
                "closing connection: peer's first message is larger than the hello limit");
        }
        send_close(ws, cx, CloseCode::Size, "message exceeds the hello limit");
        TransportError::TooLarge { len, max }
    }

    /// Account for the pong tungstenite queued for a ping of `len` bytes; an error when
    /// the peer keeps pinging without reading.
    fn note_ping(&mut self, io: &Watched, len: usize) -> Result<(), TransportError> {
        let written = io.written();
        if io.write_blocked() && written == self.written_at_ping {
            // A pong frame from us: 2 bytes of header (unmasked on the server side,
            // 4 more on the client side), then the ping's payload.
            self.pong_backlog = self.pong_backlog.saturating_add(len + 6);
        } else {
            self.pong_backlog = 0;
        }
        self.written_at_ping = written;
        if self.pong_backlog <= WRITE_BUFFER_MARGIN {
            return Ok(());
        }
        let peer = &self.peer;
        if let Some(others) = BROKEN.admit() {
            warn!(%peer, unsent = self.pong_backlog, others_since_last_report = others,
                "closing connection: peer sends WebSocket pings but does not read the pongs");
        }
        self.abandon.set();
        Err(TransportError::Protocol(format!(
            "{peer} sends WebSocket pings but reads nothing: over {WRITE_BUFFER_MARGIN} \
             bytes of pongs wait behind a blocked connection"
        )))
    }

    /// What to report for a read error, after closing the connection where that helps.
    fn fail(&self, ws: &mut Ws, cx: &mut Context<'_>, e: WsError) -> Option<TransportError> {
        let peer = &self.peer;
        match e {
            WsError::ConnectionClosed | WsError::AlreadyClosed => None,
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                debug!(%peer, "peer closed the connection without a WebSocket close frame");
                None
            }
            WsError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // rustls reports a TCP close without close_notify this way.
                debug!(%peer, "peer closed the connection without TLS close_notify");
                None
            }
            WsError::Io(_) if ws.get_ref().over_budget().is_some() => {
                let read = ws.get_ref().over_budget().unwrap_or_default();
                Some(self.too_large(ws, cx, read))
            }
            WsError::Io(e) => Some(TransportError::io(format!("reading from {peer}"), e)),
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                if let Some(others) = BROKEN.admit() {
                    warn!(%peer, len = size, max = max_size, others_since_last_report = others,
                        "closing connection: peer sent a message larger than max_message_size");
                }
                send_close(ws, cx, CloseCode::Size, "message exceeds max_message_size");
                Some(TransportError::TooLarge {
                    len: size,
                    max: max_size,
                })
            }
            WsError::Protocol(p) => {
                if let Some(others) = BROKEN.admit() {
                    warn!(%peer, error = %p, others_since_last_report = others,
                        "closing connection: WebSocket protocol error");
                }
                send_close(ws, cx, CloseCode::Protocol, "WebSocket protocol error");
                Some(TransportError::Protocol(format!("from {peer}: {p}")))
            }
            WsError::Utf8(e) => {
                send_close(ws, cx, CloseCode::Protocol, "bad UTF-8");
                Some(TransportError::Protocol(format!("from {peer}: {e}")))
            }
            other => Some(TransportError::Other(format!(
                "reading from {peer}: {other}"
            ))),
        }
    }
}

impl Stream for WsReader {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let shared = Arc::clone(&self.ws);
        let mut ws = lock(&shared);
        let result = loop {
            let item = ready!(Pin::new(&mut *ws).poll_next(cx));
            match item {
                Some(Ok(Message::Binary(payload))) if payload.len() > self.limit.get() => {
                    break Some(Err(self.too_large(&mut ws, cx, payload.len())));
                }
                Some(Ok(Message::Binary(payload))) => return Poll::Ready(Some(Ok(payload))),
                // tungstenite queued the pong; the next read writes it.
                Some(Ok(Message::Ping(data))) => {
                    if let Err(e) = self.note_ping(ws.get_ref(), data.len()) {
                        break Some(Err(e));
                    }
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    debug!(peer = %self.peer, ?frame, "peer closed the WebSocket");
                    // Write the close reply tungstenite queued and end the TCP
                    // connection (the closing handshake is complete); best effort.
                    if let Poll::Ready(Err(e)) = Pin::new(&mut *ws).poll_flush(cx) {
                        debug!(peer = %self.peer, error = %e, "replying to a close frame");
                    }
                    if let Poll::Ready(Err(e)) = Pin::new(ws.get_mut()).poll_shutdown(cx) {
                        debug!(peer = %self.peer, error = %e, "shutting down after a close frame");
                    }
                    break None;
                }
                Some(Ok(Message::Text(_))) => {
                    if let Some(others) = BROKEN.admit() {
                        warn!(peer = %self.peer, others_since_last_report = others,
                            "closing connection: peer sent a text WebSocket message");
                    }
                    send_close(
                        &mut ws,
                        cx,
                        CloseCode::Unsupported,
                        "RedPepper messages are binary",
                    );
                    break Some(Err(TransportError::Protocol(format!(
                        "{} sent a text WebSocket message; RedPepper messages are binary",
                        self.peer
                    ))));
                }
                Some(Err(e)) => break self.fail(&mut ws, cx, e).map(Err),
                None => break None,
            }
        };
        drop(ws);
        self.done = true;
        Poll::Ready(result)
    }
}

/// Writing half of a [`WsTransport`](super::WsTransport): a `Sink` of payloads.
///
/// Each payload becomes one binary WebSocket message; `flush` writes the batch. A
/// payload larger than `max_message_size` is refused with
/// [`TransportError::TooLarge`] (the peer would close the connection). `close` sends
/// a close frame, then TLS close_notify and TCP FIN.
pub struct WsWriter {
    ws: Shared,
    max: usize,
    peer: Arc<str>,
    abandon: Arc<Abandon>,
    closed: bool,
}

impl fmt::Debug for WsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsWriter")
            .field("peer", &self.peer)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl WsWriter {
    fn error(&self, e: WsError) -> TransportError {
        match e {
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::SendAfterClosing) => TransportError::Closed,
            WsError::Io(e) => TransportError::io(format!("writing to {}", self.peer), e),
            WsError::WriteBufferFull(_) => TransportError::Other(format!(
                "writing to {}: the peer is not reading (write buffer full)",
                self.peer
            )),
            other => TransportError::Other(format!("writing to {}: {other}", self.peer)),
        }
    }
}

impl Sink<Bytes> for WsWriter {
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.closed || self.abandon.check(cx) {
            return Poll::Ready(Err(TransportError::Closed));
        }
        let ready = ready!(Pin::new(&mut *lock(&self.ws)).poll_ready(cx));
        Poll::Ready(ready.map_err(|e| self.error(e)))
    }

    fn start_send(self: Pin<&mut Self>, payload: Bytes) -> Result<(), Self::Error> {
        if self.closed || self.abandon.flag.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        if payload.len() > self.max {
            return Err(TransportError::TooLarge {
                len: payload.len(),
                max: self.max,
            });
        }
        let mut ws = lock(&self.ws);
        if payload.len() <= FRAGMENT {
            let sent = Pin::new(&mut *ws).start_send(Message::Binary(payload));
            return sent.map_err(|e| self.error(e));
        }
        // A large message goes out as frames of FRAGMENT bytes: the receiving
        // tungstenite keeps a buffer as large as the largest *frame* it ever read for
        // the life of the connection (1 MiB per connection after one 1 MiB message);
        // with fragments it is FRAGMENT. Every frame is queued before any is flushed
        // (the write buffer holds one largest message and its headers).
        let mut rest = payload;
        let mut opcode = OpCode::Data(Data::Binary);
        while !rest.is_empty() {
            let chunk = rest.split_to(FRAGMENT.min(rest.len()));
            let frame = Frame::message(chunk, opcode, rest.is_empty());
            let sent = Pin::new(&mut *ws).start_send(Message::Frame(frame));
            sent.map_err(|e| self.error(e))?;
            opcode = OpCode::Data(Data::Continue);
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.abandon.check(cx) {
            return Poll::Ready(Err(TransportError::Closed));
        }
        let flushed = ready!(Pin::new(&mut *lock(&self.ws)).poll_flush(cx));
        Poll::Ready(flushed.map_err(|e| self.error(e)))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        if this.abandon.check(cx) {
            // Nothing more can be written; dropping the halves closes the socket.
            debug!(peer = %this.peer, "closing an abandoned connection without a close frame");
            this.closed = true;
            return Poll::Ready(Ok(()));
        }
        let mut ws = lock(&this.ws);
        let closing = ready!(Pin::new(&mut *ws).poll_close(cx));
        let result = match closing {
            Ok(()) => {
                let shut = ready!(Pin::new(ws.get_mut()).poll_shutdown(cx));
                match shut {
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => {
                        Err(TransportError::io(format!("closing {}", this.peer), e))
                    }
                    _ => Ok(()),
                }
            }
            Err(e) => match this.error(e) {
                TransportError::Closed => Ok(()),
                other => Err(other),
            },
        };
        drop(ws);
        this.closed = true;
        Poll::Ready(result)
    }
}
