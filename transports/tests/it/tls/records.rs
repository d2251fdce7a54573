//! Proof of the writer's wire shape: each frame in its own TLS record, and a batch
//! (many `feed`s, one `flush`) in a single socket write.
//!
//! ```text
//! client ──Counting<TcpStream>──▶ relay (parses TLS record headers) ──▶ server
//!          counts write calls          counts application_data records
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use redpepper_core::transport::Transport;
use redpepper_transports::tls::client_config;
use redpepper_transports::TlsTransport;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A stream that counts the write calls reaching it (each one a `write` syscall on a
/// socket).
struct Counting {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Forward `from` to `to`, counting TLS application_data records (content type 23)
/// by their 5-byte headers: type, version (2 bytes), length (2 bytes, big-endian).
async fn count_records(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    app_records: Arc<AtomicUsize>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        // Count every complete record before forwarding the bytes, so the count is
        // final by the time the server has read them.
        while pending.len() >= 5 {
            let len = u16::from_be_bytes([pending[3], pending[4]]) as usize;
            if pending.len() < 5 + len {
                break;
            }
            if pending[0] == 23 {
                app_records.fetch_add(1, Ordering::SeqCst);
            }
            pending.drain(..5 + len);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn relay(server: std::net::SocketAddr) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let records = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&records);
    tokio::spawn(async move {
        let (client, _) = l.accept().await.unwrap();
        let upstream = TcpStream::connect(server).await.unwrap();
        let (cr, cw) = client.into_split();
        let (ur, uw) = upstream.into_split();
        tokio::spawn(count_records(cr, uw, counter));
        // Server to client: plain copy.
        let (mut ur, mut cw) = (ur, cw);
        let _ = tokio::io::copy(&mut ur, &mut cw).await;
    });
    (port, records)
}

#[tokio::test]
async fn each_frame_has_its_own_record_and_a_batch_is_one_socket_write() {
    const BATCH: usize = 50;
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let (relay_port, records) = relay(addr(&l)).await;

    let writes = Arc::new(AtomicUsize::new(0));
    let tcp = TcpStream::connect(("127.0.0.1", relay_port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let counting = Counting {
        inner: tcp,
        writes: Arc::clone(&writes),
    };
    let client = TlsTransport::connect(
        counting,
        client_config(&agent_tls(&c)).unwrap(),
        ServerName::try_from("localhost").unwrap(),
        None,
        MIB,
    );
    let (client, server) = tokio::join!(client, accept_one(&mut l));
    let (mut cr, mut cw) = client.unwrap().split();
    let (mut sr, mut sw) = server.unwrap().split();

    // Warm up: one frame each way, so the handshake (including TLS 1.3 tickets) is over.
    cw.send(Bytes::from_static(b"warm-up")).await.unwrap();
    within(5, sr.next()).await.unwrap().unwrap();
    sw.send(Bytes::from_static(b"ack")).await.unwrap();
    within(5, cr.next()).await.unwrap().unwrap();

    let records_before = records.load(Ordering::SeqCst);
    let writes_before = writes.load(Ordering::SeqCst);
    for i in 0..BATCH {
        cw.feed(Bytes::from(format!("small frame {i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        writes.load(Ordering::SeqCst),
        writes_before,
        "nothing reaches the socket before flush"
    );
    cw.flush().await.unwrap();
    let socket_writes = writes.load(Ordering::SeqCst) - writes_before;

    for i in 0..BATCH {
        let got = within(5, sr.next()).await.unwrap().unwrap();
        assert_eq!(got, format!("small frame {i}").as_bytes());
    }
    let app_records = records.load(Ordering::SeqCst) - records_before;
    eprintln!(
        "batch of {BATCH} frames: {app_records} TLS records, {socket_writes} socket write(s)"
    );
    assert!(
        app_records >= BATCH,
        "only {app_records} records for {BATCH} frames"
    );
    assert_eq!(socket_writes, 1, "a small batch is one socket write");
}

/// Control for the instrument: frames concatenated into one plaintext write (what the
/// writer must never do) travel in a single record, and the relay sees exactly that.
#[tokio::test]
async fn relay_detects_frames_sharing_a_record() {
    const BATCH: usize = 50;
    let c = certs();
    let mut l = listener(&manager_tls(&c), MIB).await;
    let (relay_port, records) = relay(addr(&l)).await;
    let raw = async {
        let tcp = TcpStream::connect(("127.0.0.1", relay_port)).await.unwrap();
        tokio_rustls::TlsConnector::from(client_config(&agent_tls(&c)).unwrap())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    };
    let (mut raw, server) = tokio::join!(raw, accept_one(&mut l));
    let (mut sr, _sw) = server.unwrap().split();

    raw.write_all(b"\0\0\0\x07warm-up").await.unwrap();
    raw.flush().await.unwrap();
    within(5, sr.next()).await.unwrap().unwrap();
    let before = records.load(Ordering::SeqCst);
    let mut glued = Vec::new();
    for i in 0..BATCH {
        let payload = format!("small frame {i}");
        glued.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        glued.extend_from_slice(payload.as_bytes());
    }
    raw.write_all(&glued).await.unwrap();
    raw.flush().await.unwrap();
    for _ in 0..BATCH {
        within(5, sr.next()).await.unwrap().unwrap();
    }
    assert_eq!(records.load(Ordering::SeqCst) - before, 1);
}
