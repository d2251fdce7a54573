//! A one-connection in-test HTTP CONNECT proxy, shared by the TLS and WebSocket
//! proxy tests.

use redpepper_transports::proxy::ProxyUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the in-test proxy answers.
#[derive(Clone, Copy)]
pub enum Answer {
    /// `200 Connection established`, then relay to the requested target.
    Tunnel,
    /// `407 Proxy Authentication Required`.
    AuthRequired,
}

/// A one-connection HTTP proxy; reports the request head it received.
pub async fn proxy(answer: Answer) -> (ProxyUrl, oneshot::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut client, _) = l.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(client.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        let target = head.split(' ').nth(1).unwrap().to_owned();
        tx.send(head).unwrap();
        match answer {
            Answer::AuthRequired => {
                client
                    .write_all(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                          Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await
                    .unwrap();
            }
            Answer::Tunnel => {
                let mut upstream = TcpStream::connect(target).await.unwrap();
                // The answer and the first tunnelled bytes may arrive together.
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }
    });
    let url = ProxyUrl::parse(&format!("http://user:p%40ss@127.0.0.1:{port}")).unwrap();
    (url, rx)
}

/// Checks the CONNECT request head the proxy received for `target` (`host:port`),
/// with the credentials of [`proxy`]'s URL.
pub fn assert_connect_head(head: &str, target: &str) {
    assert!(
        head.starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")),
        "{head}"
    );
    assert!(head.contains(&format!("\r\nHost: {target}\r\n")), "{head}");
    // base64("user:p@ss")
    assert!(
        head.contains("\r\nProxy-Authorization: Basic dXNlcjpwQHNz\r\n"),
        "{head}"
    );
}
