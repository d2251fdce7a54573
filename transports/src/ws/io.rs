//! The byte stream under the WebSocket layer: plain TCP (`ws://`, or `tls: false`
//! behind a TLS-terminating proxy) or TLS over TCP (`wss://`), on either side, and
//! [`Watched`], the same stream remembering whether the peer has stopped taking our
//! bytes (the reader uses it to notice pings whose pongs cannot be sent), and reading
//! at most a small budget while the session's [`ReadLimit`] is lowered for the hello
//! (tungstenite's own limit is `max_message_size` and cannot change on a live stream:
//! without this a peer could make us buffer that much before it is authenticated).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use redpepper_core::transport::ReadLimit;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

/// A TCP connection, with or without TLS, client or server side.
#[derive(Debug)]
pub enum WsIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (client or server side).
    Tls(Box<TlsStream<TcpStream>>),
}

impl WsIo {
    /// Subject of the client certificate the TLS layer verified (server side only).
    pub(crate) fn client_cert_subject(&self) -> Option<String> {
        let Self::Tls(tls) = self else {
            return None;
        };
        let TlsStream::Server(server) = tls.as_ref() else {
            return None;
        };
        let leaf = server.get_ref().1.peer_certificates()?.first()?;
        let subject = crate::tls::subject(leaf);
        if subject.is_none() {
            tracing::warn!("cannot read the subject of the client certificate");
        }
        subject
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A [`WsIo`] that remembers whether its last write attempt found the connection
/// blocked: the peer has stopped reading and every socket buffer on the way is full.
///
/// The flag is set when a write or flush returns `Pending` and cleared when one
/// succeeds; `written` counts the bytes taken. tungstenite tries to write the pong of
/// every ping before it reads the next frame, so when the reader sees a ping these
/// say whether anything went out since the previous one.
#[derive(Debug)]
pub(crate) struct Watched {
    io: WsIo,
    write_blocked: bool,
    written: u64,
    /// The reader's limit and the full `max_message_size` it starts at.
    limit: Option<(ReadLimit, usize)>,
    /// Bytes read so far (counted only while the limit is lowered).
    read: usize,
    /// A read was refused: `read` reached the hello budget.
    over_budget: bool,
}

/// Room for WebSocket frame headers (a hello split into fragments, pings) on top of the
/// lowered limit: bytes readable before the hello is accepted are `limit * 2`.
const HELLO_BUDGET_FACTOR: usize = 2;

impl Watched {
    pub(crate) fn new(io: WsIo) -> Self {
        Self {
            io,
            write_blocked: false,
            written: 0,
            limit: None,
            read: 0,
            over_budget: false,
        }
    }

    /// Apply `limit` (which starts at `max`): while it is below `max`, reading stops
    /// at twice its value.
    pub(crate) fn set_limit(&mut self, limit: ReadLimit, max: usize) {
        self.limit = Some((limit, max));
    }

    /// The bytes read when a read was refused for going past the hello budget.
    pub(crate) fn over_budget(&self) -> Option<usize> {
        self.over_budget.then_some(self.read)
    }

    /// How many more bytes may be read now, `None` for no budget.
    fn budget(&mut self) -> Option<usize> {
        let (limit, max) = self.limit.as_ref()?;
        let now = limit.get();
        if now >= *max {
            // The hello was accepted: no budget from now on.
            self.limit = None;
            return None;
        }
        Some(
            now.saturating_mul(HELLO_BUDGET_FACTOR)
                .saturating_sub(self.read),
        )
    }

    /// Whether the last write (or flush) attempt could not make progress.
    pub(crate) fn write_blocked(&self) -> bool {
        self.write_blocked
    }

    /// Bytes the stream has taken so far (wrapping).
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn note_write(&mut self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &poll {
            self.written = self.written.wrapping_add(*n as u64);
        }
        self.note(poll)
    }

    fn note<T>(&mut self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &poll {
            Poll::Pending => self.write_blocked = true,
            Poll::Ready(Ok(_)) => self.write_blocked = false,
            Poll::Ready(Err(_)) => {}
        }
        poll
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(budget) = this.budget() else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        if budget == 0 {
            this.over_budget = true;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than the hello limit allows before the hello is accepted",
            )));
        }
        // Read through a small buffer of at most `budget` bytes (pre-auth only).
        let mut chunk = [0u8; 2048];
        let n = budget.min(chunk.len()).min(buf.remaining());
        let mut small = ReadBuf::new(&mut chunk[..n]);
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, &mut small))?;
        this.read = this.read.saturating_add(small.filled().len());
        buf.put_slice(small.filled());
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note_write(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note_write(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.note(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
