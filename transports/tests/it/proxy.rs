//! HTTP CONNECT through a tiny in-test proxy: success (with credentials, and a full
//! TLS session through the tunnel) and refusal (407).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;
use crate::support::proxy::{assert_connect_head, proxy, Answer};

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Dialer, Transport};
use redpepper_transports::proxy::{connect_via, ProxyUrl};
use tokio::net::TcpListener;

#[tokio::test]
async fn tls_session_through_a_connect_proxy() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let (url, request) = proxy(Answer::Tunnel).await;
    let d = dialer(&agent_tls(&c), port(&l), MIB).with_proxy(Some(url.clone()));
    assert_eq!(
        d.describe(),
        format!("tls://localhost:{} through proxy {url}", port(&l))
    );
    let (client, server) = tokio::join!(d.dial(), accept_one(&mut l));
    let (mut cr, mut cw) = client.unwrap().split();
    let (mut sr, mut sw) = server.unwrap().split();
    cw.send(Bytes::from_static(b"via proxy")).await.unwrap();
    assert_eq!(
        within(5, sr.next()).await.unwrap().unwrap(),
        &b"via proxy"[..]
    );
    sw.send(Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(within(5, cr.next()).await.unwrap().unwrap(), &b"back"[..]);

    let head = request.await.unwrap();
    let target = format!("localhost:{}", port(&l));
    assert_connect_head(&head, &target);
}

#[tokio::test]
async fn proxy_refusal_names_the_proxy_and_its_status_line_but_not_the_password() {
    let (url, request) = proxy(Answer::AuthRequired).await;
    let e = connect_via(&url, "manager.example", 7051, Duration::from_secs(5))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TransportError::Connect { .. }), "{msg}");
    assert!(msg.contains(&url.to_string()), "{msg}");
    assert!(msg.contains("407 Proxy Authentication Required"), "{msg}");
    assert!(msg.contains("manager.example:7051"), "{msg}");
    assert!(!msg.contains("p@ss") && !msg.contains("p%40ss"), "{msg}");
    assert!(request
        .await
        .unwrap()
        .starts_with("CONNECT manager.example:7051 HTTP/1.1\r\n"));
}

#[tokio::test]
async fn unreachable_proxy_is_a_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let url = ProxyUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let e = connect_via(&url, "m", 1, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("cannot reach the proxy"), "{e}");
}
