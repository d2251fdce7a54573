//! Fixtures of the WebSocket transport tests: loopback listeners, dialers, a raw
//! tungstenite client (to send what our writer never would) and raw HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;

use redpepper_config::TlsConfig;
use redpepper_core::transport::{BoxTransport, Dialer, Listener};
use redpepper_transports::tls::{client_config, server_config};
use redpepper_transports::ws::{websocket_config, WsDialer, WsListener, WsServerOptions, WsUrl};
use redpepper_transports::TransportsError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

pub const PATH: &str = "/redpepper";

/// A listener on 127.0.0.1:0 serving `PATH`, wss when `tls` is given.
pub async fn listener(tls: Option<&TlsConfig>, max: usize, trusted: &[&str]) -> WsListener {
    let options = WsServerOptions {
        path: PATH.to_owned(),
        tls: tls.map(|t| server_config(t).unwrap()),
        trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
        max_message_size: max,
    };
    WsListener::bind("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap()
}

pub fn addr(l: &WsListener) -> SocketAddr {
    l.local_addr().unwrap()
}

/// `ws://` or `wss://localhost:PORT` + `path` (the dev certificate names localhost).
pub fn url(l: &WsListener, secure: bool, path: &str) -> WsUrl {
    let scheme = if secure { "wss" } else { "ws" };
    WsUrl::parse(&format!("{scheme}://localhost:{}{path}", addr(l).port())).unwrap()
}

/// A dialer for `l` (wss with the agent settings `tls`, ws without).
pub fn dialer(l: &WsListener, tls: Option<&TlsConfig>, max: usize) -> WsDialer {
    dialer_for(url(l, tls.is_some(), PATH), tls, max)
}

pub fn dialer_for(url: WsUrl, tls: Option<&TlsConfig>, max: usize) -> WsDialer {
    WsDialer::new(url, tls.map(|t| client_config(t).unwrap()), max).unwrap()
}

/// Accept one connection and finish its handshake.
pub async fn accept_one(
    l: &mut WsListener,
) -> Result<BoxTransport, redpepper_core::TransportError> {
    l.accept().await?.await
}

/// A connected (client, server) pair.
pub async fn pair(l: &mut WsListener, d: &WsDialer) -> (BoxTransport, BoxTransport) {
    let (client, server) = tokio::join!(d.dial(), accept_one(l));
    (client.unwrap(), server.unwrap())
}

pub type RawWs = WebSocketStream<TcpStream>;

/// A tungstenite client over plain TCP with no size limits, and its server side.
pub async fn raw_pair(l: &mut WsListener) -> (RawWs, BoxTransport) {
    let addr = addr(l);
    let url = format!("ws://127.0.0.1:{}{PATH}", addr.port());
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config = websocket_config(usize::MAX)
            .max_message_size(None)
            .max_frame_size(None);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), tcp, Some(config))
            .await
            .unwrap();
        ws
    };
    let (client, server) = tokio::join!(client, accept_one(l));
    let server = server.unwrap_or_else(|e| panic!("accepting from a raw client on {addr}: {e}"));
    (client, server)
}

/// Send `request` over plain TCP and read the whole answer (the server closes).
pub async fn http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

pub fn is_setting_error(e: &TransportsError, key: &str) -> bool {
    matches!(e, TransportsError::Setting { key: k, .. } if *k == key)
}
