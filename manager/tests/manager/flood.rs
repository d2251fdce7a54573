//! Admission control end to end over real TLS on loopback: silent TCP connections (no
//! TLS handshake, nothing sent) flood the manager while the real agent program
//! connects. Other 127.x addresses serve as distinct sources: the flood binds its
//! sockets to them, the agent connects from 127.0.0.1. Loopback is exempt from the
//! per-source caps by default: these tests set `exempt: []`.
//!
//! The scenario at full size (4,500 silent connections from one address) is
//! `flood_of_4500_from_one_address`, ignored by default; it prints the agent's connect
//! time without the flood and behind it, with the default limits (loopback exempt:
//! the total evicts) and with loopback counted per address.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redpepper_agent::Agent;
use redpepper_config::{AgentConfig, ConfigFile, ManagerConfig};
use redpepper_core::TransportKind;
use redpepper_manager::Manager;
use sha2::{Digest, Sha256};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use super::WAIT;

struct Setup {
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    manager: Manager,
    port: u16,
}

/// A manager on 127.0.0.1 with TLS (development certificates), one agent `web1`
/// (secret `s`) in `agents.yml`, and `admission` as its admission section.
async fn manager(admission: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let certs = redpepper_transports::devcerts::generate(dir.path()).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let hash = hex::encode(Sha256::digest(b"s"));
    std::fs::write(
        data.join("agents.yml"),
        format!("web1:\n  secret_hash: {hash}\n  allowed_ips: [127.0.0.0/8]\n"),
    )
    .unwrap();
    let yaml = format!(
        "bind_host: 127.0.0.1\nbind_port: 0\ntls_cert_file: {}\ntls_key_file: {}\n\
         tls_verify_mode: none\ndata_base_dir: {}\nping_interval: 0\n{admission}",
        certs.manager_cert.display(),
        certs.manager_key.display(),
        data.display(),
    );
    let config = ManagerConfig::from_yaml_str(&yaml).unwrap();
    let manager = Manager::start(&config).await.unwrap();
    let port = manager.local_addr(TransportKind::Tls).unwrap().port();
    Setup {
        ca: certs.ca_cert.clone(),
        _dir: dir,
        manager,
        port,
    }
}

/// `n` TCP connections to `port` from each of `sources`, open and silent.
async fn flood(port: u16, sources: &[&str], n: usize) -> Vec<TcpStream> {
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let mut out = Vec::with_capacity(sources.len() * n);
    for source in sources {
        let ip: IpAddr = source.parse().unwrap();
        for _ in 0..n {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(ip, 0)).unwrap();
            out.push(socket.connect(to).await.unwrap());
        }
    }
    out
}

/// Opens `n` silent connections from `source` to `port` on a task of their own (the
/// last ones may wait in the kernel's backlog); returns once `first` are open, with the
/// task that holds them all.
async fn flood_in_background(
    port: u16,
    source: &'static str,
    n: usize,
    first: usize,
) -> tokio::task::JoinHandle<Vec<TcpStream>> {
    let (progress, mut open) = tokio::sync::watch::channel(0usize);
    let task = tokio::spawn(async move {
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let ip: IpAddr = source.parse().unwrap();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(ip, 0)).unwrap();
            out.push(socket.connect(to).await.unwrap());
            progress.send_replace(out.len());
        }
        out
    });
    let opened = tokio::time::timeout(WAIT, open.wait_for(|k| *k >= first)).await;
    assert!(
        matches!(opened, Ok(Ok(_))),
        "{first} connections not open in {WAIT:?}"
    );
    task
}

/// Starts the real agent program as `web1` against `setup`; returns how long until the
/// manager has its session (panics after [`WAIT`]) and the token that stops it.
async fn agent_connects(setup: &Setup) -> (Duration, CancellationToken) {
    let yaml = format!(
        "agent_id: web1\nagent_secret: s\nmanager_host: 127.0.0.1\nmanager_port: {}\n\
         tls_ca_file: {}\nping_interval: 0\n",
        setup.port,
        setup.ca.display(),
    );
    let agent = Agent::new(AgentConfig::from_yaml_str(&yaml).unwrap()).unwrap();
    let stop = CancellationToken::new();
    let started = Instant::now();
    tokio::spawn({
        let stop = stop.clone();
        async move { agent.run(stop, |_| {}).await }
    });
    let session = setup.manager.wait_for_agent("web1", WAIT).await;
    assert!(
        session.is_some(),
        "the agent did not connect within {WAIT:?}"
    );
    (started.elapsed(), stop)
}

#[tokio::test]
async fn silent_flood_from_one_address_is_closed_at_accept_and_the_agent_connects() {
    let setup = manager(
        "admission: {max_pending: 64, max_pending_per_address: 16, max_pending_per_network: 32, exempt: []}\n",
    )
    .await;
    let silent = flood(setup.port, &["127.0.0.2"], 300).await;
    let (took, stop) = agent_connects(&setup).await;
    let metrics = setup.manager.metrics();
    // Accepted in order: the whole flood was judged before the agent's connection.
    assert_eq!(metrics.preauth_refused.load(Ordering::Relaxed), 300 - 16);
    assert_eq!(metrics.preauth_evicted.load(Ordering::Relaxed), 0);
    eprintln!("agent connected {took:?} after starting, behind 300 silent connections");
    stop.cancel();
    drop(silent);
    setup.manager.shutdown().await;
}

#[tokio::test]
async fn silent_flood_over_the_total_evicts_the_oldest_and_the_agent_connects() {
    let setup = manager(
        "admission: {max_pending: 64, max_pending_per_address: 16, max_pending_per_network: 16, exempt: []}\n",
    )
    .await;
    let sources: Vec<String> = (1..=8).map(|n| format!("127.0.{n}.2")).collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    let silent = flood(setup.port, &sources, 16).await;
    let (took, stop) = agent_connects(&setup).await;
    let metrics = setup.manager.metrics();
    assert_eq!(metrics.preauth_refused.load(Ordering::Relaxed), 0);
    // 128 silent connections through 64 places, and the agent's own.
    assert_eq!(
        metrics.preauth_evicted.load(Ordering::Relaxed),
        128 - 64 + 1
    );
    eprintln!(
        "agent connected {took:?} after starting, behind 128 silent connections from 8 networks"
    );
    stop.cancel();
    drop(silent);
    setup.manager.shutdown().await;
}

#[tokio::test]
#[ignore = "the issue's scenario at full size: 4,500 connections; run with --ignored"]
async fn flood_of_4500_from_one_address() {
    let quiet = manager("").await;
    let (alone, stop) = agent_connects(&quiet).await;
    stop.cancel();
    quiet.manager.shutdown().await;
    eprintln!("agent alone: {alone:?}");

    for admission in ["", "admission: {exempt: []}\n"] {
        let setup = manager(admission).await;
        // The agent starts once all 4,500 are open: the total (4,096) is full.
        let silent = flood_in_background(setup.port, "127.0.0.2", 4500, 4500).await;
        let (behind, stop) = agent_connects(&setup).await;
        let m = setup.manager.metrics();
        let refused = m.preauth_refused.load(Ordering::Relaxed);
        let evicted = m.preauth_evicted.load(Ordering::Relaxed);
        eprintln!(
            "{admission:?}: agent behind 4,500 silent connections ({refused} closed at \
             accept, {evicted} evicted): {behind:?}"
        );
        if !admission.is_empty() {
            // Accepted in order: the flood was judged before the agent.
            assert_eq!(refused, 4500 - 64);
        } else {
            // 4,500 silent through 4,096 places, and the agent's own.
            assert_eq!(evicted, 4500 - 4096 + 1);
        }
        stop.cancel();
        drop(within_wait(silent).await);
        setup.manager.shutdown().await;
    }
}

async fn within_wait<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap()
}
