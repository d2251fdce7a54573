//! The admin listener: TCP (optionally TLS) connections, each served by hyper's HTTP/1
//! server on its own task, with timers and a cap on open connections.
//!
//! ```text
//!  accept task: wait for a free slot (at most MAX_CONNECTIONS open) ─▶ accept
//!       │
//!       ▼  one task per connection (holding its slot until it ends)
//!  TLS handshake (bounded by 10 s) ─▶ hyper HTTP/1 with header_read_timeout ─▶ router
//! ```
//!
//! - A slow or stuck TLS handshake never delays other clients, and one that never
//!   finishes is dropped after [`HANDSHAKE_TIMEOUT`].
//! - A client must send a complete request header within [`HEADER_READ_TIMEOUT`] of
//!   opening the connection or of its previous response: slow-header clients
//!   (slowloris) and idle keep-alive connections are closed after it.
//! - At most [`MAX_CONNECTIONS`] connections are open at once (event streams
//!   included); further clients wait in the listen backlog until one closes.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use redpepper_transports::admin_tls::AdminTlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service as _;

use super::{app, AdminError, AdminSettings, AdminStats};
use crate::Manager;

/// Failed or timed-out admin TLS handshakes (peer-provoked: rate-limited).
static HANDSHAKE_FAILED: redpepper_core::quiet::LogLimit =
    redpepper_core::quiet::LogLimit::new(redpepper_core::quiet::DEFAULT_INTERVAL, 1);

/// Longest TLS handshake on the admin listener.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a complete request header (also the idle keep-alive limit).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most admin connections open at once.
const MAX_CONNECTIONS: usize = 1024;
/// How long [`AdminServer::shutdown`] lets requests in progress finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The peer address of an admin connection (what `ConnectInfo` carries).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The listener's bounds (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) handshake_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// A running admin API.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    tls: bool,
    shutdown: CancellationToken,
    stop: CancellationToken,
    accept: JoinHandle<()>,
    connections: TaskTracker,
}

/// What every connection task needs.
#[derive(Clone)]
struct Ctx {
    app: Router,
    tls: Option<AdminTlsAcceptor>,
    limits: Limits,
    stats: Arc<AdminStats>,
    /// Graceful: finish the request in progress, then close.
    shutdown: CancellationToken,
    /// Hard: drop the connection now.
    stop: CancellationToken,
}

impl AdminServer {
    /// Bind `settings.bind` and serve the API for `manager` until
    /// [`AdminServer::shutdown`].
    pub async fn start(settings: AdminSettings, manager: Manager) -> Result<Self, AdminError> {
        Self::start_with(settings, manager, Limits::default()).await
    }

    pub(crate) async fn start_with(
        settings: AdminSettings,
        manager: Manager,
        limits: Limits,
    ) -> Result<Self, AdminError> {
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
        let stats = Arc::new(AdminStats::default());
        let ctx = Ctx {
            app: app(
                manager,
                settings.token,
                super::console::Console::new(settings.console, acceptor.is_some()),
                shutdown.clone(),
                stats.clone(),
                settings.fleet.as_ref(),
            ),
            tls: acceptor.clone(),
            limits,
            stats,
            shutdown: shutdown.clone(),
            stop: CancellationToken::new(),
        };
        let connections = TaskTracker::new();
        let server = Self {
            local_addr,
            tls: acceptor.is_some(),
            shutdown,
            stop: ctx.stop.clone(),
            accept: tokio::spawn(accept_loop(tcp, ctx, connections.clone())),
            connections,
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
    /// progress; connections still open then are dropped.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.accept.await;
        self.connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.connections.wait())
            .await
            .is_err()
        {
            self.stop.cancel();
            self.connections.wait().await;
        }
    }
}

async fn accept_loop(tcp: TcpListener, ctx: Ctx, connections: TaskTracker) {
    let slots = Arc::new(Semaphore::new(ctx.limits.max_connections.max(1)));
    loop {
        // Take a slot first: at the cap, new clients wait in the listen backlog.
        let slot = tokio::select! {
            () = ctx.shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = ctx.shutdown.cancelled() => break,
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
        connections.spawn(connection(stream, peer, ctx.clone(), slot));
    }
}

/// One connection, from the TLS handshake to its end; `slot` is freed when it ends.
async fn connection(stream: TcpStream, peer: SocketAddr, ctx: Ctx, slot: OwnedSemaphorePermit) {
    let _slot = slot;
    ctx.stats.connections.fetch_add(1, Ordering::Relaxed);
    let _open = OpenConnection(ctx.stats.clone());
    match ctx.tls.clone() {
        None => serve(stream, peer, &ctx).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                () = ctx.shutdown.cancelled() => return,
                h = tokio::time::timeout(ctx.limits.handshake_timeout, acceptor.accept(stream)) => h,
            };
            match handshake {
                Ok(Ok(tls)) => serve(tls, peer, &ctx).await,
                Ok(Err(e)) => {
                    if let Some(others) = HANDSHAKE_FAILED.admit() {
                        tracing::info!(%peer, error = %e, others_since_last_report = others, "admin TLS handshake failed");
                    }
                }
                Err(_) => {
                    if let Some(others) = HANDSHAKE_FAILED.admit() {
                        tracing::info!(%peer, others_since_last_report = others, "admin TLS handshake timed out");
                    }
                }
            }
        }
    }
}

/// Counts an open connection in [`AdminStats::connections`] while it lives.
struct OpenConnection(Arc<AdminStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve<I>(io: I, peer: SocketAddr, ctx: &Ctx)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = ctx.app.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        app.clone().call(request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(ctx.limits.header_read_timeout)
        .keep_alive(true);
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => result,
                () = ctx.stop.cancelled() => return,
            }
        }
    };
    if let Err(e) = result {
        // Header timeouts, resets and malformed requests: the client's problem.
        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
    }
}
