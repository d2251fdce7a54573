//! RedPepper's own transport: length-prefixed MessagePack frames over TLS over TCP.
//!
//! ```text
//! +----------------+-----------------------------------+
//! | len: u32, BE   | payload: `len` bytes (MessagePack) |   one frame per TLS record(s);
//! +----------------+-----------------------------------+   never two frames in a record
//!   4 bytes          0 ..= max_message_size bytes
//! ```
//!
//! - Framing rules: a frame announcing more than `max_message_size` (default
//!   1 MiB; exactly 1 MiB is allowed) is rejected from its header, before its body is
//!   read, and the connection is closed ([`TransportError::TooLarge`]); a stream
//!   starting with `HTTP` is reported as [`TransportError::Http`].
//! - [`TlsReader`] / [`TlsWriter`]: the halves, usable from two tasks; how each frame
//!   gets its own TLS record while a batch costs one socket write is explained in the
//!   `halves` module and [`WRITE_BUFFER`].
//! - [`TlsTransport`]: a finished TLS connection ([`TlsTransport::connect`],
//!   [`TlsTransport::accept`]); [`TlsDialer`] and [`TlsListener`] make them over TCP.
//! - [`server_config`] / [`client_config`]: rustls configurations from RedPepper's
//!   `tls_*` settings (see the `context` module for the table of meanings).

mod coalesce;
mod context;
mod files;
pub(crate) mod frame;
mod halves;
mod net;
mod verify;

use std::net::SocketAddr;
use std::sync::Arc;

use redpepper_core::error::TransportError;
use redpepper_core::transport::{PeerInfo, Transport, TransportKind};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use coalesce::Coalesce;
pub use context::{
    client_config, provider, reload_server_certs, server_config, server_name, CertReload,
    ReloadableCert,
};
pub use halves::{TlsReader, TlsWriter, WRITE_BUFFER};
pub use net::{TlsDialer, TlsListener, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT};
pub use verify::{subject, AcceptAnyServerCert, NoHostnameVerifier};

/// An established TLS TCP connection carrying RedPepper frames.
///
/// `S` is the byte stream under TLS: a [`TcpStream`] normally, anything else in tests.
pub struct TlsTransport<S = TcpStream> {
    peer: PeerInfo,
    reader: TlsReader<S>,
    writer: TlsWriter<S>,
}

impl<S> std::fmt::Debug for TlsTransport<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

fn handshake_error(peer: &str, e: std::io::Error) -> TransportError {
    // Bytes that are not TLS records at all: most often plain HTTP (a web server, or
    // a WebSocket endpoint with `tls: false`) on the port dialled.
    let hint = if e.to_string().contains("InvalidContentType") {
        " (the peer does not speak TLS: is this port serving plain HTTP or another protocol?)"
    } else {
        ""
    };
    TransportError::Tls(format!("handshake with {peer}: {e}{hint}"))
}

impl<S> TlsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Run the client handshake over `stream` (already connected to the manager,
    /// directly or through a proxy) and verify the server as `server_name`.
    ///
    /// `remote_addr` is recorded in [`PeerInfo`]; frames larger than
    /// `max_message_size` are refused in both directions.
    pub async fn connect(
        stream: S,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        remote_addr: Option<SocketAddr>,
        max_message_size: usize,
    ) -> Result<Self, TransportError> {
        let label = match remote_addr {
            Some(addr) => format!("{} ({addr})", server_name.to_str()),
            None => server_name.to_str().into_owned(),
        };
        let io = Coalesce::new(stream);
        let tls = TlsConnector::from(config)
            .connect(server_name, io)
            .await
            .map_err(|e| handshake_error(&label, e))?;
        let peer = PeerInfo::new(TransportKind::Tls, remote_addr);
        Ok(Self::from_parts(tls.into(), peer, &label, max_message_size))
    }

    /// Run the server handshake over an accepted `stream`.
    ///
    /// When the client presented a certificate that the configured verifier accepted,
    /// its subject is recorded as [`PeerInfo::client_cert_subject`].
    pub async fn accept(
        stream: S,
        config: Arc<ServerConfig>,
        remote_addr: Option<SocketAddr>,
        max_message_size: usize,
    ) -> Result<Self, TransportError> {
        let label = remote_addr.map_or_else(|| "client".to_owned(), |a| a.to_string());
        let io = Coalesce::new(stream);
        let tls = TlsAcceptor::from(config)
            .accept(io)
            .await
            .map_err(|e| handshake_error(&label, e))?;
        let mut peer = PeerInfo::new(TransportKind::Tls, remote_addr);
        peer.client_cert_subject = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| {
                let subject = verify::subject(leaf);
                if subject.is_none() {
                    tracing::warn!(peer = %label, "cannot read the subject of the client certificate");
                }
                subject
            });
        Ok(Self::from_parts(tls.into(), peer, &label, max_message_size))
    }

    fn from_parts(io: halves::Io<S>, peer: PeerInfo, label: &str, max: usize) -> Self {
        let (reader, writer) = halves::split(io, max, label);
        Self {
            peer,
            reader,
            writer,
        }
    }
}

impl<S> Transport for TlsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Reader = TlsReader<S>;
    type Writer = TlsWriter<S>;

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    fn read_limit(&self) -> Option<redpepper_core::transport::ReadLimit> {
        Some(self.reader.limit())
    }

    fn split(self) -> (TlsReader<S>, TlsWriter<S>) {
        (self.reader, self.writer)
    }
}
