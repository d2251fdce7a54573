//! Admission control through the accept loop, in paused time: silent connections over
//! a per-address or per-network cap are closed at once, a full total evicts the oldest,
//! and an agent from elsewhere gets in meanwhile. The listener is in memory but reports
//! socket addresses, as the TLS and WebSocket listeners do.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, BoxFuture};
use futures::{FutureExt, StreamExt};
use redpepper_core::memory::{pair, MemoryTransport};
use redpepper_core::transport::{Connecting, Incoming, Listener};
use redpepper_core::{
    PeerInfo, Router, Session, SessionConfig, Transport, TransportError, TransportKind,
};
use redpepper_manager::admission::Limits;
use redpepper_manager::Manager;
use tokio::sync::mpsc;

use super::{SecretIsS, WAIT};

/// A listener handing out in-memory connections "from" the addresses they were dialed
/// with, like a socket listener.
struct Sourced {
    rx: mpsc::UnboundedReceiver<(SocketAddr, MemoryTransport)>,
}

impl Listener for Sourced {
    fn accept(&mut self) -> BoxFuture<'_, Result<Connecting, TransportError>> {
        Box::pin(async move { self.accept_incoming().await.map(|i| i.connecting) })
    }

    fn accept_incoming(&mut self) -> BoxFuture<'_, Result<Incoming, TransportError>> {
        Box::pin(async move {
            let (addr, t) = self.rx.recv().await.ok_or(TransportError::Closed)?;
            let t = t.with_peer(PeerInfo::new(TransportKind::Tls, Some(addr)));
            Ok(Incoming {
                remote_addr: Some(addr),
                connecting: future::ready(Ok(t.boxed())).boxed(),
            })
        })
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Tls
    }

    fn describe(&self) -> String {
        "sourced memory".into()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], 7051)))
    }
}

#[derive(Clone)]
struct Dial(mpsc::UnboundedSender<(SocketAddr, MemoryTransport)>);

impl Dial {
    fn from(&self, ip: &str) -> MemoryTransport {
        let ip: IpAddr = ip.parse().unwrap();
        let (ours, theirs) = pair(64);
        self.0.send((SocketAddr::new(ip, 40000), theirs)).unwrap();
        ours
    }
}

fn start(limits: Limits) -> (Manager, Dial) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = SessionConfig {
        ping_interval: Duration::ZERO,
        // Far beyond WAIT: only admission control can close a silent connection.
        hello_timeout: Duration::from_secs(600),
        ..SessionConfig::default()
    };
    let manager = Manager::start_admitting(
        config,
        vec![Box::new(Sourced { rx })],
        Arc::new(SecretIsS),
        limits,
    );
    (manager, Dial(tx))
}

fn limits(total: usize, per_address: usize, per_network: usize) -> Limits {
    Limits {
        max_pending: total,
        per_address,
        per_network,
        ..Limits::default()
    }
}

/// Waits until the manager closes `t` (its stream ends); panics after [`WAIT`].
async fn closed(t: MemoryTransport) {
    let (mut reader, _writer) = t.split();
    let end = tokio::time::timeout(WAIT, reader.next()).await;
    assert!(
        matches!(end, Ok(None | Some(Err(_)))),
        "expected the manager to close the connection, got {end:?}"
    );
}

async fn agent(dial: &Dial, ip: &str, id: &str) -> Result<Session, redpepper_core::SessionError> {
    let config = SessionConfig {
        ping_interval: Duration::ZERO,
        hello_timeout: Duration::from_secs(5),
        ..SessionConfig::default()
    };
    Session::connect(dial.from(ip), id, "s", config, Arc::new(Router::new())).await
}

#[tokio::test(start_paused = true)]
async fn an_address_over_its_cap_is_closed_at_once_and_an_agent_from_elsewhere_gets_in() {
    let (manager, dial) = start(limits(100, 2, 50));
    let held: Vec<_> = (0..2).map(|_| dial.from("10.0.0.1")).collect();
    let refused: Vec<_> = (0..8).map(|_| dial.from("10.0.0.1")).collect();
    for t in refused {
        closed(t).await;
    }
    assert_eq!(manager.metrics().preauth_refused.load(Ordering::Relaxed), 8);
    // Same /24, another address: served.
    let session = agent(&dial, "10.0.0.2", "a1").await.unwrap();
    assert!(manager.wait_for_agent("a1", WAIT).await.is_some());
    // The same address, while its two silent connections still wait: told at once.
    let refused = agent(&dial, "10.0.0.1", "a2").await.unwrap_err();
    assert!(
        !matches!(refused, redpepper_core::SessionError::HelloTimeout { .. }),
        "{refused:?}"
    );
    assert_eq!(manager.metrics().preauth_evicted.load(Ordering::Relaxed), 0);
    drop((held, session));
    manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_network_over_its_cap_is_closed_at_once_and_another_network_gets_in() {
    let (manager, dial) = start(limits(100, 2, 3));
    let held: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        .iter()
        .map(|ip| dial.from(ip))
        .collect();
    closed(dial.from("10.0.0.4")).await;
    assert_eq!(manager.metrics().preauth_refused.load(Ordering::Relaxed), 1);
    let session = agent(&dial, "10.0.1.4", "a1").await.unwrap();
    assert!(manager.wait_for_agent("a1", WAIT).await.is_some());
    drop((held, session));
    manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_total_closes_the_oldest_and_the_agent_gets_in() {
    let (manager, dial) = start(limits(3, 2, 2));
    let mut silent: Vec<_> = ["10.0.1.1", "10.0.2.1", "10.0.3.1"]
        .iter()
        .map(|ip| dial.from(ip))
        .collect();
    let session = agent(&dial, "10.0.4.1", "a1").await.unwrap();
    assert!(manager.wait_for_agent("a1", WAIT).await.is_some());
    // The oldest silent connection made room; the other two still wait.
    closed(silent.remove(0)).await;
    assert_eq!(manager.metrics().preauth_evicted.load(Ordering::Relaxed), 1);
    assert_eq!(manager.metrics().preauth_refused.load(Ordering::Relaxed), 0);
    // The agent's own place was given back when its hello was done: one more
    // connection fits without evicting anyone.
    let fourth = dial.from("10.0.5.1");
    let again = agent(&dial, "10.0.6.1", "a2").await.unwrap();
    assert!(manager.wait_for_agent("a2", WAIT).await.is_some());
    assert_eq!(manager.metrics().preauth_evicted.load(Ordering::Relaxed), 2);
    drop((silent, fourth, session, again));
    manager.shutdown().await;
}
