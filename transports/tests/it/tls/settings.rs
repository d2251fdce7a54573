//! The `tls_*` settings: certificate verification both ways, client certificate
//! subjects, key file permissions and encrypted keys.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use redpepper_config::VerifyMode;
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Dialer, Transport};
use redpepper_transports::tls::{client_config, server_config};
use redpepper_transports::{TlsTransport, TransportsError};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Dial the listener's address directly but verify the server as `name`.
async fn connect_as(
    to: std::net::SocketAddr,
    tls: &redpepper_config::TlsConfig,
    name: &str,
) -> Result<TlsTransport, TransportError> {
    let tcp = TcpStream::connect(to).await.unwrap();
    TlsTransport::connect(
        tcp,
        client_config(tls).unwrap(),
        ServerName::try_from(name.to_owned()).unwrap(),
        None,
        MIB,
    )
    .await
}

#[tokio::test]
async fn manager_reachable_by_ip_address_names() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let tcp = TcpStream::connect(addr(&l)).await.unwrap();
    let name = redpepper_transports::tls::server_name("127.0.0.1").unwrap();
    let client =
        TlsTransport::connect(tcp, client_config(&agent_tls(&c)).unwrap(), name, None, MIB);
    let (client, server) = tokio::join!(client, accept_one(&mut l));
    client.unwrap();
    server.unwrap();
}

#[tokio::test]
async fn wrong_hostname_fails_unless_check_hostname_is_false() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;

    let strict = agent_tls(&c);
    let (client, _server) = tokio::join!(
        connect_as(addr(&l), &strict, "manager.invalid"),
        accept_one(&mut l)
    );
    let e = client.unwrap_err();
    assert!(matches!(e, TransportError::Tls(_)), "{e}");
    assert!(e.to_string().contains("manager.invalid"), "{e}");

    let mut relaxed = agent_tls(&c);
    relaxed.check_hostname = false;
    let (client, server) = tokio::join!(
        connect_as(addr(&l), &relaxed, "manager.invalid"),
        accept_one(&mut l)
    );
    let (_cr, mut cw) = client.unwrap().split();
    let (mut sr, _sw) = server.unwrap().split();
    cw.send(Bytes::from_static(b"ok")).await.unwrap();
    assert_eq!(within(5, sr.next()).await.unwrap().unwrap(), &b"ok"[..]);
}

#[tokio::test]
async fn check_hostname_false_still_rejects_an_untrusted_ca() {
    let c = certs();
    let other = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let mut relaxed = agent_tls(&other);
    relaxed.check_hostname = false;
    let (client, _server) = tokio::join!(
        connect_as(addr(&l), &relaxed, "localhost"),
        accept_one(&mut l)
    );
    let e = client.unwrap_err();
    // Both development CAs share a name, so webpki reports BadSignature rather than
    // UnknownIssuer: either way the chain is refused.
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
}

#[tokio::test]
async fn verify_mode_none_on_the_agent_accepts_any_certificate() {
    let c = certs();
    let other = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let mut blind = agent_tls(&other);
    blind.verify_mode = VerifyMode::None;
    let (client, server) = tokio::join!(
        connect_as(addr(&l), &blind, "anything.invalid"),
        accept_one(&mut l)
    );
    client.unwrap();
    server.unwrap();
}

fn with_client_cert(c: &Certs) -> redpepper_config::TlsConfig {
    let mut tls = agent_tls(c);
    tls.cert_file = Some(c.files.agent_cert.clone());
    tls.key_file = Some(c.files.agent_key.clone());
    tls
}

#[tokio::test]
async fn verify_mode_required_rejects_a_client_without_certificate() {
    let c = certs();
    let mut server_tls = manager_tls(&c);
    server_tls.verify_mode = VerifyMode::Required;
    let mut l = listener(&server_tls, MIB).await;
    let d = dialer(&agent_tls(&c), port(&l), MIB);
    let (client, server) = tokio::join!(d.dial(), accept_one(&mut l));
    let e = server.unwrap_err();
    assert!(matches!(e, TransportError::Tls(_)), "{e}");
    // TLS 1.3 lets the client finish its side first; it then learns of the refusal.
    if let Ok(client) = client {
        let (mut r, _w) = client.split();
        assert!(!matches!(within(5, r.next()).await, Some(Ok(_))));
    }
}

#[tokio::test]
async fn verify_mode_required_records_the_client_certificate_subject() {
    let c = certs();
    let mut server_tls = manager_tls(&c);
    server_tls.verify_mode = VerifyMode::Required;
    let mut l = listener(&server_tls, MIB).await;
    let d = dialer(&with_client_cert(&c), port(&l), MIB);
    let (client, server) = tokio::join!(d.dial(), accept_one(&mut l));
    client.unwrap();
    assert_eq!(
        server.unwrap().peer().client_cert_subject.as_deref(),
        Some("CN=agent,O=RedPepper development")
    );
}

#[tokio::test]
async fn verify_mode_optional_accepts_both() {
    let c = certs();
    let mut server_tls = manager_tls(&c);
    server_tls.verify_mode = VerifyMode::Optional;
    let mut l = listener(&server_tls, MIB).await;
    for (tls, subject) in [
        (agent_tls(&c), None),
        (
            with_client_cert(&c),
            Some("CN=agent,O=RedPepper development"),
        ),
    ] {
        let d = dialer(&tls, port(&l), MIB);
        let (client, server) = tokio::join!(d.dial(), accept_one(&mut l));
        client.unwrap();
        assert_eq!(
            server.unwrap().peer().client_cert_subject.as_deref(),
            subject
        );
    }
}

#[tokio::test]
async fn ca_path_and_ca_data_work_like_ca_file() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&c.files.ca_cert, ca_dir.path().join("ca.pem")).unwrap();
    std::fs::write(ca_dir.path().join("README"), "not a certificate").unwrap();
    let mut by_path = agent_tls(&c);
    by_path.ca_file = None;
    by_path.ca_path = Some(ca_dir.path().to_owned());
    let mut by_data = agent_tls(&c);
    by_data.ca_file = None;
    by_data.ca_data = Some(std::fs::read_to_string(&c.files.ca_cert).unwrap());
    for tls in [by_path, by_data] {
        let (client, server) =
            tokio::join!(connect_as(addr(&l), &tls, "localhost"), accept_one(&mut l));
        client.unwrap();
        server.unwrap();
    }
}

#[test]
fn insecure_key_file_is_refused_with_a_chmod_hint_unless_allowed() {
    let c = certs();
    set_mode(&c.files.manager_key, 0o640);
    let mut tls = manager_tls(&c);
    let e = server_config(&tls).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            TransportsError::BadFile {
                key: "tls_key_file",
                ..
            }
        ),
        "{msg}"
    );
    let chmod = format!("chmod 600 {}", c.files.manager_key.display());
    assert!(msg.contains(&chmod), "{msg}");

    tls.key_file_allow_insecure = true;
    server_config(&tls).unwrap();

    // The agent's client key follows the same rule.
    set_mode(&c.files.agent_key, 0o604);
    assert!(client_config(&with_client_cert(&c)).is_err());
}

#[test]
fn encrypted_keys_are_refused_with_a_way_to_decrypt_them() {
    let c = certs();
    let pkcs8 = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
    for text in [pkcs8, legacy] {
        std::fs::write(&c.files.manager_key, text).unwrap();
        let mut tls = manager_tls(&c);
        tls.key_password = Some("secret".into());
        let msg = server_config(&tls).unwrap_err().to_string();
        assert!(msg.contains("tls_key_file"), "{msg}");
        assert!(
            msg.contains(&c.files.manager_key.display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains("encrypted") && msg.contains("openssl pkey -in"),
            "{msg}"
        );
    }
}

#[test]
fn errors_name_the_setting_and_the_file() {
    let c = certs();
    let mut tls = manager_tls(&c);
    tls.cert_file = Some(c.dir.path().join("missing.pem"));
    let msg = server_config(&tls).unwrap_err().to_string();
    assert!(
        msg.contains("tls_cert_file") && msg.contains("missing.pem"),
        "{msg}"
    );

    let mut tls = manager_tls(&c);
    tls.key_file = Some(c.files.agent_key.clone());
    let msg = server_config(&tls).unwrap_err().to_string();
    assert!(
        msg.contains("tls_key_file") && msg.contains("agent-key.pem"),
        "{msg}"
    );

    let mut tls = agent_tls(&c);
    tls.ca_file = Some(c.files.manager_key.clone());
    let msg = client_config(&tls).unwrap_err().to_string();
    assert!(
        msg.contains("tls_ca_file") && msg.contains("manager-key.pem"),
        "{msg}"
    );

    let mut tls = manager_tls(&c);
    tls.cert_file = None;
    let msg = server_config(&tls).unwrap_err().to_string();
    assert!(msg.contains("tls_cert_file"), "{msg}");
}

#[tokio::test]
async fn a_plain_http_server_on_the_port_is_named_as_such() {
    let c = certs();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = http.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = http.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    });
    let e = within(30, dialer(&agent_tls(&c), port, MIB).dial())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is this port serving plain HTTP"), "{e}");
    server.await.unwrap();
}
