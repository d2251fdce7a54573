//! TLS TCP transport over loopback: frames both ways, size limits, the HTTP hint, and
//! a concurrent burst through one writer while the same connection reads.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Dialer, Transport, TransportKind};
use redpepper_transports::tls::{client_config, server_config};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[tokio::test]
async fn frames_round_trip_both_directions() {
    let (_c, client, server) = pair(MIB).await;
    assert_eq!(client.peer().kind, TransportKind::Tls);
    assert!(server.peer().remote_addr.unwrap().ip().is_loopback());
    assert_eq!(server.peer().client_cert_subject, None);
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();

    for payload in [&b""[..], b"hello", &[0xc1u8; 70_000]] {
        cw.send(Bytes::copy_from_slice(payload)).await.unwrap();
        assert_eq!(within(5, sr.next()).await.unwrap().unwrap(), payload);
        sw.send(Bytes::copy_from_slice(payload)).await.unwrap();
        assert_eq!(within(5, cr.next()).await.unwrap().unwrap(), payload);
    }

    // A clean close ends the other side's stream.
    cw.close().await.unwrap();
    assert!(within(5, sr.next()).await.is_none());
}

#[tokio::test]
async fn exactly_max_message_size_is_accepted() {
    let (_c, client, server) = pair(MIB).await;
    let (_cr, mut cw) = client.split();
    let (mut sr, _sw) = server.split();
    let payload = Bytes::from(vec![0x5a; MIB]);
    let send = tokio::spawn(async move {
        cw.send(payload).await.unwrap();
        cw
    });
    let got = within(10, sr.next()).await.unwrap().unwrap();
    assert_eq!(got.len(), MIB);
    assert!(got.iter().all(|&b| b == 0x5a));
    let _writer = send.await.unwrap();
}

#[tokio::test]
async fn writer_refuses_a_payload_over_max() {
    let (_c, client, _server) = pair(MIB).await;
    let (_cr, mut cw) = client.split();
    match cw.send(Bytes::from(vec![0; MIB + 1])).await {
        Err(TransportError::TooLarge { len, max }) => assert_eq!((len, max), (MIB + 1, MIB)),
        other => panic!("unexpected {other:?}"),
    }
}

/// A raw TLS client (no framing of ours) connected to `listener`.
async fn raw_client(
    c: &Certs,
    to: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(to).await.unwrap();
    TlsConnector::from(client_config(&agent_tls(c)).unwrap())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn oversized_frame_is_rejected_from_its_header_and_the_connection_closed() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let (raw, server) = tokio::join!(raw_client(&c, addr(&l)), accept_one(&mut l));
    let mut raw = raw;
    let (mut sr, _sw) = server.unwrap().split();

    // Only the 4-byte header announcing 1 MiB + 1 is sent: the body never exists, so
    // the reader can only answer if it decides from the header alone.
    raw.write_all(&((MIB + 1) as u32).to_be_bytes())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    match within(5, sr.next()).await {
        Some(Err(TransportError::TooLarge { len, max })) => {
            assert_eq!((len, max), (MIB + 1, MIB))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(sr.next().await.is_none(), "reader ends after the error");

    // The server closed the connection: the client sees the end of the stream.
    let mut buf = [0u8; 16];
    let n = within(5, raw.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "connection still open");
}

#[tokio::test]
async fn http_answer_is_recognised() {
    let c = certs();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(server_config(&manager_tls(&c)).unwrap());
    let https = tokio::spawn(async move {
        let (sock, _) = tcp.accept().await.unwrap();
        let mut tls = acceptor.accept(sock).await.unwrap();
        let mut buf = [0u8; 64];
        let _ = tls.read(&mut buf).await;
        tls.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        tls.shutdown().await.unwrap();
    });

    let t = dialer(&agent_tls(&c), port, MIB).dial().await.unwrap();
    let (mut r, mut w) = t.split();
    w.send(Bytes::from_static(b"\x81\xa1t\x0a")).await.unwrap();
    match within(5, r.next()).await {
        Some(Err(e @ TransportError::Http)) => {
            assert!(e.to_string().contains("is this port serving HTTP?"), "{e}")
        }
        other => panic!("unexpected {other:?}"),
    }
    https.await.unwrap();
}

#[tokio::test]
async fn frame_cut_short_is_a_protocol_error() {
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let (raw, server) = tokio::join!(raw_client(&c, addr(&l)), accept_one(&mut l));
    let mut raw = raw;
    let (mut sr, _sw) = server.unwrap().split();
    raw.write_all(b"\0\0\0\x10only-part").await.unwrap();
    raw.shutdown().await.unwrap();
    match within(5, sr.next()).await {
        Some(Err(TransportError::Protocol(m))) => assert!(m.contains("middle of a frame"), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Payload: task id, sequence number, then filler of a size that varies with both.
fn burst_payload(task: u8, seq: u32) -> Bytes {
    let mut v = vec![task];
    v.extend_from_slice(&seq.to_be_bytes());
    v.resize(5 + (seq as usize * 37 + task as usize * 101) % 3000, task);
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_burst_through_one_writer_arrives_complete_and_in_order() {
    const PER_TASK: u32 = 5_000;
    let (_c, client, server) = pair(MIB).await;
    let (mut cr, cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let cw = Arc::new(tokio::sync::Mutex::new(cw));

    // Meanwhile the server streams frames to the client: reading and writing run on
    // the same TLS connection at once.
    let server_send = tokio::spawn(async move {
        for seq in 0..PER_TASK {
            sw.feed(burst_payload(9, seq)).await.unwrap();
            if seq % 64 == 0 {
                sw.flush().await.unwrap();
            }
        }
        sw.flush().await.unwrap();
        sw
    });
    let client_recv = tokio::spawn(async move {
        for seq in 0..PER_TASK {
            let got = cr.next().await.unwrap().unwrap();
            assert_eq!(got, burst_payload(9, seq));
        }
    });

    let mut senders = Vec::new();
    for task in 0..2u8 {
        let cw = Arc::clone(&cw);
        senders.push(tokio::spawn(async move {
            let mut seq = 0;
            while seq < PER_TASK {
                let mut w = cw.lock().await;
                // Batches of varying size: several feeds, one flush.
                for _ in 0..(1 + seq % 7) {
                    if seq == PER_TASK {
                        break;
                    }
                    w.feed(burst_payload(task, seq)).await.unwrap();
                    seq += 1;
                }
                w.flush().await.unwrap();
                drop(w);
                tokio::task::yield_now().await;
            }
        }));
    }

    let mut next = [0u32; 2];
    within(60, async {
        while next.iter().any(|&n| n < PER_TASK) {
            let frame = sr.next().await.unwrap().unwrap();
            let task = frame[0] as usize;
            let seq = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
            assert_eq!(seq, next[task], "task {task} out of order");
            assert_eq!(frame, burst_payload(task as u8, seq));
            next[task] += 1;
        }
    })
    .await;
    for s in senders {
        s.await.unwrap();
    }
    within(60, client_recv).await.unwrap();
    let _writer = server_send.await.unwrap();
}

mod idle_memory;
mod records;
mod settings;
mod silent_peer;

/// Accept one session over `l` in the background.
fn accept_session(
    mut l: redpepper_transports::tls::TlsListener,
) -> tokio::task::JoinHandle<Result<redpepper_core::Session, redpepper_core::SessionError>> {
    tokio::spawn(async move {
        let t = accept_one(&mut l).await.unwrap();
        redpepper_core::Session::accept(
            t,
            redpepper_core::SessionConfig::default(),
            &NoAuth,
            Arc::new(redpepper_core::Router::new()),
        )
        .await
    })
}

struct NoAuth;

impl redpepper_core::Authenticator for NoAuth {
    fn authenticate<'a>(
        &'a self,
        _hello: &'a redpepper_core::codec::AgentHello,
        _peer: &'a redpepper_core::PeerInfo,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn before_the_hello_a_frame_over_16_kib_is_refused_from_its_header() {
    let c = certs();
    let l = listener(&manager_tls(&c), MIB).await;
    let to = addr(&l);
    let raw = tokio::spawn(async move {
        let mut raw = raw_client(&c, to).await;
        // A header announcing 16 KiB + 1, no body: refused before any body is read.
        raw.write_all(&(16 * 1024 + 1u32).to_be_bytes())
            .await
            .unwrap();
        raw.flush().await.unwrap();
        let mut buf = [0u8; 16];
        within(5, raw.read(&mut buf)).await.unwrap_or(0)
    });
    let session = accept_session(l);
    let err = within(5, session).await.unwrap().unwrap_err();
    assert!(
        err.to_string()
            .contains("first message of 16385 bytes exceeds the hello limit of 16384 bytes"),
        "{err}"
    );
    assert_eq!(raw.await.unwrap(), 0, "connection closed");
}
