//! Shared fixtures of the transport tests: development certificates, TLS settings,
//! a loopback listener and a dialer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redpepper_config::{TlsConfig, VerifyMode};
use redpepper_core::transport::{BoxTransport, Dialer, Listener};
use redpepper_transports::devcerts::{self, DevCerts};
use redpepper_transports::tls::{client_config, server_config};
use redpepper_transports::{TlsDialer, TlsListener};
use tempfile::TempDir;

pub const MIB: usize = 1024 * 1024;

/// Development certificates in a temporary directory (kept alive with it).
pub struct Certs {
    pub dir: TempDir,
    pub files: DevCerts,
}

pub fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let files = devcerts::generate(dir.path()).unwrap();
    Certs { dir, files }
}

/// The manager's settings: own cert, no client certificates.
pub fn manager_tls(c: &Certs) -> TlsConfig {
    TlsConfig {
        cert_file: Some(c.files.manager_cert.clone()),
        key_file: Some(c.files.manager_key.clone()),
        verify_mode: VerifyMode::None,
        ..agent_tls(c)
    }
}

/// The agent's settings: trusts the dev CA, no client certificate.
pub fn agent_tls(c: &Certs) -> TlsConfig {
    trusting_tls(&c.files.ca_cert)
}

/// An agent's settings that trust only the CA certificates in `ca`, no client
/// certificate, host names checked.
pub fn trusting_tls(ca: &Path) -> TlsConfig {
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

pub async fn listener(tls: &TlsConfig, max: usize) -> TlsListener {
    let config = server_config(tls).unwrap();
    TlsListener::bind("127.0.0.1:0".parse().unwrap(), config, max)
        .await
        .unwrap()
}

pub fn dialer(tls: &TlsConfig, port: u16, max: usize) -> TlsDialer {
    TlsDialer::new("localhost", port, client_config(tls).unwrap(), max).unwrap()
}

/// Accept one connection and finish its handshake.
pub async fn accept_one(
    l: &mut TlsListener,
) -> Result<BoxTransport, redpepper_core::TransportError> {
    let connecting = l.accept().await?;
    connecting.await
}

pub fn port(l: &TlsListener) -> u16 {
    l.local_addr().unwrap().port()
}

pub fn addr(l: &TlsListener) -> SocketAddr {
    l.local_addr().unwrap()
}

/// A connected (client, server) pair over loopback.
pub async fn pair(max: usize) -> (Certs, BoxTransport, BoxTransport) {
    let c = certs();
    let mut l = listener(&manager_tls(&c), max).await;
    let d = dialer(&agent_tls(&c), port(&l), max);
    let (client, server) = tokio::join!(d.dial(), accept_one(&mut l));
    (c, client.unwrap(), server.unwrap())
}

pub async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

pub mod amqp;
pub mod proxy;
pub mod ws;

/// Dials `d`, accepts on `l` (both built by the factory) and checks that one frame
/// sent by the dialer arrives at the listener.
pub async fn factory_frame_passes(
    l: &mut redpepper_core::transport::BoxListener,
    d: &dyn redpepper_core::transport::Dialer,
) {
    use futures::{SinkExt, StreamExt};
    use redpepper_core::transport::Transport;
    let accept = async { l.accept().await.unwrap().await };
    let (client, server) = tokio::join!(d.dial(), accept);
    let (_cr, mut cw) = client.unwrap().split();
    let (mut sr, _sw) = server.unwrap().split();
    cw.send(bytes::Bytes::from_static(b"factory"))
        .await
        .unwrap();
    assert_eq!(
        within(5, sr.next()).await.unwrap().unwrap(),
        &b"factory"[..]
    );
}
