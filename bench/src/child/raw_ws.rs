//! The raw WebSocket baseline: tokio-tungstenite over tokio-rustls with the same
//! certificates and rustls configurations as our transports (built from the same
//! `tls_*` settings), binary messages, default tungstenite settings, no session layer
//! and none of our WebSocket transport's code. The halves have the shape of our
//! transports' halves (a stream and a sink of whole payloads) so the raw echo
//! server and client of [`super::raw`] run on them unchanged.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use futures::{future, SinkExt, StreamExt, TryStreamExt};
use redpepper_config::{AgentConfig, ManagerConfig};
use redpepper_core::transport::{BoxReader, BoxWriter};
use redpepper_core::TransportError;
use redpepper_transports::tls::{client_config, server_config, server_name};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

fn ws_error(e: WsError) -> TransportError {
    TransportError::Protocol(format!("websocket: {e}"))
}

/// Halves of any WebSocket stream, as payload stream and sink.
fn halves<S>(ws: S) -> (BoxReader, BoxWriter)
where
    S: futures::Stream<Item = Result<Message, WsError>>
        + futures::Sink<Message, Error = WsError>
        + Send
        + 'static,
{
    let (sink, stream) = ws.split();
    let reader = stream.map_err(ws_error).try_filter_map(|m| {
        future::ready(Ok(match m {
            Message::Binary(b) => Some(b),
            _ => None,
        }))
    });
    let writer = sink
        .sink_map_err(ws_error)
        .with(|b: Bytes| future::ready(Ok::<_, TransportError>(Message::Binary(b))));
    (Box::pin(reader), Box::pin(writer))
}

/// Bind on loopback (port 0); the listener and its port.
pub async fn bind() -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Accept one client: TCP, TLS with the manager's certificate (unless `tls` is
/// false: plain `ws://` behind nginx), WebSocket upgrade.
pub async fn accept(
    listener: TcpListener,
    config: &ManagerConfig,
    tls: bool,
) -> anyhow::Result<(BoxReader, BoxWriter)> {
    let acceptor = TlsAcceptor::from(server_config(&config.tls)?);
    let (tcp, _) = listener.accept().await?;
    tcp.set_nodelay(true)?;
    if !tls {
        let ws = tokio_tungstenite::accept_async(tcp)
            .await
            .context("WebSocket upgrade")?;
        return Ok(halves(ws));
    }
    let tls = acceptor.accept(tcp).await.context("TLS handshake")?;
    let ws = tokio_tungstenite::accept_async(tls)
        .await
        .context("WebSocket upgrade")?;
    Ok(halves(ws))
}

/// Dial `port` on loopback: TCP, TLS verified with the agent's CA, upgrade.
pub async fn connect(port: u16, config: &AgentConfig) -> anyhow::Result<(BoxReader, BoxWriter)> {
    let connector = TlsConnector::from(client_config(&config.tls)?);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(server_name("127.0.0.1")?, tcp)
        .await
        .context("TLS handshake")?;
    let url = format!("wss://127.0.0.1:{port}/raw");
    let (ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .context("WebSocket upgrade")?;
    Ok(halves(ws))
}
