//! The agent's side: [`WsDialer`], for a [`WsUrl`] and the proxy
//! [`proxy_for`](super::proxy_for) chose.
//!
//! ```text
//!   TCP to the manager, or to the proxy + CONNECT host:port   (crate::proxy)
//!     └─ TLS, verified as the URL's host (wss:// only)        (tls::client_config)
//!          └─ GET PATH HTTP/1.1, Upgrade: websocket, + websocket.headers
//!               └─ 101 Switching Protocols → binary messages
//! ```
//!
//! Errors name the URL (never credentials: URLs carrying them are refused, put an
//! `Authorization` header in `websocket.headers` instead) and the step that failed:
//! DNS or TCP, the proxy and its status line, TLS, or the HTTP status of a refused
//! upgrade.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redpepper_core::error::TransportError;
use redpepper_core::transport::{BoxTransport, Dialer, PeerInfo, Transport, TransportKind};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Error as WsError;

use super::io::{Watched, WsIo};
use super::url::WsUrl;
use super::{websocket_config, WsTransport};
use crate::addrs;
use crate::error::TransportsError;
use crate::proxy::{self, ProxyUrl};

/// Default limit for a dial: name resolution, then for each address the URL's host
/// resolves to, TCP, TLS and the upgrade (through a proxy: the whole tunnel, TLS and
/// upgrade).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers `websocket.headers` may not set (`Host` it may: it replaces the one taken
/// from the URL): the handshake's own, which the WebSocket layer writes or checks in
/// the answer (a `Sec-WebSocket-Protocol` the manager does not echo fails the
/// upgrade; RedPepper negotiates no subprotocol nor extension), and the request's
/// framing (a GET upgrade has no body).
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "content-length",
    "transfer-encoding",
];

/// Dials the manager's WebSocket endpoint, optionally through an HTTP proxy.
#[derive(Clone)]
pub struct WsDialer {
    url: WsUrl,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    headers: HeaderMap,
    proxy: Option<ProxyUrl>,
    max_message_size: usize,
    timeout: Duration,
    pinned: Option<Vec<SocketAddr>>,
}

impl fmt::Debug for WsDialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("WsDialer")
            .field("target", &self.describe())
            .field("headers (values hidden)", &headers)
            .finish_non_exhaustive()
    }
}

impl WsDialer {
    /// A dialer for `url`. A `wss://` URL needs `client_config` (the agent's `tls_*`
    /// settings); the manager's certificate is verified as the URL's host.
    pub fn new(
        url: WsUrl,
        client_config: Option<Arc<ClientConfig>>,
        max_message_size: usize,
    ) -> Result<Self, TransportsError> {
        let tls = match (url.secure, client_config) {
            (false, _) => None,
            (true, None) => {
                return Err(TransportsError::setting(
                    "websocket.url",
                    "a wss:// URL needs a TLS client configuration",
                ))
            }
            (true, Some(config)) => {
                let name = crate::tls::server_name(&url.host).map_err(|_| {
                    TransportsError::setting(
                        "websocket.url",
                        format!("`{}` is neither an IP address nor a DNS name", url.host),
                    )
                })?;
                Some((config, name))
            }
        };
        Ok(Self {
            url,
            tls,
            headers: HeaderMap::new(),
            proxy: None,
            max_message_size,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            pinned: None,
        })
    }

    /// Connect to these addresses, in turn, instead of those the URL's host resolves
    /// to (the URL, `Host` and certificate name stay the host's). For tests.
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

    /// Extra headers for the upgrade request (`websocket.headers`). `Host` replaces the
    /// URL's; the handshake's own headers cannot be set.
    pub fn with_headers(
        mut self,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, TransportsError> {
        for (name, value) in headers {
            let bad = |why: String| TransportsError::setting("websocket.headers", why);
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(format!("`{name}` is not an HTTP header name")))?;
            if RESERVED_HEADERS.contains(&parsed.as_str()) {
                return Err(bad(format!(
                    "`{name}` belongs to the WebSocket handshake and cannot be set \
                     (reserved: Connection, Upgrade, Sec-WebSocket-*, Content-Length, \
                     Transfer-Encoding)"
                )));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| bad(format!("the value of `{name}` is not a valid header value")))?;
            self.headers.append(parsed, value);
        }
        Ok(self)
    }

    /// Limit for name resolution and for each address tried (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]); through a proxy, for the whole dial.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL this dialer connects to.
    pub fn url(&self) -> &WsUrl {
        &self.url
    }

    fn connect_error(&self, reason: impl Into<String>) -> TransportError {
        TransportError::Connect {
            target: self.describe(),
            reason: reason.into(),
        }
    }

    fn timed_out(&self) -> TransportError {
        self.connect_error(format!(
            "no WebSocket connection within {:.1}s",
            self.timeout.as_secs_f64()
        ))
    }

    async fn connect(&self) -> Result<WsTransport, TransportError> {
        let (host, port) = (self.url.host.as_str(), self.url.port);
        if let Some(p) = &self.proxy {
            let via = async {
                let tcp = proxy::connect_via(p, host, port, self.timeout).await?;
                self.upgrade(tcp, None).await
            };
            return tokio::time::timeout(self.timeout, via)
                .await
                .unwrap_or_else(|_| Err(self.timed_out()));
        }
        let resolving = addrs::resolve(host, port, self.pinned.as_deref());
        let addrs = match tokio::time::timeout(self.timeout, resolving).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(self.connect_error(e.to_string())),
            Err(_) => return Err(self.timed_out()),
        };
        let at = |addr: SocketAddr| async move {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| self.connect_error(e.to_string()))?;
            let remote = tcp.peer_addr().ok();
            self.upgrade(tcp, remote).await
        };
        addrs::each_address(&addrs, self.timeout, &self.describe(), at, || {
            self.timed_out()
        })
        .await
    }

    /// Over a connected `tcp` (direct, or a proxy tunnel): TLS for `wss://`, then the
    /// WebSocket upgrade.
    async fn upgrade(
        &self,
        tcp: TcpStream,
        remote: Option<SocketAddr>,
    ) -> Result<WsTransport, TransportError> {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let io = match &self.tls {
            None => WsIo::Plain(tcp),
            Some((config, name)) => {
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        TransportError::Tls(format!("handshake with {}: {e}", self.url))
                    })?;
                WsIo::Tls(Box::new(tls.into()))
            }
        };
        let mut request = self
            .url
            .uri
            .clone()
            .into_client_request()
            .map_err(|e| self.connect_error(format!("building the upgrade request: {e}")))?;
        for (name, value) in &self.headers {
            if name == header::HOST {
                request.headers_mut().insert(name, value.clone());
            } else {
                request.headers_mut().append(name, value.clone());
            }
        }
        let config = websocket_config(self.max_message_size);
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, Watched::new(io), Some(config))
                .await
                .map_err(|e| self.upgrade_error(e))?;
        let peer = PeerInfo::new(TransportKind::WebSocket, remote);
        let label = match remote {
            Some(addr) => format!("{} ({addr})", self.url),
            None => self.describe(),
        };
        Ok(WsTransport::from_stream(
            ws,
            peer,
            &label,
            self.max_message_size,
        ))
    }

    fn upgrade_error(&self, e: WsError) -> TransportError {
        let plain_hint = if self.url.secure {
            ""
        } else {
            " (if the endpoint serves TLS, use a wss:// URL)"
        };
        let reason = match e {
            WsError::Http(response) => {
                let status = response.status();
                let hint = match status.as_u16() {
                    404 => " (is the path in websocket.url right?)",
                    301 | 302 | 303 | 307 | 308 => {
                        " (redirects are not followed: put the final address in websocket.url)"
                    }
                    502..=504 => " (the reverse proxy cannot reach the manager?)",
                    _ => "",
                };
                format!("the server answered {status} to the WebSocket upgrade{hint}")
            }
            other => format!("WebSocket handshake: {other}{plain_hint}"),
        };
        self.connect_error(reason)
    }
}

impl Dialer for WsDialer {
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
        Box::pin(async move { self.connect().await.map(Transport::boxed) })
    }

    fn describe(&self) -> String {
        match &self.proxy {
            Some(p) => format!("{} through proxy {p}", self.url),
            None => self.url.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn headers_are_checked() {
        let url = WsUrl::parse("ws://m/x").unwrap();
        let d = WsDialer::new(url, None, 1024).unwrap();
        let ok: BTreeMap<String, String> = [
            ("Authorization".to_owned(), "Bearer t".to_owned()),
            ("Host".to_owned(), "front".to_owned()),
        ]
        .into();
        let d = d.with_headers(&ok).unwrap();
        assert!(!format!("{d:?}").contains("Bearer"));
        for (name, value) in [
            ("Upgrade", "h2c"),
            ("Sec-WebSocket-Key", "x"),
            ("bad name", "v"),
            ("X", "a\nb"),
        ] {
            let one: BTreeMap<String, String> = [(name.to_owned(), value.to_owned())].into();
            let e = d.clone().with_headers(&one).unwrap_err();
            assert!(e.to_string().starts_with("websocket.headers: "), "{e}");
        }
        for name in [
            "Sec-WebSocket-Protocol",
            "sec-websocket-accept",
            "Content-Length",
            "Transfer-Encoding",
        ] {
            let one: BTreeMap<String, String> = [(name.to_owned(), "v".to_owned())].into();
            let e = d.clone().with_headers(&one).unwrap_err().to_string();
            assert!(e.starts_with("websocket.headers: "), "{e}");
            assert!(e.contains(&format!("`{name}`")), "{e}");
            assert!(e.contains("handshake"), "{e}");
        }
        let wss = WsUrl::parse("wss://m/x").unwrap();
        assert!(WsDialer::new(wss, None, 1).is_err());
    }
}
