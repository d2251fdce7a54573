//! The reading and writing halves of a TLS TCP connection.
//!
//! Both halves share the one TLS stream behind a mutex that is held only for the
//! duration of a single non-blocking `poll_*` call, so one task can read while another
//! writes (what `tokio::io::split` does; done here by hand so the reader can shut the
//! connection down itself when the peer breaks the framing rules).
//!
//! # One frame, one TLS record; one batch, one socket write
//!
//! The stack under the halves is
//!
//! ```text
//!   TlsWriter ── one poll_write per whole frame ──▶ rustls (one record per write call)
//!        ──▶ Coalesce (collects ciphertext) ──▶ socket (written on flush / when full)
//! ```
//!
//! [`TlsWriter`] encodes each payload with its 4-byte length into one contiguous buffer
//! and hands it to the TLS stream, calling `poll_write` until the whole frame is
//! accepted before it takes the next one. rustls encrypts each write call into its own
//! record(s), so no record ever holds bytes of two frames (Python RedPepper peers read
//! one frame per record and fall behind otherwise). The ciphertext lands in a
//! [`Coalesce`] buffer under the TLS stream, which reaches the socket only on `flush`
//! (or when it fills), so a batch of `feed`s followed by one `flush` costs one write
//! system call as long as it fits in [`WRITE_BUFFER`] bytes. That buffer, like the read
//! buffer, starts small and grows with the traffic: an idle agent's connection holds a
//! few hundred bytes of each, not 32 KiB.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Sink, Stream};
use redpepper_core::error::TransportError;
use redpepper_core::quiet::{LogLimit, DEFAULT_INTERVAL};
use redpepper_core::transport::ReadLimit;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Encoder, FramedRead, LengthDelimitedCodec};
use tracing::{debug, warn};

use super::frame::{self, DecodeError, FrameDecoder};

use super::coalesce::Coalesce;
pub use super::coalesce::WRITE_BUFFER;

/// First capacity of a connection's read buffer; it grows to what the traffic needs.
const READ_BUFFER: usize = 1024;

/// A frame buffer grown beyond this is dropped after use instead of kept; so is the
/// read buffer after a frame this large (an idle connection goes back to holding
/// [`READ_BUFFER`] bytes, not the largest message it ever received). Measured with
/// `tls::idle_memory`: at 64 KiB, one 60,000-byte message per connection left 70 KiB
/// resident per connection end; at 8 KiB, the cost is one small allocation per large
/// message, next to the message's own.
const KEEP_FRAME_BUFFER: usize = 8 * 1024;

/// Connections closed for breaking the framing rules (peer-provoked: rate-limited).
static FRAMING: LogLimit = LogLimit::new(DEFAULT_INTERVAL, 1);

/// The TLS stream the halves share: rustls over a buffered socket.
pub(crate) type Io<S> = tokio_rustls::TlsStream<Coalesce<S>>;

type Shared<S> = Arc<Mutex<Io<S>>>;

fn lock<S>(shared: &Shared<S>) -> MutexGuard<'_, Io<S>> {
    // A panic while holding the lock cannot leave the stream half-updated in a way we
    // could repair; carry on with it, the next I/O call reports any error.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Split a TLS stream into its halves; `peer` labels errors and logs.
pub(crate) fn split<S>(io: Io<S>, max: usize, peer: &str) -> (TlsReader<S>, TlsWriter<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shared = Arc::new(Mutex::new(io));
    let peer: Arc<str> = Arc::from(peer);
    let reader = TlsReader {
        framed: FramedRead::with_capacity(
            ReadHalf(Arc::clone(&shared)),
            FrameDecoder::new(max),
            READ_BUFFER,
        ),
        peer: Arc::clone(&peer),
        done: false,
    };
    let writer = TlsWriter {
        io: shared,
        codec: frame::codec(max),
        max: frame::clamp_max(max),
        frame: BytesMut::new(),
        written: 0,
        peer,
        closed: false,
    };
    (reader, writer)
}

/// The plaintext read side of the shared stream, for [`FramedRead`].
struct ReadHalf<S>(Shared<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.0)).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Start closing the connection (close_notify, then TCP FIN) without waiting.
    fn shut_down(&self, cx: &mut Context<'_>) {
        if let Poll::Ready(Err(e)) = Pin::new(&mut *lock(&self.0)).poll_shutdown(cx) {
            debug!(error = %e, "closing after a framing error");
        }
    }
}

/// Reading half of a [`TlsTransport`](super::TlsTransport): whole payloads in order.
///
/// Ends with `None` when the peer closes between frames. A frame announcing more than
/// `max_message_size` yields [`TransportError::TooLarge`] as soon as its 4-byte header
/// arrives (the body is never read) and closes the connection; so does a stream that
/// starts with `HTTP` ([`TransportError::Http`]).
pub struct TlsReader<S = TcpStream> {
    framed: FramedRead<ReadHalf<S>, FrameDecoder>,
    peer: Arc<str>,
    done: bool,
}

impl<S> TlsReader<S> {
    /// The message size limit this reader applies (see [`ReadLimit`]).
    pub(crate) fn limit(&self) -> ReadLimit {
        self.framed.decoder().limit().clone()
    }

    /// After a frame larger than [`KEEP_FRAME_BUFFER`], move what is left of the read
    /// buffer (the start of the next frame, if any) into a fresh small one, so the large
    /// allocation goes when the payload does.
    fn give_back(&mut self, frame_len: usize) {
        if frame_len <= KEEP_FRAME_BUFFER {
            return;
        }
        let buf = self.framed.read_buffer_mut();
        let mut fresh = BytesMut::with_capacity(READ_BUFFER.max(buf.len()));
        fresh.extend_from_slice(buf);
        *buf = fresh;
    }
}

impl<S> fmt::Debug for TlsReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsReader")
            .field("peer", &self.peer)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for TlsReader<S> {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = ready!(Pin::new(&mut self.framed).poll_next(cx));
        let result = match item {
            Some(Ok(payload)) => {
                self.give_back(payload.len());
                return Poll::Ready(Some(Ok(payload.freeze())));
            }
            None => None,
            Some(Err(DecodeError::Io(e)))
                if e.kind() == io::ErrorKind::UnexpectedEof
                    && self.framed.read_buffer().is_empty()
                    && self.framed.decoder().at_frame_boundary() =>
            {
                debug!(peer = %self.peer, "peer closed the TCP connection without TLS close_notify");
                None
            }
            Some(Err(DecodeError::Io(e))) => Some(Err(TransportError::io(
                format!("reading from {}", self.peer),
                e,
            ))),
            Some(Err(DecodeError::Frame(e))) => {
                if let Some(others) = FRAMING.admit() {
                    let peer = &self.peer;
                    match &e {
                        TransportError::TooLarge { len, max } if self.framed.decoder().first() => {
                            warn!(
                                %peer, len, max, others_since_last_report = others,
                                "closing connection: peer's first frame is larger than the hello limit"
                            )
                        }
                        TransportError::TooLarge { len, max } => warn!(
                            %peer, len, max, others_since_last_report = others,
                            "closing connection: peer announced a frame larger than max_message_size"
                        ),
                        TransportError::Http => warn!(
                            %peer, others_since_last_report = others,
                            "closing connection: peer answered with HTTP (is this port serving HTTP?)"
                        ),
                        other => {
                            warn!(%peer, error = %other, others_since_last_report = others, "closing connection")
                        }
                    }
                }
                self.framed.get_ref().shut_down(cx);
                Some(Err(e))
            }
        };
        self.done = true;
        Poll::Ready(result)
    }
}

/// Writing half of a [`TlsTransport`](super::TlsTransport): a `Sink` of payloads.
///
/// Each payload becomes one frame in its own TLS record(s); `flush` pushes the batch to
/// the socket (see the module docs). A payload larger than `max_message_size` is
/// refused with [`TransportError::TooLarge`] (the peer would drop the connection).
/// `close` sends TLS close_notify and shuts the TCP write side down.
pub struct TlsWriter<S = TcpStream> {
    io: Shared<S>,
    codec: LengthDelimitedCodec,
    max: usize,
    /// The frame being handed to TLS (header and payload, contiguous); empty if none.
    frame: BytesMut,
    /// How much of `frame` TLS has accepted.
    written: usize,
    peer: Arc<str>,
    closed: bool,
}

impl<S> fmt::Debug for TlsWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsWriter")
            .field("peer", &self.peer)
            .field("pending", &(self.frame.len() - self.written))
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsWriter<S> {
    fn io_error(&self, e: io::Error) -> TransportError {
        TransportError::io(format!("writing to {}", self.peer), e)
    }

    /// Hand the rest of the current frame to TLS, one `poll_write` per attempt, until
    /// all of it is accepted.
    fn poll_write_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        while self.written < self.frame.len() {
            let rest = &self.frame[self.written..];
            let n = match ready!(Pin::new(&mut *lock(&self.io)).poll_write(cx, rest)) {
                Ok(0) => return Poll::Ready(Err(self.io_error(io::ErrorKind::WriteZero.into()))),
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(self.io_error(e))),
            };
            self.written += n;
        }
        if self.frame.capacity() > KEEP_FRAME_BUFFER {
            self.frame = BytesMut::new();
        } else {
            self.frame.clear();
        }
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Bytes> for TlsWriter<S> {
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Err(TransportError::Closed));
        }
        this.poll_write_frame(cx)
    }

    fn start_send(self: Pin<&mut Self>, payload: Bytes) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if this.closed {
            return Err(TransportError::Closed);
        }
        if !this.frame.is_empty() {
            return Err(TransportError::Other(
                "TLS writer: start_send without poll_ready".into(),
            ));
        }
        if payload.len() > this.max {
            return Err(TransportError::TooLarge {
                len: payload.len(),
                max: this.max,
            });
        }
        this.written = 0;
        this.codec
            .encode(payload, &mut this.frame)
            .map_err(|e| TransportError::Other(format!("encoding a frame: {e}")))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        ready!(this.poll_write_frame(cx))?;
        let flushed = ready!(Pin::new(&mut *lock(&this.io)).poll_flush(cx));
        Poll::Ready(flushed.map_err(|e| this.io_error(e)))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_write_frame(cx))?;
        let shut = ready!(Pin::new(&mut *lock(&this.io)).poll_shutdown(cx));
        this.closed = true;
        Poll::Ready(shut.map_err(|e| this.io_error(e)))
    }
}
