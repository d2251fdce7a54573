//! The manager's WebSocket endpoint as plain HTTP sees it (404, 426, 405, 400, 431,
//! handshake timeout), client addresses behind trusted proxies, and the agent's
//! errors for a wrong path, a wrong scheme and a closed port.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;
use crate::support::ws as ws_common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{agent_tls, certs, manager_tls, within, MIB};
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Dialer, Listener, Transport};
use redpepper_transports::ws::WsUrl;
use ws_common::*;

const UPGRADE: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// Serve one connection in the background; its handshake result comes back.
fn serve_one(
    mut l: redpepper_transports::WsListener,
) -> tokio::task::JoinHandle<Result<redpepper_core::BoxTransport, TransportError>> {
    tokio::spawn(async move { accept_one(&mut l).await })
}

#[tokio::test]
async fn another_path_gets_404() {
    let l = listener(None, MIB, &[]).await;
    let a = addr(&l);
    let server = serve_one(l);
    let answer = http(
        a,
        &format!("GET /other HTTP/1.1\r\nHost: m\r\n{UPGRADE}\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    let e = server.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}

#[tokio::test]
async fn the_agent_names_the_url_and_the_status_of_a_refused_upgrade() {
    let mut l = listener(None, MIB, &[]).await;
    let wrong = url(&l, false, "/not-here");
    let d = dialer_for(wrong.clone(), None, MIB);
    let (client, _server) = tokio::join!(d.dial(), accept_one(&mut l));
    let e = client.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TransportError::Connect { .. }), "{msg}");
    assert!(msg.contains(&wrong.to_string()), "{msg}");
    assert!(msg.contains("404 Not Found"), "{msg}");
    assert!(msg.contains("path"), "{msg}");
}

#[tokio::test]
async fn a_plain_get_gets_a_short_plain_text_answer() {
    let l = listener(None, MIB, &[]).await;
    let a = addr(&l);
    let _server = serve_one(l);
    let answer = http(a, &format!("GET {PATH} HTTP/1.1\r\nHost: m\r\n\r\n")).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nContent-Type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("\r\nUpgrade: websocket"), "{head}");
    assert_eq!(
        body,
        "RedPepper WebSocket endpoint: connect with a WebSocket client at /redpepper\n"
    );
}

#[tokio::test]
async fn over_wss_too() {
    let c = certs();
    let l = listener(Some(&manager_tls(&c)), MIB, &[]).await;
    let d = dialer_for(url(&l, true, "/x"), Some(&agent_tls(&c)), MIB);
    let _server = serve_one(l);
    let e = d.dial().await.unwrap_err();
    assert!(e.to_string().contains("404 Not Found"), "{e}");
}

#[tokio::test]
async fn other_requests_get_their_status() {
    let cases = [
        (format!("HEAD {PATH} HTTP/1.1\r\nHost: m\r\n\r\n"), "426"),
        (
            format!("POST {PATH} HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            "405",
        ),
        ("\x16\x03\x01 not http at all\r\n\r\n".to_owned(), "400"),
        (
            format!("GET {PATH} HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000)),
            "431",
        ),
        (
            format!("GET {PATH} HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
            "400",
        ),
    ];
    for (request, status) in cases {
        let l = listener(None, MIB, &[]).await;
        let a = addr(&l);
        let server = serve_one(l);
        let answer = http(a, &request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer}"
        );
        if request.starts_with("HEAD") {
            assert!(answer.ends_with("\r\n\r\n"), "HEAD has no body: {answer}");
        }
        assert!(server.await.unwrap().is_err());
    }
}

#[tokio::test]
async fn a_silent_client_times_out_in_its_own_future() {
    let l = listener(None, MIB, &[])
        .await
        .with_handshake_timeout(Duration::from_millis(200));
    let a = addr(&l);
    let server = serve_one(l);
    let _silent = tokio::net::TcpStream::connect(a).await.unwrap();
    let e = within(30, server).await.unwrap().unwrap_err();
    assert!(e.to_string().contains("not finished within"), "{e}");
}

async fn client_addr_seen(trusted: &[&str], headers: &[(&str, &str)]) -> std::net::SocketAddr {
    let mut l = listener(None, MIB, trusted).await;
    let extra: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let d = dialer(&l, None, MIB).with_headers(&extra).unwrap();
    let (_client, server) = pair(&mut l, &d).await;
    server.peer().remote_addr.unwrap()
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let xff = [("X-Forwarded-For", "203.0.113.9, 192.0.2.7")];
    let trusted = client_addr_seen(&["127.0.0.0/8"], &xff).await;
    assert_eq!(trusted, "192.0.2.7:0".parse().unwrap());
    let untrusted = client_addr_seen(&["10.0.0.0/8"], &xff).await;
    assert_eq!(untrusted.ip().to_string(), "127.0.0.1");
    assert_ne!(untrusted.port(), 0);
    let none = client_addr_seen(&[], &xff).await;
    assert_eq!(none.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn forwarded_counts_from_trusted_proxies() {
    let fwd = [("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https")];
    let seen = client_addr_seen(&["127.0.0.1/32"], &fwd).await;
    assert_eq!(seen, "[2001:db8::7]:4711".parse().unwrap());
    let seen = client_addr_seen(&["::1/128"], &fwd).await;
    assert_eq!(seen.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn ws_url_against_a_wss_endpoint_hints_at_the_scheme() {
    let c = certs();
    let mut l = listener(Some(&manager_tls(&c)), MIB, &[]).await;
    let d = dialer_for(url(&l, false, PATH), None, MIB);
    let (client, _server) = tokio::join!(d.dial(), accept_one(&mut l));
    let e = client.unwrap_err();
    assert!(e.to_string().contains("use a wss:// URL"), "{e}");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_naming_the_url() {
    let l = listener(None, MIB, &[]).await;
    let u = url(&l, false, PATH);
    drop(l);
    let e = dialer_for(u.clone(), None, MIB).dial().await.unwrap_err();
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!("connect to {u}: ")),
        "{e}"
    );
}

#[tokio::test]
async fn an_unknown_host_is_a_connect_error_naming_the_url() {
    let u = WsUrl::parse("ws://no-such-host.invalid:7052/redpepper").unwrap();
    let e = dialer_for(u, None, MIB).dial().await.unwrap_err();
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("no-such-host.invalid:7052"), "{e}");
}

#[tokio::test]
async fn describe_and_local_addr() {
    let l = listener(None, MIB, &[]).await;
    assert_eq!(l.describe(), format!("ws://{}{PATH}", addr(&l)));
    assert_eq!(l.url(), l.describe());
}
