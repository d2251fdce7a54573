//! The WebSocket transport over loopback: round trips (ws, wss, mTLS), the framing
//! rules (size limit, text messages, pings, close frames), concurrent halves, and the
//! manager's HTTP answers and client addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support as common;
use crate::support::ws as ws_common;

use bytes::Bytes;
use common::{agent_tls, certs, manager_tls, within, MIB};
use futures::{SinkExt, StreamExt};
use redpepper_config::VerifyMode;
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Dialer, Listener, Transport, TransportKind};
use redpepper_transports::tls::server_config;
use redpepper_transports::ws::{WsListener, WsServerOptions, WsUrl};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use ws_common::*;

async fn round_trip(secure: bool) {
    let c = certs();
    let server_tls = manager_tls(&c);
    let client_tls = agent_tls(&c);
    let mut l = listener(secure.then_some(&server_tls), MIB, &[]).await;
    let scheme = if secure { "wss" } else { "ws" };
    assert_eq!(l.kind(), TransportKind::WebSocket);
    assert_eq!(l.describe(), format!("{scheme}://{}{PATH}", addr(&l)));
    let d = dialer(&l, secure.then_some(&client_tls), MIB);
    assert_eq!(
        d.describe(),
        format!("{scheme}://localhost:{}{PATH}", addr(&l).port())
    );
    let (client, server) = pair(&mut l, &d).await;
    assert_eq!(client.peer().kind, TransportKind::WebSocket);
    assert_eq!(client.peer().remote_addr, Some(addr(&l)));
    assert_eq!(server.peer().kind, TransportKind::WebSocket);
    assert!(server.peer().remote_addr.unwrap().ip().is_loopback());
    assert_eq!(server.peer().client_cert_subject, None);

    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    // A batch: fed one by one, flushed once; every payload arrives whole and in order.
    for i in 0..100u32 {
        cw.feed(Bytes::from(vec![i as u8; i as usize * 97]))
            .await
            .unwrap();
    }
    cw.flush().await.unwrap();
    for i in 0..100u32 {
        let got = within(10, sr.next()).await.unwrap().unwrap();
        assert_eq!(got, vec![i as u8; i as usize * 97]);
    }
    sw.send(Bytes::from_static(b"")).await.unwrap();
    sw.send(Bytes::from_static(b"\x93\x01\x02\x03"))
        .await
        .unwrap();
    assert_eq!(within(5, cr.next()).await.unwrap().unwrap(), &b""[..]);
    assert_eq!(
        within(5, cr.next()).await.unwrap().unwrap(),
        &b"\x93\x01\x02\x03"[..]
    );

    // close: a close frame, then a clean end of stream on the other side.
    cw.close().await.unwrap();
    assert!(within(5, sr.next()).await.is_none());
    assert!(within(5, cr.next()).await.is_none());
    assert!(matches!(
        cw.send(Bytes::from_static(b"late")).await,
        Err(TransportError::Closed)
    ));
}

#[tokio::test]
async fn round_trip_over_ws() {
    round_trip(false).await;
}

#[tokio::test]
async fn round_trip_over_wss() {
    round_trip(true).await;
}

#[tokio::test]
async fn mtls_records_the_client_certificate_subject() {
    let c = certs();
    let mut server_tls = manager_tls(&c);
    server_tls.verify_mode = VerifyMode::Required;
    let mut client_tls = agent_tls(&c);
    client_tls.cert_file = Some(c.files.agent_cert.clone());
    client_tls.key_file = Some(c.files.agent_key.clone());
    let mut l = listener(Some(&server_tls), MIB, &[]).await;
    let d = dialer(&l, Some(&client_tls), MIB);
    let (_client, server) = pair(&mut l, &d).await;
    assert_eq!(
        server.peer().client_cert_subject.as_deref(),
        Some("CN=agent,O=RedPepper development")
    );

    // Without a client certificate the TLS handshake is refused.
    let d = dialer(&l, Some(&agent_tls(&c)), MIB);
    let (client, server) = tokio::join!(d.dial(), accept_one(&mut l));
    assert!(matches!(server.unwrap_err(), TransportError::Tls(_)));
    assert!(client.is_err(), "the upgrade cannot succeed without TLS");
}

#[tokio::test]
async fn wrong_certificate_name_is_a_tls_error_naming_the_url() {
    let c = certs();
    // The dev certificate names localhost and 127.0.0.1, not 127.0.0.2.
    let options = WsServerOptions {
        tls: Some(server_config(&manager_tls(&c)).unwrap()),
        ..WsServerOptions::new(PATH, MIB)
    };
    let mut l = WsListener::bind("127.0.0.2:0".parse().unwrap(), options)
        .await
        .unwrap();
    let url = WsUrl::parse(&format!("wss://127.0.0.2:{}{PATH}", addr(&l).port())).unwrap();
    let d = dialer_for(url, Some(&agent_tls(&c)), MIB);
    let (client, _server) = tokio::join!(d.dial(), accept_one(&mut l));
    let e = client.unwrap_err();
    assert!(matches!(e, TransportError::Tls(_)), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("wss://127.0.0.2:{}{PATH}", addr(&l).port())),
        "{e}"
    );
}

#[tokio::test]
async fn max_message_size_is_enforced_both_ways() {
    let max = 64 * 1024;
    let mut l = listener(None, max, &[]).await;
    let d = dialer(&l, None, max);
    let (client, _server) = pair(&mut l, &d).await;
    let (_cr, mut cw) = client.split();
    let e = cw.send(Bytes::from(vec![0; max + 1])).await.unwrap_err();
    assert!(
        matches!(e, TransportError::TooLarge { len, max: m } if len == max + 1 && m == max),
        "{e}"
    );

    // From a peer that ignores the limit: exactly max passes, one byte more is refused
    // from the frame header and the connection is closed with 1009.
    let (mut raw, server) = raw_pair(&mut l).await;
    let (mut sr, _sw) = server.split();
    raw.send(Message::Binary(Bytes::from(vec![7; max])))
        .await
        .unwrap();
    assert_eq!(within(10, sr.next()).await.unwrap().unwrap().len(), max);
    raw.send(Message::Binary(Bytes::from(vec![7; max + 1])))
        .await
        .unwrap();
    let e = within(10, sr.next()).await.unwrap().unwrap_err();
    assert!(
        matches!(e, TransportError::TooLarge { len, max: m } if len == max + 1 && m == max),
        "{e}"
    );
    assert!(within(5, sr.next()).await.is_none());
    match within(10, raw.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close frame with 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn fragmented_messages_count_whole() {
    let max = 1000;
    let mut l = listener(None, max, &[]).await;
    let (mut raw, server) = raw_pair(&mut l).await;
    let (mut sr, _sw) = server.split();
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let part = |op, fin| Frame::message(Bytes::from(vec![1u8; 600]), op, fin);
    raw.send(Message::Frame(part(OpCode::Data(Data::Binary), false)))
        .await
        .unwrap();
    raw.send(Message::Frame(part(OpCode::Data(Data::Continue), true)))
        .await
        .unwrap();
    let e = within(10, sr.next()).await.unwrap().unwrap_err();
    assert!(
        matches!(e, TransportError::TooLarge { max: 1000, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn a_text_message_is_a_protocol_error_and_closes() {
    let mut l = listener(None, MIB, &[]).await;
    let (mut raw, server) = raw_pair(&mut l).await;
    let (mut sr, _sw) = server.split();
    raw.send(Message::Text("{\"hello\": 1}".into()))
        .await
        .unwrap();
    let e = within(10, sr.next()).await.unwrap().unwrap_err();
    assert!(matches!(e, TransportError::Protocol(_)), "{e}");
    assert!(e.to_string().contains("text WebSocket message"), "{e}");
    match within(10, raw.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Unsupported),
        other => panic!("expected a close frame with 1003, got {other:?}"),
    }
}

#[tokio::test]
async fn pings_are_answered_without_anything_written() {
    let mut l = listener(None, MIB, &[]).await;
    let (mut raw, server) = raw_pair(&mut l).await;
    let (mut sr, _sw) = server.split();
    // The session always reads; nothing is ever written on the server side here.
    let reading = tokio::spawn(async move { sr.next().await.map(|r| r.map(|b| b.to_vec())) });
    for n in 0..3u8 {
        raw.send(Message::Ping(Bytes::from(vec![n; 4])))
            .await
            .unwrap();
        match within(10, raw.next()).await {
            Some(Ok(Message::Pong(data))) => assert_eq!(data, vec![n; 4]),
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    raw.send(Message::Binary(Bytes::from_static(b"after pings")))
        .await
        .unwrap();
    let got = within(10, reading).await.unwrap();
    assert_eq!(got.unwrap().unwrap(), b"after pings");
}

#[tokio::test]
async fn a_peer_close_frame_ends_the_stream_cleanly_and_is_answered() {
    let mut l = listener(None, MIB, &[]).await;
    let (mut raw, server) = raw_pair(&mut l).await;
    let (mut sr, mut sw) = server.split();
    raw.close(None).await.unwrap();
    assert!(within(10, sr.next()).await.is_none());
    // tungstenite saw our reply (its stream ends instead of failing).
    while let Some(item) = within(10, raw.next()).await {
        assert!(matches!(item, Ok(Message::Close(_))), "unexpected {item:?}");
    }
    assert!(sw.send(Bytes::from_static(b"x")).await.is_err());
}

#[tokio::test]
async fn halves_work_from_two_tasks_at_once() {
    let c = certs();
    let server_tls = manager_tls(&c);
    let mut l = listener(Some(&server_tls), MIB, &[]).await;
    let d = dialer(&l, Some(&agent_tls(&c)), MIB);
    let (client, server) = pair(&mut l, &d).await;
    const N: usize = 2000;
    let payload = Bytes::from(vec![42u8; 3000]);
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    // Both sides write far more than the socket buffers hold while both read: a
    // deadlock between the halves would hang here.
    for side in [client, server] {
        let (mut r, mut w) = side.split();
        let p = payload.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..N {
                w.feed(p.clone()).await.unwrap();
            }
            w.flush().await.unwrap();
            w
        }));
        readers.push(tokio::spawn(async move {
            for _ in 0..N {
                assert_eq!(r.next().await.unwrap().unwrap().len(), 3000);
            }
            r
        }));
    }
    let mut kept = Vec::new();
    for w in writers {
        kept.push(within(60, w).await.unwrap());
    }
    for r in readers {
        drop(within(60, r).await.unwrap());
    }
    drop(kept);
}

mod http;
mod limits;
mod proxy;
