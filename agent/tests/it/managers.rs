//! An agent with a list of managers (`manager_host: [dead, live]`) over real TLS: it
//! reaches the live one whatever entry a round starts from, and its hello goes there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{SinkExt, StreamExt};
use redpepper_agent::Agent;
use redpepper_config::{AgentConfig, HostPort, Secret, TlsConfig, VerifyMode};
use redpepper_core::codec::{decode, encode, ManagerHello, Message};
use redpepper_core::{Listener, Transport};
use redpepper_transports::devcerts;
use redpepper_transports::tls::server_config;
use redpepper_transports::TlsListener;
use tokio::sync::mpsc;

use crate::WAIT;

fn tls(ca: &std::path::Path) -> TlsConfig {
    TlsConfig {
        cert_file: None,
        key_file: None,
        key_password: None,
        key_file_allow_insecure: false,
        ca_file: Some(ca.to_owned()),
        ca_path: None,
        ca_data: None,
        check_hostname: true,
        verify_mode: VerifyMode::Required,
    }
}

/// A manager that answers every hello with ManagerHello and reports the agent id.
fn serve(mut l: TlsListener) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok(connecting) = l.accept().await {
            let Ok(t) = connecting.await else { continue };
            let (mut reader, mut writer) = t.split();
            let Some(Ok(frame)) = reader.next().await else {
                continue;
            };
            if let Ok(Message::AgentHello(hello)) = decode(&frame) {
                let answer = Message::ManagerHello(ManagerHello {
                    version: redpepper_core::VERSION.to_owned(),
                });
                if writer.send(encode(&answer).unwrap()).await.is_ok() {
                    let _ = tx.send(hello.id);
                }
            }
            held.push((reader, writer));
        }
    });
    rx
}

#[tokio::test]
async fn an_agent_with_a_dead_and_a_live_manager_reaches_the_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let certs = devcerts::generate(dir.path()).unwrap();
    let manager_tls = TlsConfig {
        cert_file: Some(certs.manager_cert.clone()),
        key_file: Some(certs.manager_key.clone()),
        verify_mode: VerifyMode::None,
        ..tls(&certs.ca_cert)
    };
    let l = TlsListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        server_config(&manager_tls).unwrap(),
        1 << 20,
    )
    .await
    .unwrap();
    let live = l.local_addr().unwrap().port();
    let mut hellos = serve(l);
    let dead = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = AgentConfig {
        agent_id: "web1".into(),
        agent_secret: Secret::new("s"),
        manager_hosts: vec![
            HostPort::new("localhost", dead),
            HostPort::new("localhost", live),
        ],
        tls: tls(&certs.ca_cert),
        ..AgentConfig::default()
    };
    let agent = Agent::new(config).unwrap();
    // 16 rounds all starting at the live entry: chance 2^-16.
    for _ in 0..16 {
        let session = tokio::time::timeout(WAIT, agent.connect())
            .await
            .expect("connect took too long")
            .unwrap();
        assert_eq!(session.peer_version(), redpepper_core::VERSION);
        let id = tokio::time::timeout(WAIT, hellos.recv()).await.unwrap();
        assert_eq!(id.as_deref(), Some("web1"));
    }
}
