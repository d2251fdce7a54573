//! Memory an idle TLS connection keeps after one large message: the read buffer (and
//! the writer's frame buffer) must go back to their small size. `#[ignore]`d: it opens
//! 400 TLS connections and prints figures (no assertion on them beyond a generous one);
//! run it with
//! `MALLOC_ARENA_MAX=1 MALLOC_TRIM_THRESHOLD_=0 MALLOC_MMAP_THRESHOLD_=4096 cargo test -p redpepper-transports --test it tls::idle_memory -- --ignored --nocapture`.
//!
//! The figure is the process's resident set size (/proc/self/statm); the glibc settings
//! make every buffer of 4 KiB or more an mmap given back on free, one arena, heap top
//! trimmed (otherwise glibc keeps freed memory cached and RSS says little about what
//! the connections hold). A counting allocator would be exact but needs `unsafe`,
//! which the workspace forbids.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use redpepper_core::transport::{Dialer, Transport};

use super::*;

/// Resident set size of this process, from /proc/self/statm (Linux).
fn rss() -> isize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: isize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const AGENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opens 400 TLS connections and prints memory figures"]
async fn idle_connections_give_back_a_large_message() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let d = dialer(&agent_tls(&c), port(&l), MIB);
    let mut pairs = Vec::new();
    for _ in 0..AGENTS {
        let (client, server) = tokio::join!(d.dial(), accept_one(&mut l));
        let (cr, cw) = client.unwrap().split();
        let (sr, sw) = server.unwrap().split();
        pairs.push((cr, cw, sr, sw));
    }
    // One small round trip each, so every buffer has seen traffic.
    for (cr, cw, sr, sw) in &mut pairs {
        cw.send(Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(&sr.next().await.unwrap().unwrap()[..], b"hello");
        sw.send(Bytes::from_static(b"welcome")).await.unwrap();
        assert_eq!(&cr.next().await.unwrap().unwrap()[..], b"welcome");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = rss();
    // One 1 MiB message each way per connection (an agent's big notification, the
    // manager's big echo answer), then a small one, then idle.
    let big = Bytes::from(vec![0x5a; MIB - 64]);
    for (cr, cw, sr, sw) in &mut pairs {
        let (sent, got) = tokio::join!(cw.send(big.clone()), sr.next());
        sent.unwrap();
        assert_eq!(got.unwrap().unwrap().len(), big.len());
        let (sent, got) = tokio::join!(sw.send(big.clone()), cr.next());
        sent.unwrap();
        assert_eq!(got.unwrap().unwrap().len(), big.len());
    }
    drop(big);
    for (cr, cw, sr, sw) in &mut pairs {
        cw.send(Bytes::from_static(b"ping")).await.unwrap();
        sr.next().await.unwrap().unwrap();
        sw.send(Bytes::from_static(b"pong")).await.unwrap();
        cr.next().await.unwrap().unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = rss();
    let per_pair = (after - before) / AGENTS as isize;
    println!(
        "idle_memory: {AGENTS} TLS connection pairs (both ends in this process): RSS \
         {before} B before, {after} B after one 1 MiB message each way: {per_pair} B more per pair \
         ({} B per connection end)",
        per_pair / 2
    );

    assert!(
        per_pair < 128 * 1024,
        "a large message left {per_pair} B per connection pair"
    );
    drop(pairs);
}
