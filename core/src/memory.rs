//! An in-memory transport pair, for session tests and users' own tests.
//!
//! [`pair`] returns two connected ends. Each direction is a bounded channel of whole
//! payloads, so a writer that outruns its reader waits, as on a socket. Dropping or
//! closing one end's writer ends the other end's reader stream. [`AcceptAll`] is the
//! authenticator such tests give the accepting side.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::error::TransportError;
use crate::session::Authenticator;
use crate::transport::{PeerInfo, Transport, TransportKind};
use redpepper_codec::AgentHello;

/// One end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryTransport {
    peer: PeerInfo,
    reader: MemoryReader,
    writer: MemoryWriter,
}

/// Reading half of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemoryReader {
    rx: mpsc::Receiver<Bytes>,
}

/// Writing half of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemoryWriter {
    tx: PollSender<Bytes>,
}

/// Two connected in-memory ends; each direction buffers up to `capacity` payloads.
///
/// The first end sees the second as peer `127.0.0.2:1`, the second sees the first as
/// `127.0.0.1:1` (addresses are only there so authenticators have something to check).
pub fn pair(capacity: usize) -> (MemoryTransport, MemoryTransport) {
    let (tx_a, rx_b) = mpsc::channel(capacity.max(1));
    let (tx_b, rx_a) = mpsc::channel(capacity.max(1));
    let a = MemoryTransport {
        peer: PeerInfo::new(
            TransportKind::Memory,
            Some(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 1))),
        ),
        reader: MemoryReader { rx: rx_a },
        writer: MemoryWriter {
            tx: PollSender::new(tx_a),
        },
    };
    let b = MemoryTransport {
        peer: PeerInfo::new(
            TransportKind::Memory,
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 1))),
        ),
        reader: MemoryReader { rx: rx_b },
        writer: MemoryWriter {
            tx: PollSender::new(tx_b),
        },
    };
    (a, b)
}

impl MemoryTransport {
    /// Replace the peer facts this end reports (to test authenticators).
    pub fn with_peer(mut self, peer: PeerInfo) -> Self {
        self.peer = peer;
        self
    }
}

impl Transport for MemoryTransport {
    type Reader = MemoryReader;
    type Writer = MemoryWriter;

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    fn split(self) -> (MemoryReader, MemoryWriter) {
        (self.reader, self.writer)
    }
}

impl Stream for MemoryReader {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Bytes> for MemoryWriter {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tx.poll_reserve(cx).map_err(|_| TransportError::Closed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        self.tx.send_item(item).map_err(|_| TransportError::Closed)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

/// An in-memory listener: [`MemoryDialer::dial`] makes a new [`pair`] and hands one end
/// to the listener's `accept`, like a socket listener would.
pub fn listener(capacity: usize) -> (MemoryListener, MemoryDialer) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        MemoryListener { rx },
        MemoryDialer {
            tx,
            capacity: capacity.max(1),
        },
    )
}

/// The accepting side of [`listener`].
#[derive(Debug)]
pub struct MemoryListener {
    rx: mpsc::UnboundedReceiver<MemoryTransport>,
}

/// The dialing side of [`listener`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryDialer {
    tx: mpsc::UnboundedSender<MemoryTransport>,
    capacity: usize,
}

impl MemoryDialer {
    /// Connect: the other end appears at the listener.
    pub fn connect(&self) -> Result<MemoryTransport, TransportError> {
        let (ours, theirs) = pair(self.capacity);
        self.tx.send(theirs).map_err(|_| TransportError::Connect {
            target: "memory".into(),
            reason: "listener closed".into(),
        })?;
        Ok(ours)
    }
}

impl crate::transport::Dialer for MemoryDialer {
    fn dial(&self) -> futures::future::BoxFuture<'_, Result<crate::BoxTransport, TransportError>> {
        let result = self.connect().map(Transport::boxed);
        Box::pin(async move { result })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

impl crate::transport::Listener for MemoryListener {
    fn accept(
        &mut self,
    ) -> futures::future::BoxFuture<'_, Result<crate::transport::Connecting, TransportError>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some(t) => {
                    let ready: crate::transport::Connecting =
                        Box::pin(async move { Ok(t.boxed()) });
                    Ok(ready)
                }
                None => Err(TransportError::Closed),
            }
        })
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Memory
    }

    fn describe(&self) -> String {
        "memory".into()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }
}

/// An [`Authenticator`] that accepts every agent: for in-memory sessions and tests only,
/// never for a listener that others can reach.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl Authenticator for AcceptAll {
    fn authenticate<'a>(
        &'a self,
        _hello: &'a AgentHello,
        _peer: &'a PeerInfo,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}
