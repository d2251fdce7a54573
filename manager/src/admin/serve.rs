//! The admin listener: TCP (optionally TLS) connections handed to `axum::serve`.
//!
//! ```text
//!  accept task ──TcpStream──▶ plain: straight on
//!       │                     TLS:   handshake on its own task (bounded by 10 s)
//!       ▼
//!  bounded channel of ready connections ──▶ AdminListener::accept ──▶ axum::serve
//! ```
//!
//! A slow or stuck TLS handshake never delays other clients, and a client that never
//! finishes its handshake is dropped after the bound.

use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::{IncomingStream, Listener};
use redpepper_transports::admin_tls::AdminTlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{router, AdminError, AdminSettings};
use crate::Manager;

/// Longest TLS handshake on the admin listener.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer address of an admin connection (what `ConnectInfo` carries).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

struct AdminListener {
    ready: mpsc::Receiver<(Box<dyn Io>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener for AdminListener {
    type Io = Box<dyn Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended (shutdown): serve no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, AdminListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, AdminListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// A running admin API.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    tls: bool,
    shutdown: CancellationToken,
    serve: JoinHandle<()>,
}

impl AdminServer {
    /// Bind `settings.bind` and serve the API for `manager` until
    /// [`AdminServer::shutdown`].
    pub async fn start(settings: AdminSettings, manager: Manager) -> Result<Self, AdminError> {
        let acceptor = settings
            .tls
            .as_ref()
            .map(AdminTlsAcceptor::new)
            .transpose()?;
        let tcp = TcpListener::bind(&settings.bind)
            .await
            .map_err(|source| AdminError::Bind {
                addr: settings.bind.clone(),
                source,
            })?;
        let local_addr = tcp.local_addr().map_err(|source| AdminError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let shutdown = CancellationToken::new();
        let (tx, ready) = mpsc::channel(256);
        tokio::spawn(accept_loop(tcp, acceptor.clone(), tx, shutdown.clone()));
        let app = router(manager, settings.token, shutdown.clone())
            .into_make_service_with_connect_info::<PeerAddr>();
        let listener = AdminListener {
            ready,
            local: local_addr,
        };
        let stop = shutdown.clone();
        let serve = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "admin API server failed");
            }
        });
        let server = Self {
            local_addr,
            tls: acceptor.is_some(),
            shutdown,
            serve,
        };
        tracing::info!(url = %server.url(), "admin API listening");
        Ok(server)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stop accepting, end event streams, and wait (at most 5 s) for requests in
    /// progress.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let mut serve = self.serve;
        if tokio::time::timeout(Duration::from_secs(5), &mut serve)
            .await
            .is_err()
        {
            serve.abort();
        }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Option<AdminTlsAcceptor>,
    ready: mpsc::Sender<(Box<dyn Io>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                // Out of file descriptors and the like: give it a moment, never spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                if ready.send((Box::new(stream), peer)).await.is_err() {
                    break;
                }
            }
            Some(acceptor) => {
                tokio::spawn(handshake(acceptor.clone(), stream, peer, ready.clone()));
            }
        }
    }
}

async fn handshake(
    acceptor: AdminTlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    ready: mpsc::Sender<(Box<dyn Io>, SocketAddr)>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let _ = ready.send((Box::new(tls), peer)).await;
        }
        Ok(Err(e)) => tracing::info!(%peer, error = %e, "admin TLS handshake failed"),
        Err(_) => tracing::info!(%peer, "admin TLS handshake timed out"),
    }
}
