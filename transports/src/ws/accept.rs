//! The manager's side of the handshake: TLS (when `tls: true`), the HTTP request, the
//! WebSocket upgrade, and the client's address.
//!
//! The request head is read here, bounded by [`MAX_REQUEST_HEAD`], and answered
//! before tungstenite sees the connection, so requests that are not an upgrade get a
//! proper HTTP answer instead of a dropped connection:
//!
//! | request                                | answer                                        |
//! |----------------------------------------|-----------------------------------------------|
//! | another path                           | `404 Not Found`                               |
//! | `path`, not GET/HEAD                   | `405 Method Not Allowed`                      |
//! | `path`, GET without `Upgrade: websocket` | `426 Upgrade Required`, plain text naming the endpoint |
//! | `path`, a broken upgrade               | `400 Bad Request` with the reason             |
//! | head over [`MAX_REQUEST_HEAD`] / too many headers | `431`                              |
//! | `path`, a valid upgrade                | `101 Switching Protocols` (tungstenite's)     |
//!
//! Bytes the client sent after its request head (its first frames) are handed to
//! tungstenite with the connection, so nothing is lost.

use std::net::SocketAddr;
use std::sync::Arc;

use ipnet::IpNet;
use redpepper_core::error::TransportError;
use redpepper_core::quiet::printable;
use redpepper_core::transport::{PeerInfo, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{create_response, write_response};
use tokio_tungstenite::tungstenite::http::{self, HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::forwarded;
use super::head::{Head, HeadBuf};
use super::io::{Watched, WsIo};
use super::{websocket_config, WsTransport};

/// Largest accepted HTTP request head (request line and headers).
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Most headers accepted in the request head.
pub(crate) const MAX_HEADERS: usize = 64;

/// What an accepted connection needs to finish its handshake.
pub(crate) struct ServerSide {
    pub(crate) path: String,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) max_message_size: usize,
}

impl std::fmt::Debug for ServerSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSide")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

/// A request that is not (or not a valid) upgrade to our endpoint, and our answer.
pub(crate) struct Refusal {
    pub(crate) status: http::StatusCode,
    extra_headers: &'static str,
    body: String,
    /// Answer to a HEAD request: headers only.
    head_only: bool,
    /// What the log line says.
    pub(crate) why: String,
}

/// Run the server handshake on an accepted TCP connection from `remote`.
pub(crate) async fn accept(
    tcp: TcpStream,
    remote: SocketAddr,
    side: Arc<ServerSide>,
) -> Result<WsTransport, TransportError> {
    let mut io = match &side.tls {
        Some(acceptor) => {
            let tls = acceptor
                .accept(tcp)
                .await
                .map_err(|e| TransportError::Tls(format!("handshake with {remote}: {e}")))?;
            WsIo::Tls(Box::new(tls.into()))
        }
        None => WsIo::Plain(tcp),
    };
    let (buf, head_len) = read_head(&mut io, remote).await?;
    let request = match parse_request(&buf[..head_len], &side.path) {
        Ok(request) => request,
        Err(refusal) => return Err(refuse(&mut io, remote, refusal).await),
    };
    let response = match create_response(&request) {
        Ok(response) => response,
        Err(e) => {
            let refusal = Refusal {
                status: http::StatusCode::BAD_REQUEST,
                extra_headers: "",
                body: format!("Bad WebSocket upgrade request: {e}\n"),
                head_only: false,
                why: format!("bad WebSocket upgrade request: {e}"),
            };
            return Err(refuse(&mut io, remote, refusal).await);
        }
    };
    let mut answer = Vec::with_capacity(256);
    write_response(&mut answer, &response)
        .map_err(|e| TransportError::Other(format!("writing the upgrade answer: {e}")))?;
    io.write_all(&answer)
        .await
        .map_err(|e| TransportError::io(format!("answering the upgrade of {remote}"), e))?;
    io.flush()
        .await
        .map_err(|e| TransportError::io(format!("answering the upgrade of {remote}"), e))?;

    let client = forwarded::client_addr(remote, request.headers(), &side.trusted_proxies);
    let label = if client == remote {
        remote.to_string()
    } else {
        format!("{client} (through {remote})")
    };
    let mut peer = PeerInfo::new(TransportKind::WebSocket, Some(client));
    peer.client_cert_subject = io.client_cert_subject();
    let tail = buf[head_len..].to_vec();
    let config = websocket_config(side.max_message_size);
    let ws =
        WebSocketStream::from_partially_read(Watched::new(io), tail, Role::Server, Some(config))
            .await;
    Ok(WsTransport::from_stream(
        ws,
        peer,
        &label,
        side.max_message_size,
    ))
}

/// Read until the end of the request head; returns what was read and the head's
/// length (bytes after it belong to the WebSocket stream). The head is parsed only
/// when it can have ended (see [`HeadBuf`]).
async fn read_head(io: &mut WsIo, remote: SocketAddr) -> Result<(Vec<u8>, usize), TransportError> {
    let mut head = HeadBuf::new();
    let mut chunk = [0u8; 2048];
    loop {
        let n = io
            .read(&mut chunk)
            .await
            .map_err(|e| TransportError::io(format!("reading the HTTP request of {remote}"), e))?;
        if n == 0 {
            return Err(TransportError::Protocol(format!(
                "{remote} closed the connection before finishing its HTTP request"
            )));
        }
        let refusal = match head.push(&chunk[..n]) {
            Head::Complete(len) => return Ok((head.into_bytes(), len)),
            Head::Partial => continue,
            Head::TooLarge => Refusal {
                status: http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                extra_headers: "",
                body: "Request header too large\n".to_owned(),
                head_only: false,
                why: format!(
                    "HTTP request head over {MAX_REQUEST_HEAD} bytes or {MAX_HEADERS} headers"
                ),
            },
            Head::Bad(e) => Refusal {
                status: http::StatusCode::BAD_REQUEST,
                extra_headers: "",
                body: "Bad HTTP request\n".to_owned(),
                head_only: false,
                why: format!("not an HTTP request ({e})"),
            },
        };
        return Err(refuse(io, remote, refusal).await);
    }
}

/// The request in `head` (a complete head) as an `http::Request`, if it asks to
/// upgrade to our endpoint.
pub(crate) fn parse_request(head: &[u8], path: &str) -> Result<http::Request<()>, Refusal> {
    let bad = |why: String| Refusal {
        status: http::StatusCode::BAD_REQUEST,
        extra_headers: "",
        body: "Bad HTTP request\n".to_owned(),
        head_only: false,
        why,
    };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    req.parse(head)
        .map_err(|e| bad(format!("not an HTTP request ({e})")))?;
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let requested = target.split(['?', '#']).next().unwrap_or("");
    if requested != path {
        return Err(Refusal {
            status: http::StatusCode::NOT_FOUND,
            extra_headers: "",
            body: "Not Found\n".to_owned(),
            head_only: method == "HEAD",
            why: format!(
                "{} {:?} is not the WebSocket path",
                printable(method),
                printable(requested)
            ),
        });
    }
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| bad(format!("bad header name {:?}", printable(h.name))))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| bad(format!("bad value of header {}", printable(name.as_str()))))?;
        headers.append(name, value);
    }
    let upgrade = headers
        .get_all(http::header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
    if !upgrade {
        if method != "GET" && method != "HEAD" {
            return Err(Refusal {
                status: http::StatusCode::METHOD_NOT_ALLOWED,
                extra_headers: "Allow: GET\r\n",
                body: "Method Not Allowed\n".to_owned(),
                head_only: false,
                why: format!("{} {path} is not a WebSocket upgrade", printable(method)),
            });
        }
        return Err(Refusal {
            status: http::StatusCode::UPGRADE_REQUIRED,
            extra_headers: "Upgrade: websocket\r\n",
            body: format!(
                "RedPepper WebSocket endpoint: connect with a WebSocket client at {path}\n"
            ),
            head_only: method == "HEAD",
            why: format!(
                "{} {path} without Upgrade: websocket (not a WebSocket client)",
                printable(method)
            ),
        });
    }
    let uri = target
        .parse::<http::Uri>()
        .map_err(|e| bad(format!("bad request target: {e}")))?;
    let mut request = http::Request::new(());
    *request.method_mut() = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| bad(format!("bad method {:?}", printable(method))))?;
    *request.uri_mut() = uri;
    *request.version_mut() = match req.version {
        Some(1) => http::Version::HTTP_11,
        _ => http::Version::HTTP_10,
    };
    *request.headers_mut() = headers;
    Ok(request)
}

/// Answer `refusal` (best effort), close, and return the error to report.
async fn refuse(io: &mut WsIo, remote: SocketAddr, refusal: Refusal) -> TransportError {
    let status = refusal.status;
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{}Connection: close\r\n\r\n{}",
        refusal.body.len(),
        refusal.extra_headers,
        if refusal.head_only { "" } else { &refusal.body }
    );
    if let Err(e) = async {
        io.write_all(answer.as_bytes()).await?;
        io.shutdown().await
    }
    .await
    {
        tracing::debug!(%remote, error = %e, "answering a refused HTTP request");
    }
    TransportError::Protocol(format!(
        "HTTP request from {remote} refused with {status}: {}",
        refusal.why
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/redpepper";

    fn status(head: &str) -> http::StatusCode {
        match parse_request(head.as_bytes(), PATH) {
            Ok(_) => http::StatusCode::SWITCHING_PROTOCOLS,
            Err(r) => r.status,
        }
    }

    #[test]
    fn answers_by_path_method_and_upgrade() {
        let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        assert_eq!(
            status(&format!(
                "GET /redpepper?x=1 HTTP/1.1\r\nHost: m\r\n{upgrade}"
            )),
            http::StatusCode::SWITCHING_PROTOCOLS
        );
        assert_eq!(
            status(&format!("GET /other HTTP/1.1\r\nHost: m\r\n{upgrade}")),
            http::StatusCode::NOT_FOUND
        );
        assert_eq!(
            status("GET /redpepper HTTP/1.1\r\nHost: m\r\n\r\n"),
            http::StatusCode::UPGRADE_REQUIRED
        );
        assert_eq!(
            status("POST /redpepper HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\n\r\n"),
            http::StatusCode::METHOD_NOT_ALLOWED
        );
        let refusal = parse_request(b"GET /redpepper HTTP/1.0\r\n\r\n", PATH).err();
        let body = refusal.map(|r| r.body).unwrap_or_default();
        assert_eq!(
            body,
            "RedPepper WebSocket endpoint: connect with a WebSocket client at /redpepper\n"
        );
    }

    #[test]
    fn upgrade_validation_is_tungstenites() {
        let head = "GET /redpepper HTTP/1.1\r\nHost: m\r\nConnection: Upgrade\r\n\
                    Upgrade: websocket\r\nSec-WebSocket-Version: 8\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let request = parse_request(head.as_bytes(), PATH).ok();
        assert!(request.is_some_and(|r| create_response(&r).is_err()));
    }

    #[test]
    fn log_text_is_bounded_and_escaped() {
        assert_eq!(printable("a\nb"), "a\\nb");
        assert!(printable(&"x".repeat(500)).len() < 200);
    }

    /// Found by the `ws_head` property test (`tests/it/fuzz.rs`): a method of kilobytes
    /// went whole into the refusal's log text.
    #[test]
    fn long_methods_are_cut_in_the_log_text() {
        let method = "M".repeat(10_000);
        for head in [
            format!("{method} /other HTTP/1.1\r\n\r\n"),
            format!("{method} /redpepper HTTP/1.1\r\n\r\n"),
        ] {
            let why = parse_request(head.as_bytes(), PATH)
                .err()
                .map(|r| r.why)
                .unwrap_or_default();
            assert!(
                !why.is_empty() && why.len() < 300,
                "{} bytes: {why:.80}",
                why.len()
            );
        }
    }
}
