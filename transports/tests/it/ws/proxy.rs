//! The WebSocket dialer through an HTTP CONNECT proxy (an in-test one: success with
//! credentials for ws and wss, 407, a proxy that is down), and the factory building
//! WebSocket listeners and dialers from configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;
use crate::support::proxy::{assert_connect_head, proxy, Answer};
use crate::support::ws as ws_common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{agent_tls, certs, manager_tls, within, Certs, MIB};
use futures::{SinkExt, StreamExt};
use redpepper_config::{AgentConfig, ManagerConfig, TransportKind};
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Dialer, Transport};
use redpepper_transports::proxy::ProxyUrl;
use redpepper_transports::{factory, TransportsError};
use tokio::net::TcpListener;
use ws_common::*;

async fn through_proxy(secure: bool) {
    let c = certs();
    let server_tls = manager_tls(&c);
    let client_tls = agent_tls(&c);
    let mut l = listener(secure.then_some(&server_tls), MIB, &[]).await;
    let (proxy_url, request) = proxy(Answer::Tunnel).await;
    let d = dialer(&l, secure.then_some(&client_tls), MIB).with_proxy(Some(proxy_url.clone()));
    let url = url(&l, secure, PATH);
    assert_eq!(d.describe(), format!("{url} through proxy {proxy_url}"));
    let (client, server) = pair(&mut l, &d).await;
    assert_eq!(
        client.peer().remote_addr,
        None,
        "behind a proxy the address is unknown"
    );
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    cw.send(Bytes::from_static(b"via proxy")).await.unwrap();
    assert_eq!(
        within(5, sr.next()).await.unwrap().unwrap(),
        &b"via proxy"[..]
    );
    sw.send(Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(within(5, cr.next()).await.unwrap().unwrap(), &b"back"[..]);

    let head = request.await.unwrap();
    let target = format!("localhost:{}", addr(&l).port());
    assert_connect_head(&head, &target);
}

#[tokio::test]
async fn wss_through_a_connect_proxy() {
    through_proxy(true).await;
}

#[tokio::test]
async fn ws_through_a_connect_proxy() {
    through_proxy(false).await;
}

#[tokio::test]
async fn proxy_refusal_names_the_proxy_and_its_status() {
    let l = listener(None, MIB, &[]).await;
    let (proxy_url, _request) = proxy(Answer::AuthRequired).await;
    let d = dialer(&l, None, MIB).with_proxy(Some(proxy_url.clone()));
    let e = d.dial().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TransportError::Connect { .. }), "{msg}");
    assert!(msg.contains(&proxy_url.to_string()), "{msg}");
    assert!(msg.contains("407 Proxy Authentication Required"), "{msg}");
    assert!(!msg.contains("p@ss") && !msg.contains("p%40ss"), "{msg}");
}

#[tokio::test]
async fn a_proxy_that_is_down_is_named() {
    let l = listener(None, MIB, &[]).await;
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = ProxyUrl::parse(&format!("http://{}", gone.local_addr().unwrap())).unwrap();
    drop(gone);
    let d = dialer(&l, None, MIB).with_proxy(Some(proxy_url.clone()));
    let e = d.dial().await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("cannot reach the proxy"), "{msg}");
    assert!(msg.contains(&proxy_url.to_string()), "{msg}");
}

fn manager_config(c: &Certs, tls: bool) -> ManagerConfig {
    let mut cfg = ManagerConfig {
        bind_host: "127.0.0.1".into(),
        bind_port: 0,
        tls: manager_tls(c),
        transports: vec![TransportKind::Tls, TransportKind::WebSocket],
        ..ManagerConfig::default()
    };
    cfg.websocket.bind = "127.0.0.1:0".into();
    cfg.websocket.tls = tls;
    cfg
}

fn agent_config(c: &Certs, url: String) -> AgentConfig {
    let mut cfg = AgentConfig {
        tls: agent_tls(c),
        transport: TransportKind::WebSocket,
        ..AgentConfig::default()
    };
    cfg.websocket.urls = vec![url];
    cfg.websocket.headers = BTreeMap::from([("X-Agent".to_owned(), "a1".to_owned())]);
    cfg
}

async fn factory_round_trip(tls: bool) {
    let c = certs();
    let listeners = factory::listeners(&manager_config(&c, tls)).await.unwrap();
    let kinds: Vec<_> = listeners.iter().map(|l| l.kind()).collect();
    assert_eq!(
        kinds,
        [
            redpepper_core::TransportKind::Tls,
            redpepper_core::TransportKind::WebSocket
        ]
    );
    let mut l = listeners.into_iter().nth(1).unwrap();
    let port = l.local_addr().unwrap().port();
    let scheme = if tls { "wss" } else { "ws" };
    assert_eq!(
        l.describe(),
        format!("{scheme}://127.0.0.1:{port}/redpepper")
    );
    let mut agent = agent_config(&c, format!("{scheme}://localhost:{port}/redpepper"));
    agent.websocket.proxy = None;
    let d = factory::dialer(&agent).unwrap();
    common::factory_frame_passes(&mut l, d.as_ref()).await;
}

#[tokio::test]
async fn factory_builds_ws_from_configuration() {
    factory_round_trip(false).await;
}

#[tokio::test]
async fn factory_builds_wss_from_configuration() {
    factory_round_trip(true).await;
}

#[tokio::test]
async fn factory_names_bad_websocket_settings() {
    let c = certs();
    let mut agent = agent_config(&c, "wss://m/redpepper".into());
    agent.websocket.proxy = Some("socks5://p:1080".into());
    let e = factory::dialer(&agent).err().unwrap();
    assert!(is_setting_error(&e, "websocket.proxy"), "{e}");
    let mut agent = agent_config(&c, "wss://m/redpepper".into());
    agent
        .websocket
        .headers
        .insert("Upgrade".into(), "h2c".into());
    let e = factory::dialer(&agent).err().unwrap();
    assert!(is_setting_error(&e, "websocket.headers"), "{e}");
    let agent = agent_config(&c, "https://m/redpepper".into());
    let e = factory::dialer(&agent).err().unwrap();
    assert!(is_setting_error(&e, "websocket.url"), "{e}");

    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut manager = manager_config(&c, true);
    manager.websocket.bind = taken.local_addr().unwrap().to_string();
    let e = factory::listeners(&manager).await.err().unwrap();
    assert!(matches!(e, TransportsError::Bind { .. }), "{e}");
}
