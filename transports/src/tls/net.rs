//! TCP plumbing of the TLS transport: [`TlsDialer`] (agent) and [`TlsListener`]
//! (manager).
//!
//! The listener's `accept` only accepts the TCP connection; the TLS handshake runs in
//! the returned [`Connecting`] future, on whatever task the caller drives it, so a slow
//! or silent client never holds up the accept loop. Both sides set `TCP_NODELAY`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redpepper_core::error::TransportError;
use redpepper_core::transport::{
    BoxTransport, Connecting, Dialer, Incoming, Listener, Transport, TransportKind,
};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use super::{context, TlsTransport};
use crate::addrs;
use crate::error::TransportsError;
use crate::proxy::{self, host_port, ProxyUrl};

/// Default limit for a dial: name resolution, then for each address the manager's
/// name resolves to, TCP connect and TLS handshake (through a proxy: the whole tunnel
/// and handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit for an accepted connection's TLS handshake (the manager sets its
/// `admission.handshake_timeout`).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn nodelay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// Dials the manager over TLS, optionally through an HTTP proxy.
#[derive(Debug, Clone)]
pub struct TlsDialer {
    host: String,
    port: u16,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    max_message_size: usize,
    proxy: Option<ProxyUrl>,
    timeout: Duration,
    pinned: Option<Vec<SocketAddr>>,
}

impl TlsDialer {
    /// A dialer for `host:port` that verifies the manager's certificate as `host`
    /// (an IP address or DNS name; IPv6 may be bracketed).
    pub fn new(
        host: impl Into<String>,
        port: u16,
        client_config: Arc<ClientConfig>,
        max_message_size: usize,
    ) -> Result<Self, TransportsError> {
        let host: String = host.into();
        let server_name = context::server_name(&host)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map_or(host.clone(), str::to_owned);
        Ok(Self {
            host,
            port,
            config: client_config,
            server_name,
            max_message_size,
            proxy: None,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            pinned: None,
        })
    }

    /// Connect to these addresses, in turn, instead of those the host name resolves
    /// to (the certificate is still verified as the host). For tests.
    #[doc(hidden)]
    pub fn with_addresses(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.pinned = Some(addrs);
        self
    }

    /// Tunnel through this HTTP proxy (`None`: connect directly).
    pub fn with_proxy(mut self, proxy: Option<ProxyUrl>) -> Self {
        self.proxy = proxy;
        self
    }

    /// Limit for name resolution and for each address tried (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]); through a proxy, for the whole dial.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn target(&self) -> String {
        host_port(&self.host, self.port)
    }

    fn timed_out(&self) -> TransportError {
        TransportError::Connect {
            target: self.describe(),
            reason: format!(
                "no TLS connection within {:.1}s",
                self.timeout.as_secs_f64()
            ),
        }
    }

    fn tcp_error(&self, e: &std::io::Error) -> TransportError {
        TransportError::Connect {
            target: self.target(),
            reason: e.to_string(),
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        remote: Option<SocketAddr>,
    ) -> Result<TlsTransport, TransportError> {
        nodelay(&tcp);
        TlsTransport::connect(
            tcp,
            Arc::clone(&self.config),
            self.server_name.clone(),
            remote,
            self.max_message_size,
        )
        .await
    }

    /// TCP to one of the manager's addresses, then TLS.
    async fn connect_at(&self, addr: SocketAddr) -> Result<TlsTransport, TransportError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| self.tcp_error(&e))?;
        let remote = tcp.peer_addr().ok();
        self.handshake(tcp, remote).await
    }

    /// Through the proxy (which resolves the name), then TLS.
    async fn connect_via(&self, p: &ProxyUrl) -> Result<TlsTransport, TransportError> {
        let tcp = proxy::connect_via(p, &self.host, self.port, self.timeout).await?;
        self.handshake(tcp, None).await
    }

    async fn connect(&self) -> Result<TlsTransport, TransportError> {
        if let Some(p) = &self.proxy {
            return tokio::time::timeout(self.timeout, self.connect_via(p))
                .await
                .unwrap_or_else(|_| Err(self.timed_out()));
        }
        let resolving = addrs::resolve(&self.host, self.port, self.pinned.as_deref());
        let addrs = match tokio::time::timeout(self.timeout, resolving).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(self.tcp_error(&e)),
            Err(_) => return Err(self.timed_out()),
        };
        addrs::each_address(
            &addrs,
            self.timeout,
            &self.target(),
            |addr| self.connect_at(addr),
            || self.timed_out(),
        )
        .await
    }
}

impl Dialer for TlsDialer {
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
        Box::pin(async move { self.connect().await.map(Transport::boxed) })
    }

    fn describe(&self) -> String {
        match &self.proxy {
            Some(p) => format!("tls://{} through proxy {p}", self.target()),
            None => format!("tls://{}", self.target()),
        }
    }
}

/// Accepts TLS connections on one TCP socket.
#[derive(Debug)]
pub struct TlsListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Arc<ServerConfig>,
    max_message_size: usize,
    handshake_timeout: Duration,
}

impl TlsListener {
    /// Bind `addr` (port 0 picks a free port; see [`Listener::local_addr`]).
    pub async fn bind(
        addr: SocketAddr,
        server_config: Arc<ServerConfig>,
        max_message_size: usize,
    ) -> Result<Self, TransportsError> {
        let bind_error = |source| TransportsError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            config: server_config,
            max_message_size,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Limit for each accepted connection's TLS handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

impl Listener for TlsListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Connecting, TransportError>> {
        Box::pin(async move { self.accept_incoming().await.map(|i| i.connecting) })
    }

    fn accept_incoming(&mut self) -> BoxFuture<'_, Result<Incoming, TransportError>> {
        Box::pin(async move {
            let (tcp, remote) =
                self.listener.accept().await.map_err(|e| {
                    TransportError::io(format!("accepting on {}", self.local_addr), e)
                })?;
            nodelay(&tcp);
            let config = Arc::clone(&self.config);
            let max = self.max_message_size;
            let limit = self.handshake_timeout;
            let connecting: Connecting = Box::pin(async move {
                let handshake = TlsTransport::accept(tcp, config, Some(remote), max);
                match tokio::time::timeout(limit, handshake).await {
                    Ok(result) => result.map(Transport::boxed),
                    Err(_) => Err(TransportError::Tls(format!(
                        "handshake with {remote}: no TLS handshake within {:.1}s",
                        limit.as_secs_f64()
                    ))),
                }
            });
            Ok(Incoming {
                remote_addr: Some(remote),
                connecting,
            })
        })
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Tls
    }

    fn describe(&self) -> String {
        format!("tls://{}", self.local_addr)
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.local_addr)
    }
}
