//! The `Transport` abstraction: a bidirectional, message-framed connection.
//!
//! A transport carries whole protocol payloads (one MessagePack message each) in both
//! directions. It splits into a reading half (a [`Stream`] of payloads) and a writing
//! half (a [`Sink`] of payloads) so one task can read while another writes.
//!
//! Writing follows the `Sink` contract: the session's writer `feed`s every queued
//! payload and then `flush`es once, so the transport decides how a batch reaches the
//! wire (TLS TCP puts each frame in its own TLS record but issues one socket write per
//! batch). `close` flushes and shuts the connection down.
//!
//! ```text
//!   session writer ──feed,feed,…,flush──▶ Writer ┐
//!                                                ├── concrete transport (TLS, WS, AMQP, memory)
//!   session reader ◀──next()── Reader ───────────┘
//! ```
//!
//! [`BoxTransport`] erases the concrete type so the backend can be chosen from
//! configuration at run time; [`Dialer`] and [`Listener`] make and accept them.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, Stream};

use crate::error::TransportError;

/// Which kind of transport a connection runs over: a label for logs and peer facts,
/// and the value of the configuration's `transport:` (agent) and `transports:`
/// (manager) keys (`tls`, `websocket`, `amqp`; `memory` cannot be configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TransportKind {
    /// The in-memory pair (tests).
    #[serde(skip)]
    Memory,
    /// TLS over TCP with 4-byte length frames (RedPepper's own transport).
    Tls,
    /// WebSocket binary messages (ws or wss).
    WebSocket,
    /// AMQP messages through a broker.
    Amqp,
}

impl TransportKind {
    /// Lower-case name, as used in configuration (`tls`, `websocket`, `amqp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Tls => "tls",
            Self::WebSocket => "websocket",
            Self::Amqp => "amqp",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about the other end of a connection, as far as the transport knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The transport this connection runs over.
    pub kind: TransportKind,
    /// The peer's address (the real client behind a trusted proxy where the transport
    /// knows it). `None` where there is no such thing (a broker-routed session).
    pub remote_addr: Option<SocketAddr>,
    /// Subject of the client certificate the transport verified, if any.
    pub client_cert_subject: Option<String>,
    /// The user the broker authenticated and validated for this session, if any.
    pub broker_user: Option<String>,
}

impl PeerInfo {
    /// Peer facts with only the kind and address known.
    pub fn new(kind: TransportKind, remote_addr: Option<SocketAddr>) -> Self {
        Self {
            kind,
            remote_addr,
            client_cert_subject: None,
            broker_user: None,
        }
    }
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.remote_addr, &self.broker_user) {
            (Some(addr), _) => write!(f, "{}://{}", self.kind, addr),
            (None, Some(user)) => write!(f, "{}://{}@broker", self.kind, user),
            (None, None) => write!(f, "{}://?", self.kind),
        }
    }
}

/// The most bytes one incoming message may take on a connection, shared by its reader
/// (which checks it: from a frame's header where the framing allows) and the session
/// (which lowers it to [`HELLO_FRAME_LIMIT`](crate::session::HELLO_FRAME_LIMIT) until
/// the peer's hello is accepted, then restores it). Starts at the transport's
/// `max_message_size`. Cheap to clone; clones share the value.
#[derive(Debug, Clone)]
pub struct ReadLimit(Arc<AtomicUsize>);

impl ReadLimit {
    /// A limit of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self(Arc::new(AtomicUsize::new(max)))
    }

    /// The limit now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Change the limit; the reader applies it from the next message on.
    pub fn set(&self, max: usize) {
        self.0.store(max, Ordering::Relaxed);
    }
}

/// A bidirectional, message-framed connection.
pub trait Transport: Send + 'static {
    /// The reading half: whole payloads in arrival order; `None` at clean end of stream.
    type Reader: Stream<Item = Result<Bytes, TransportError>> + Send + Unpin + 'static;
    /// The writing half: whole payloads; `flush` ends a batch, `close` shuts down.
    type Writer: Sink<Bytes, Error = TransportError> + Send + Unpin + 'static;

    /// What the transport knows about the peer.
    fn peer(&self) -> &PeerInfo;

    /// The reader's message size limit, where the session may lower it until the hello
    /// is accepted (see [`ReadLimit`]); `None` (the default): the transport keeps its own.
    fn read_limit(&self) -> Option<ReadLimit> {
        None
    }

    /// Split into halves usable from two tasks at once.
    fn split(self) -> (Self::Reader, Self::Writer);

    /// Erase the concrete type.
    fn boxed(self) -> BoxTransport
    where
        Self: Sized,
    {
        let peer = self.peer().clone();
        let read_limit = self.read_limit();
        let (reader, writer) = self.split();
        BoxTransport {
            peer,
            read_limit,
            reader: Box::pin(reader),
            writer: Box::pin(writer),
        }
    }
}

/// A type-erased reading half.
pub type BoxReader = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;
/// A type-erased writing half.
pub type BoxWriter = Pin<Box<dyn Sink<Bytes, Error = TransportError> + Send>>;

/// A transport whose backend was chosen at run time.
pub struct BoxTransport {
    peer: PeerInfo,
    read_limit: Option<ReadLimit>,
    reader: BoxReader,
    writer: BoxWriter,
}

impl BoxTransport {
    /// Assemble from halves and peer facts.
    pub fn new(peer: PeerInfo, reader: BoxReader, writer: BoxWriter) -> Self {
        Self {
            peer,
            read_limit: None,
            reader,
            writer,
        }
    }

    /// The same, with the reader's shared message size limit.
    pub fn with_read_limit(mut self, limit: ReadLimit) -> Self {
        self.read_limit = Some(limit);
        self
    }
}

impl fmt::Debug for BoxTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxTransport")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Transport for BoxTransport {
    type Reader = BoxReader;
    type Writer = BoxWriter;

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    fn read_limit(&self) -> Option<ReadLimit> {
        self.read_limit.clone()
    }

    fn split(self) -> (BoxReader, BoxWriter) {
        (self.reader, self.writer)
    }

    fn boxed(self) -> BoxTransport {
        self
    }
}

/// Makes outgoing connections (the agent side).
pub trait Dialer: Send + Sync + 'static {
    /// Connect, including any transport-level handshake (TLS, WebSocket upgrade, proxy
    /// CONNECT, broker login).
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>>;

    /// Where this dialer connects to, for logs (no credentials).
    fn describe(&self) -> String;

    /// [`Dialer::dial`], also saying where the connection went, for logs: by default
    /// [`Dialer::describe`]; a dialer over several targets (a list of managers) names
    /// the one that answered.
    fn dial_described(&self) -> BoxFuture<'_, Result<(BoxTransport, String), TransportError>> {
        Box::pin(async move {
            let transport = self.dial().await?;
            Ok((transport, self.describe()))
        })
    }
}

/// A connection accepted at the socket level whose transport handshake (TLS, WebSocket
/// upgrade) has not finished yet. Drive it on its own task so a slow client never
/// delays the accept loop.
pub type Connecting = BoxFuture<'static, Result<BoxTransport, TransportError>>;

/// A connection accepted at the socket level, with the peer's address as the socket
/// saw it, before any handshake: what admission control counts per source.
pub struct Incoming {
    /// The socket's peer address (a reverse proxy's, when there is one); `None` where
    /// the listener has no socket per connection (AMQP, memory).
    pub remote_addr: Option<SocketAddr>,
    /// The transport handshake, still to run.
    pub connecting: Connecting,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// Accepts incoming connections (the manager side).
pub trait Listener: Send + 'static {
    /// Wait for the next connection. An error here is about one connection attempt or
    /// a passing resource shortage (the caller logs it and accepts again), unless it is
    /// [`TransportError::Closed`], which means the listener is done.
    fn accept(&mut self) -> BoxFuture<'_, Result<Connecting, TransportError>>;

    /// [`Listener::accept`], also giving the socket's peer address where the listener
    /// knows it before the handshake (socket listeners override this). The default
    /// knows none.
    fn accept_incoming(&mut self) -> BoxFuture<'_, Result<Incoming, TransportError>> {
        let accepting = self.accept();
        Box::pin(async move {
            accepting.await.map(|connecting| Incoming {
                remote_addr: None,
                connecting,
            })
        })
    }

    /// The kind of transport this listener serves.
    fn kind(&self) -> TransportKind;

    /// Where this listener listens, for logs (for example `0.0.0.0:7051`).
    fn describe(&self) -> String;

    /// The bound socket address, where there is one (useful after binding port 0).
    fn local_addr(&self) -> Option<SocketAddr>;

    /// For a listener that depends on a link (AMQP: its broker connection), whether
    /// that link is up now and as it changes; `None` (the default) for listeners that
    /// are up as long as they exist. The manager's `/readyz` reads it.
    fn link_state(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }
}

/// A boxed listener.
pub type BoxListener = Box<dyn Listener>;
