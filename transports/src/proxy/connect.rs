//! The HTTP `CONNECT` step: ask a proxy for a tunnel to the real destination.
//!
//! ```text
//! agent ──TCP──▶ proxy           CONNECT manager:7051 HTTP/1.1
//!                                Host: manager:7051
//!                                Proxy-Authorization: Basic …   (if credentials)
//!        ◀──────────────────────  HTTP/1.1 200 Connection established
//!                                (headers) CRLF CRLF
//! agent ◀═════ tunnel ═════▶ manager   (TLS or WebSocket handshake follows)
//! ```
//!
//! The answer is read one byte at a time so that nothing after its blank line (the
//! first bytes of the tunnelled protocol) is consumed; its size is bounded by
//! [`MAX_RESPONSE_HEAD`].

use std::time::Duration;

use redpepper_core::error::TransportError;
use redpepper_core::quiet::printable;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::url::{host_port, ProxyUrl};

/// Largest proxy answer head (status line and headers) accepted.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Open a TCP connection to `proxy` and tunnel it to `host:port`, within `timeout`.
///
/// The returned stream is connected to the destination through the proxy; nothing of
/// the destination's bytes has been read.
pub async fn connect_via(
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, TransportError> {
    let target = tunnel_label(proxy, host, port);
    let attempt = async {
        let mut tcp = TcpStream::connect((proxy.host(), proxy.port()))
            .await
            .map_err(|e| TransportError::Connect {
                target: target.clone(),
                reason: format!("cannot reach the proxy: {e}"),
            })?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on the proxy connection");
        }
        http_connect(&mut tcp, proxy, host, port).await?;
        Ok(tcp)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| TransportError::Connect {
            target: target.clone(),
            reason: format!("no tunnel within {:.1}s", timeout.as_secs_f64()),
        })?
}

/// "host:port through proxy http://proxy:port" (never with credentials).
fn tunnel_label(proxy: &ProxyUrl, host: &str, port: u16) -> String {
    format!("{} through proxy {proxy}", host_port(host, port))
}

/// Run `CONNECT host:port` over a stream already connected to `proxy`.
///
/// Succeeds on a 2xx answer, leaving the stream positioned at the first tunnelled
/// byte. Any other answer, a malformed one, or a closed connection is a
/// [`TransportError::Connect`] naming the proxy (without credentials) and the status
/// line.
pub async fn http_connect<S>(
    stream: &mut S,
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let target = tunnel_label(proxy, host, port);
    let fail = |reason: String| TransportError::Connect {
        target: target.clone(),
        reason,
    };
    let authority = host_port(host, port);
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy.authorization() {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(format!("sending CONNECT: {e}")))?;
    stream
        .flush()
        .await
        .map_err(|e| fail(format!("sending CONNECT: {e}")))?;

    let head = read_head(stream).await.map_err(fail)?;
    let status_line = head.lines().next().unwrap_or("").trim_end();
    let shown = printable(status_line);
    let code = parse_status(status_line)
        .ok_or_else(|| fail(format!("proxy did not answer with HTTP: `{shown}`")))?;
    match code {
        200..=299 => Ok(()),
        // tinyproxy answers 401 (not 407) to wrong Basic credentials.
        401 | 407 if proxy.authorization().is_some() => Err(fail(format!(
            "proxy refused the credentials of the proxy URL: `{shown}`"
        ))),
        407 => Err(fail(format!(
            "proxy requires authentication (put user:password@ in the proxy URL): `{shown}`"
        ))),
        _ => Err(fail(format!("proxy refused the tunnel: `{shown}`"))),
    }
}

/// Read up to and including the blank line that ends the answer head, byte by byte.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, String> {
    let mut head = Vec::with_capacity(256);
    loop {
        let byte = match stream.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(if head.is_empty() {
                    "proxy closed the connection without answering CONNECT".to_owned()
                } else {
                    format!(
                        "proxy closed the connection in the middle of its answer: `{}`",
                        printable(String::from_utf8_lossy(&head).lines().next().unwrap_or(""))
                    )
                });
            }
            Err(e) => return Err(format!("reading the proxy's answer: {e}")),
        };
        head.push(byte);
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(format!(
                "proxy answer head exceeds {MAX_RESPONSE_HEAD} bytes"
            ));
        }
    }
}

/// The status code of `HTTP/1.x NNN reason`.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status("HTTP/1.1 200 Connection established"),
            Some(200)
        );
        assert_eq!(
            parse_status("HTTP/1.0 407 Proxy Authentication Required"),
            Some(407)
        );
        assert_eq!(parse_status("HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status("HTTP/1.1 2000 x"), None);
        assert_eq!(printable("a\u{1b}b"), "a\\u{1b}b");
    }

    #[tokio::test]
    async fn stops_at_the_blank_line() {
        let answer: &[u8] = b"HTTP/1.1 200 OK\r\nVia: test\r\n\r\nTLS BYTES";
        let (mut near, mut far) = tokio::io::duplex(1024);
        far.write_all(answer).await.ok();
        let head = read_head(&mut near).await.ok();
        assert_eq!(
            head.as_deref(),
            Some("HTTP/1.1 200 OK\r\nVia: test\r\n\r\n")
        );
        let mut rest = [0u8; 9];
        near.read_exact(&mut rest).await.ok();
        assert_eq!(&rest, b"TLS BYTES");
    }

    #[tokio::test]
    async fn bounded_head() {
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        far.write_all(&vec![b'a'; MAX_RESPONSE_HEAD + 10])
            .await
            .ok();
        let e = read_head(&mut near).await.err().unwrap_or_default();
        assert!(e.contains("exceeds"), "{e}");
    }
}
