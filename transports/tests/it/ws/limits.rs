//! Resource limits of the WebSocket transport against misbehaving clients: pings sent
//! by a client that never reads the pongs, and a request head sent a byte at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;
use crate::support::ws as ws_common;

use bytes::Bytes;
use common::{agent_tls, certs, manager_tls, within, MIB};
use futures::{SinkExt, StreamExt};
use redpepper_core::error::TransportError;
use redpepper_core::transport::Transport;
use redpepper_transports::tls::client_config;
use redpepper_transports::ws::{max_write_buffer, websocket_config, WsIo, WRITE_BUFFER};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use ws_common::*;

/// Stop flooding after this much: without a limit the server would still be
/// reading (and queueing pongs) here.
const FLOOD_CAP: usize = 64 * MIB;

/// A client ping frame with a 125-byte payload (the most a control frame carries),
/// masked with a zero key as RFC 6455 requires of clients.
fn ping_frame() -> Vec<u8> {
    let mut frame = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    frame.extend_from_slice(&[b'p'; 125]);
    frame
}

#[test]
fn the_write_buffer_is_bounded() {
    let config = websocket_config(MIB);
    assert!(config.max_write_buffer_size > WRITE_BUFFER + MIB);
    assert!(config.max_write_buffer_size < WRITE_BUFFER + MIB + MIB);
    // tungstenite requires max_write_buffer_size > write_buffer_size; no overflow.
    assert_eq!(max_write_buffer(usize::MAX), usize::MAX);
    let unlimited = websocket_config(usize::MAX);
    assert!(unlimited.max_write_buffer_size > unlimited.write_buffer_size);
}

/// Send pings on `stream` without reading until writing fails; `None` if it never
/// does within [`FLOOD_CAP`] bytes.
async fn flood(stream: &mut (impl AsyncWrite + Unpin)) -> Option<usize> {
    let batch: Vec<u8> = std::iter::repeat_n(ping_frame(), 256).flatten().collect();
    let mut sent = 0;
    while sent < FLOOD_CAP {
        if stream.write_all(&batch).await.is_err() {
            return Some(sent);
        }
        sent += batch.len();
    }
    None
}

async fn pinging_without_reading_is_disconnected(secure: bool) {
    let c = certs();
    let server_tls = manager_tls(&c);
    let client_tls = agent_tls(&c);
    let mut l = listener(secure.then_some(&server_tls), MIB, &[]).await;
    // A well-behaved session on the same listener, before and after the flood.
    let d = dialer(&l, secure.then_some(&client_tls), MIB);
    let (good_client, good_server) = pair(&mut l, &d).await;
    let (mut gcr, mut gcw) = good_client.split();
    let (mut gsr, mut gsw) = good_server.split();

    // The flooding client: a real upgrade, then raw ping frames and no reads at all,
    // with a small receive buffer so the server's pongs back up early.
    let server_addr = addr(&l);
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let client = async {
        let tcp = socket.connect(server_addr).await.unwrap();
        let io = if secure {
            let connector = TlsConnector::from(client_config(&client_tls).unwrap());
            let name = ServerName::try_from("localhost").unwrap();
            WsIo::Tls(Box::new(connector.connect(name, tcp).await.unwrap().into()))
        } else {
            WsIo::Plain(tcp)
        };
        let scheme = if secure { "wss" } else { "ws" };
        let url = format!("{scheme}://localhost:{}{PATH}", server_addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), io)
            .await
            .unwrap();
        ws
    };
    let (mut raw, flooded) = tokio::join!(client, accept_one(&mut l));
    let (mut fr, mut fw) = flooded.unwrap().split();
    // The server side reads as a session waiting for a hello does: on an error it
    // closes the writer (with no time limit) and drops the connection.
    let server = tokio::spawn(async move {
        let mut pings_only = true;
        let end = loop {
            match fr.next().await {
                Some(Ok(_)) => pings_only = false,
                other => break other,
            }
        };
        // The socket will never drain: closing must not wait for it.
        within(30, fw.close()).await.unwrap();
        assert!(matches!(
            fw.send(Bytes::from_static(b"late")).await,
            Err(TransportError::Closed)
        ));
        (pings_only, end)
    });

    let sent = within(120, flood(raw.get_mut())).await;
    assert!(
        sent.is_some(),
        "still connected after sending {FLOOD_CAP} bytes of pings without reading"
    );

    let (pings_only, end) = within(30, server).await.unwrap();
    assert!(pings_only);
    match end {
        Some(Err(e @ TransportError::Protocol(_))) => {
            assert!(e.to_string().contains("pings"), "{e}");
        }
        other => panic!("expected a protocol error about pings, got {other:?}"),
    }

    // The other session never noticed.
    gcw.send(Bytes::from_static(b"still here")).await.unwrap();
    assert_eq!(
        within(10, gsr.next()).await.unwrap().unwrap(),
        &b"still here"[..]
    );
    gsw.send(Bytes::from_static(b"and here")).await.unwrap();
    assert_eq!(
        within(10, gcr.next()).await.unwrap().unwrap(),
        &b"and here"[..]
    );
}

#[tokio::test]
async fn a_client_that_pings_without_reading_is_disconnected() {
    pinging_without_reading_is_disconnected(false).await;
}

#[tokio::test]
async fn a_wss_client_that_pings_without_reading_is_disconnected() {
    pinging_without_reading_is_disconnected(true).await;
}

#[tokio::test]
async fn a_client_that_reads_its_pongs_is_not_disconnected() {
    let mut l = listener(None, MIB, &[]).await;
    let (mut raw, server) = raw_pair(&mut l).await;
    let (mut sr, _sw) = server.split();
    let reading = tokio::spawn(async move { sr.next().await.map(|r| r.map(|b| b.to_vec())) });
    // Far more pong bytes than the limit, but each one read before the next ping.
    for n in 0..2000u32 {
        let payload = Bytes::from(vec![(n % 251) as u8; 125]);
        raw.send(tokio_tungstenite::tungstenite::Message::Ping(
            payload.clone(),
        ))
        .await
        .unwrap();
        match within(10, raw.next()).await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Pong(data))) => {
                assert_eq!(data, payload)
            }
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    raw.send(tokio_tungstenite::tungstenite::Message::Binary(
        Bytes::from_static(b"after pings"),
    ))
    .await
    .unwrap();
    let got = within(10, reading).await.unwrap();
    assert_eq!(got.unwrap().unwrap(), b"after pings");
}

#[tokio::test]
async fn an_upgrade_sent_a_byte_per_packet_is_accepted() {
    let mut l = listener(None, MIB, &[]).await;
    let a = addr(&l);
    let server = tokio::spawn(async move { accept_one(&mut l).await });
    let mut tcp = TcpStream::connect(a).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut request = format!("GET {PATH} HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..50 {
        request.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(200)));
    }
    request.push_str(
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(request.len() > 10_000);
    // The first frame follows the head at once: a masked binary "hi".
    let frame = [0x82, 0x82, 0, 0, 0, 0, b'h', b'i'];
    within(60, async {
        for byte in request.as_bytes().iter().chain(&frame) {
            tcp.write_all(std::slice::from_ref(byte)).await.unwrap();
        }
    })
    .await;
    let server = within(30, server).await.unwrap().unwrap();
    let mut answer = [0u8; 12];
    within(10, tcp.read_exact(&mut answer)).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 101");
    let (mut sr, _sw) = server.split();
    assert_eq!(within(10, sr.next()).await.unwrap().unwrap(), &b"hi"[..]);
}

#[tokio::test]
async fn before_the_hello_at_most_twice_the_hello_limit_is_read() {
    use redpepper_core::session::HELLO_FRAME_LIMIT;
    let mut l = listener(None, MIB, &[]).await;
    let (mut raw, server) = raw_pair(&mut l).await;
    let limit = server
        .read_limit()
        .expect("websocket shares its read limit");
    assert_eq!(limit.get(), MIB);
    // What the session does until the hello is accepted.
    limit.set(HELLO_FRAME_LIMIT);
    let (mut sr, _sw) = server.split();
    // A 512 KiB message: tungstenite alone would take it (max_message_size is 1 MiB).
    let sending = tokio::spawn(async move {
        let _ = raw
            .send(tokio_tungstenite::tungstenite::Message::Binary(
                Bytes::from(vec![7u8; 512 * 1024]),
            ))
            .await;
        raw
    });
    match within(5, sr.next()).await {
        Some(Err(TransportError::TooLarge { len, max })) => {
            assert_eq!(max, HELLO_FRAME_LIMIT);
            assert!(len <= 2 * HELLO_FRAME_LIMIT, "read {len} bytes");
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(sending);
}

#[tokio::test]
async fn a_hello_sized_message_passes_and_the_restored_limit_applies_after() {
    use redpepper_core::session::HELLO_FRAME_LIMIT;
    let mut l = listener(None, MIB, &[]).await;
    let (mut raw, server) = raw_pair(&mut l).await;
    let limit = server.read_limit().unwrap();
    limit.set(HELLO_FRAME_LIMIT);
    let (mut sr, _sw) = server.split();
    let hello = Bytes::from(vec![1u8; 200]);
    let big = Bytes::from(vec![2u8; 256 * 1024]);
    raw.send(tokio_tungstenite::tungstenite::Message::Binary(
        hello.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(within(5, sr.next()).await.unwrap().unwrap(), hello);
    limit.set(MIB);
    let sending = tokio::spawn(async move {
        raw.send(tokio_tungstenite::tungstenite::Message::Binary(big))
            .await
            .unwrap();
        raw
    });
    assert_eq!(
        within(5, sr.next()).await.unwrap().unwrap().len(),
        256 * 1024
    );
    drop(sending.await.unwrap());
}

#[tokio::test]
async fn large_messages_go_out_in_frames_of_4_kib() {
    // The peer's tungstenite keeps a read buffer as large as the largest frame it read,
    // for the life of the connection: a message above 4 KiB must come in 4 KiB frames.
    // A client refusing frames over 4 KiB still gets the whole 256 KiB message.
    let mut l = listener(None, MIB, &[]).await;
    let addr = addr(&l);
    let url = format!("ws://127.0.0.1:{}{PATH}", addr.port());
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config = websocket_config(MIB).max_frame_size(Some(4096));
        let (ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), tcp, Some(config))
            .await
            .unwrap();
        ws
    };
    let (mut raw, server) = tokio::join!(client, accept_one(&mut l));
    let (_sr, mut sw) = server.unwrap().split();
    let big = Bytes::from(
        (0..256 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let (sent, got) = tokio::join!(sw.send(big.clone()), within(5, raw.next()));
    sent.unwrap();
    match got.unwrap().unwrap() {
        tokio_tungstenite::tungstenite::Message::Binary(b) => assert_eq!(b, big),
        other => panic!("{other:?}"),
    }
}
