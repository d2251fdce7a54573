//! The factory: configuration in, dialer and listeners out.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;

use common::*;
use redpepper_config::{AgentConfig, ManagerConfig};
use redpepper_transports::factory;

fn manager_config(c: &Certs) -> ManagerConfig {
    ManagerConfig {
        bind_host: "127.0.0.1".into(),
        bind_port: 0,
        tls: manager_tls(c),
        ..ManagerConfig::default()
    }
}

fn agent_config(c: &Certs, port: u16) -> AgentConfig {
    AgentConfig {
        manager_hosts: vec![redpepper_config::HostPort::new("localhost", port)],
        manager_port: port,
        tls: agent_tls(c),
        ..AgentConfig::default()
    }
}

#[tokio::test]
async fn tls_from_configuration_connects() {
    let c = certs();
    let mut listeners = factory::listeners(&manager_config(&c)).await.unwrap();
    assert_eq!(listeners.len(), 1);
    let mut l = listeners.pop().unwrap();
    assert_eq!(l.kind(), redpepper_core::TransportKind::Tls);
    let port = l.local_addr().unwrap().port();
    assert_eq!(l.describe(), format!("tls://127.0.0.1:{port}"));

    let d = factory::dialer(&agent_config(&c, port)).unwrap();
    assert_eq!(d.describe(), format!("tls://localhost:{port}"));
    common::factory_frame_passes(&mut l, d.as_ref()).await;
}

#[tokio::test]
async fn localhost_binds_every_address_it_resolves_to() {
    let c = certs();
    let mut cfg = manager_config(&c);
    cfg.bind_host = "localhost".into();
    let listeners = factory::listeners(&cfg).await.unwrap();
    assert!(!listeners.is_empty());
    for l in &listeners {
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }
}

#[tokio::test]
async fn bad_proxy_setting_is_named() {
    let c = certs();
    let mut agent = agent_config(&c, 7051);
    agent.proxy = Some("socks5://user:secret@proxy:1080".into());
    let msg = factory::dialer(&agent).err().unwrap().to_string();
    assert!(msg.starts_with("proxy: "), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
}

/// The socket listeners report each connection's source before its handshake, and a
/// silent one is cut at `admission.handshake_timeout`.
#[tokio::test]
async fn socket_listeners_give_the_source_and_limit_the_handshake_as_configured() {
    let c = certs();
    let mut cfg = manager_config(&c);
    cfg.transports = vec![
        redpepper_core::TransportKind::Tls,
        redpepper_core::TransportKind::WebSocket,
    ];
    cfg.websocket.bind = "127.0.0.1:0".into();
    cfg.admission.handshake_timeout = std::time::Duration::from_millis(200);
    for mut l in factory::listeners(&cfg).await.unwrap() {
        let to = l.local_addr().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
        let silent = socket.connect(to).await.unwrap();
        let incoming = within(5, l.accept_incoming()).await.unwrap();
        assert_eq!(incoming.remote_addr, Some(silent.local_addr().unwrap()));
        let e = within(5, incoming.connecting)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("within 0.2s"), "{}: {e}", l.kind());
    }
}
