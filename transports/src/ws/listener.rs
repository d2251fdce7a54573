//! [`WsListener`]: the manager's WebSocket endpoint on one TCP socket.
//!
//! `accept` only accepts the TCP connection; TLS, the HTTP request and the upgrade run
//! in the returned [`Connecting`] future, limited by the handshake timeout, so a slow
//! or silent client never holds up the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ipnet::IpNet;
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Connecting, Incoming, Listener, Transport, TransportKind};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::accept::{self, ServerSide};
use crate::error::TransportsError;

/// Default limit for an accepted connection's TLS handshake, HTTP request and upgrade
/// (the manager sets its `admission.handshake_timeout`).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`WsListener`] serves its endpoint.
#[derive(Debug, Clone)]
pub struct WsServerOptions {
    /// The endpoint's HTTP path (`websocket.path`, default `/redpepper`).
    pub path: String,
    /// Serve `wss://` with this TLS configuration; `None` serves plain `ws://` (behind
    /// a TLS-terminating reverse proxy).
    pub tls: Option<Arc<ServerConfig>>,
    /// Networks of reverse proxies whose `X-Forwarded-For` / `Forwarded` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest message accepted or sent.
    pub max_message_size: usize,
}

impl WsServerOptions {
    /// Options for `path` with no TLS and no trusted proxies.
    pub fn new(path: impl Into<String>, max_message_size: usize) -> Self {
        Self {
            path: path.into(),
            tls: None,
            trusted_proxies: Vec::new(),
            max_message_size,
        }
    }
}

/// Accepts WebSocket connections (`ws://` or `wss://`) on one TCP socket.
#[derive(Debug)]
pub struct WsListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    side: Arc<ServerSide>,
    handshake_timeout: Duration,
}

impl WsListener {
    /// Bind `addr` (port 0 picks a free port; see [`Listener::local_addr`]).
    pub async fn bind(addr: SocketAddr, options: WsServerOptions) -> Result<Self, TransportsError> {
        if !options.path.starts_with('/') {
            return Err(TransportsError::setting(
                "websocket.path",
                format!("`{}` must start with `/`", options.path),
            ));
        }
        let bind_error = |source| TransportsError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let side = ServerSide {
            path: options.path,
            tls: options.tls.map(TlsAcceptor::from),
            trusted_proxies: options.trusted_proxies,
            max_message_size: options.max_message_size,
        };
        Ok(Self {
            listener,
            local_addr,
            side: Arc::new(side),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Limit for each accepted connection's handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The endpoint's URL as clients reach it directly (`wss://ADDR/PATH`).
    pub fn url(&self) -> String {
        let scheme = if self.side.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.local_addr, self.side.path)
    }
}

impl Listener for WsListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Connecting, TransportError>> {
        Box::pin(async move { self.accept_incoming().await.map(|i| i.connecting) })
    }

    fn accept_incoming(&mut self) -> BoxFuture<'_, Result<Incoming, TransportError>> {
        Box::pin(async move {
            let (tcp, remote) =
                self.listener.accept().await.map_err(|e| {
                    TransportError::io(format!("accepting on {}", self.local_addr), e)
                })?;
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let side = Arc::clone(&self.side);
            let limit = self.handshake_timeout;
            let connecting: Connecting = Box::pin(async move {
                match tokio::time::timeout(limit, accept::accept(tcp, remote, side)).await {
                    Ok(result) => result.map(Transport::boxed),
                    Err(_) => Err(TransportError::Protocol(format!(
                        "WebSocket handshake with {remote}: not finished within {:.1}s",
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
        TransportKind::WebSocket
    }

    fn describe(&self) -> String {
        self.url()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.local_addr)
    }
}
