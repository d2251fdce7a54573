//! Lists of managers (`manager_host` / `websocket.url` with several entries): the
//! factory's `MultiDialer` over real TLS and WebSocket listeners, and one host name
//! with several addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use redpepper_config::{AgentConfig, HostPort, TransportKind};
use redpepper_core::transport::{Dialer, Listener, Transport};
use redpepper_transports::factory;
use redpepper_transports::tls::client_config;
use redpepper_transports::TlsDialer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self as common, ws as wsup};
use common::*;

/// A loopback port nothing listens on (bound, then closed).
async fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Accepts (and finishes the handshake of) every connection to `l`, forever.
fn serve<L: Listener + 'static>(mut l: L) {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok(connecting) = l.accept().await {
            if let Ok(t) = connecting.await {
                held.push(t);
            }
        }
    });
}

fn tls_agent(c: &Certs, entries: &[u16]) -> AgentConfig {
    AgentConfig {
        manager_hosts: entries
            .iter()
            .map(|&port| HostPort::new("localhost", port))
            .collect(),
        tls: agent_tls(c),
        ..AgentConfig::default()
    }
}

#[tokio::test]
async fn tls_first_entry_refused_the_second_accepts() {
    let c = certs();
    let l = listener(&manager_tls(&c), MIB).await;
    let live = port(&l);
    serve(l);
    let dead = refused_port().await;
    let d = factory::dialer(&tls_agent(&c, &[dead, live])).unwrap();
    assert_eq!(
        d.describe(),
        format!("tls://localhost:{dead}, tls://localhost:{live}")
    );
    // Whichever entry a round starts from, the live one answers (rounds that start
    // at the dead one go on to the next: 24 rounds all miss it with chance 2^-24).
    for _ in 0..24 {
        let (t, answered) = within(20, d.dial_described()).await.unwrap();
        assert_eq!(answered, format!("tls://localhost:{live}"));
        assert_eq!(t.peer().remote_addr.unwrap().port(), live);
    }
}

#[tokio::test]
async fn tls_all_refused_names_each_entry() {
    let c = certs();
    let (a, b) = (refused_port().await, refused_port().await);
    let d = factory::dialer(&tls_agent(&c, &[a, b])).unwrap();
    let e = within(20, d.dial()).await.err().unwrap().to_string();
    assert!(e.starts_with("connect to any of 2 managers: "), "{e}");
    assert!(e.contains(&format!("tls://localhost:{a}: ")), "{e}");
    assert!(e.contains(&format!("tls://localhost:{b}: ")), "{e}");
}

#[tokio::test]
async fn a_single_entry_fails_as_before() {
    let c = certs();
    let dead = refused_port().await;
    let d = factory::dialer(&tls_agent(&c, &[dead])).unwrap();
    assert_eq!(d.describe(), format!("tls://localhost:{dead}"));
    let e = within(20, d.dial()).await.err().unwrap().to_string();
    assert!(
        e.starts_with(&format!("connect to localhost:{dead}: ")),
        "{e}"
    );
    assert!(
        !e.contains("managers") && !e.contains("every address"),
        "{e}"
    );
}

#[tokio::test]
async fn random_start_spreads_dials_over_live_managers() {
    let c = certs();
    let (la, lb) = (
        listener(&manager_tls(&c), MIB).await,
        listener(&manager_tls(&c), MIB).await,
    );
    let (pa, pb) = (port(&la), port(&lb));
    serve(la);
    serve(lb);
    let d = factory::dialer(&tls_agent(&c, &[pa, pb])).unwrap();
    let (mut to_a, mut to_b) = (0, 0);
    for _ in 0..40 {
        let (t, answered) = within(20, d.dial_described()).await.unwrap();
        match t.peer().remote_addr.unwrap().port() {
            p if p == pa => to_a += 1,
            p if p == pb => to_b += 1,
            p => panic!("connected to {p}"),
        }
        assert!(answered.ends_with(&t.peer().remote_addr.unwrap().port().to_string()));
    }
    // Always starting from the first entry would give (40, 0).
    assert!(to_a > 0 && to_b > 0, "a: {to_a}, b: {to_b}");
}

#[tokio::test]
async fn a_name_with_two_addresses_uses_the_second_when_the_first_refuses() {
    let c = certs();
    let l = listener(&manager_tls(&c), MIB).await;
    let live = addr(&l);
    serve(l);
    let dead: SocketAddr = format!("127.0.0.1:{}", refused_port().await)
        .parse()
        .unwrap();
    let d = TlsDialer::new(
        "localhost",
        live.port(),
        client_config(&agent_tls(&c)).unwrap(),
        MIB,
    )
    .unwrap()
    .with_addresses(vec![dead, live]);
    let t = within(20, d.dial()).await.unwrap();
    assert_eq!(t.peer().remote_addr, Some(live));

    let d = d.with_addresses(vec![dead, dead]);
    let e = within(20, d.dial()).await.err().unwrap().to_string();
    assert!(e.contains("every address failed"), "{e}");
}

#[tokio::test]
async fn ws_urls_first_refused_the_second_accepts_and_all_refused_names_each() {
    let l = wsup::listener(None, MIB, &[]).await;
    let live = wsup::addr(&l).port();
    serve(l);
    let dead = refused_port().await;
    let url = |port: u16| format!("ws://localhost:{port}{}", wsup::PATH);
    let mut cfg = AgentConfig {
        transport: TransportKind::WebSocket,
        ..AgentConfig::default()
    };
    cfg.websocket.urls = vec![url(dead), url(live)];
    let d = factory::dialer(&cfg).unwrap();
    for _ in 0..24 {
        let (t, answered) = within(20, d.dial_described()).await.unwrap();
        assert_eq!(answered, url(live));
        assert_eq!(t.peer().remote_addr.unwrap().port(), live);
    }
    cfg.websocket.urls = vec![url(dead), url(refused_port().await)];
    let d = factory::dialer(&cfg).unwrap();
    let e = within(20, d.dial()).await.err().unwrap().to_string();
    assert!(e.starts_with("connect to any of 2 managers: "), "{e}");
    for u in &cfg.websocket.urls {
        assert!(e.contains(&format!("{u}: ")), "{e}");
    }
    // A bad URL in a list is named by its place.
    cfg.websocket.urls = vec![url(live), "http://m/x".into()];
    let e = factory::dialer(&cfg).err().unwrap().to_string();
    assert!(e.starts_with("websocket.url: entry 2 of 2: "), "{e}");
}

/// An HTTP CONNECT proxy for many connections: records each target, tunnels to it,
/// answers 502 when the target refuses.
async fn recording_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = l.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read_u8().await {
                        Ok(b) => head.push(b),
                        Err(_) => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(target.clone());
                match TcpStream::connect(&target).await {
                    Ok(mut upstream) => {
                        let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
                        if client.write_all(ok).await.is_ok() {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    }
                    Err(_) => {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn through_a_proxy_each_entry_is_dialed_through_it() {
    let c = certs();
    let l = listener(&manager_tls(&c), MIB).await;
    let live = port(&l);
    serve(l);
    let dead = refused_port().await;
    let (proxy, seen) = recording_proxy().await;
    let mut cfg = tls_agent(&c, &[dead, live]);
    cfg.proxy = Some(proxy.clone());
    let d = factory::dialer(&cfg).unwrap();
    assert!(
        d.describe().contains(&format!("through proxy {proxy}")),
        "{}",
        d.describe()
    );
    for _ in 0..24 {
        let (_t, answered) = within(20, d.dial_described()).await.unwrap();
        assert!(answered.starts_with(&format!("tls://localhost:{live} through proxy")));
    }
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&format!("localhost:{dead}")), "{seen:?}");
    assert!(seen.contains(&format!("localhost:{live}")), "{seen:?}");
    assert!(seen.iter().all(|t| t.starts_with("localhost:")), "{seen:?}");
}
