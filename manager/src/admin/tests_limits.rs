//! The admin API's limits: JSON error bodies, commands forgotten when a run gives up,
//! streaming runs that end without a reader, replaced sessions, capped event data, and
//! the listener's timers and connection cap (over real sockets).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use redpepper_core::{CallContext, Router, Value};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::serve::Limits;
use super::tests::{start, Fixture, TOKEN, WAIT};
use super::{AdminServer, AdminSettings, Token, BODY_LIMIT};
use crate::ManagerEvent;

async fn raw(
    f: &Fixture,
    method: &str,
    uri: &str,
    body: Body,
) -> (StatusCode, Option<String>, Json) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, allow, json)
}

#[tokio::test]
async fn every_error_answer_is_json_with_a_stable_code() {
    let f = start();
    let (status, allow, body) = raw(&f, "DELETE", "/v1/status", Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    assert!(body["error"].as_str().unwrap().contains("DELETE"), "{body}");
    assert!(allow.unwrap().contains("GET"));

    let big = Body::from(vec![b' '; BODY_LIMIT + 1]);
    let (status, _, body) = raw(&f, "POST", "/v1/runs", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large", "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains(&BODY_LIMIT.to_string()));

    let run = json!({"target": "x1", "operation": "noop.Noop"}).to_string();
    let (status, _, body) = raw(&f, "POST", "/v1/runs?stream=maybe", Body::from(run)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request", "{body}");
    assert!(body["error"].as_str().unwrap().contains("query"), "{body}");
}

/// An agent whose `command` reports each command id to `seen`, then sends `progress`
/// progress updates and never a result.
fn silent_agent(seen: mpsc::UnboundedSender<String>, progress: i64) -> Router {
    Router::new().method("command", move |ctx: CallContext| {
        let seen = seen.clone();
        async move {
            let id = ctx
                .kwarg("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let _ = seen.send(id.clone());
            tokio::spawn(async move {
                for current in 0..progress {
                    let data = Value::Map(vec![
                        (Value::from("command_id"), Value::from(id.as_str())),
                        (Value::from("current"), Value::from(current)),
                        (Value::from("total"), Value::from(progress)),
                        (Value::from("message"), Value::from("working")),
                    ]);
                    if ctx.session.notify("command_progress", data).await.is_err() {
                        return;
                    }
                }
            });
            Ok(Value::Nil)
        }
    })
}

async fn metrics(f: &Fixture) -> String {
    let (_, body) = f.send("GET", "/metrics", None).await;
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_run_that_times_out_or_loses_its_client_forgets_its_command() {
    let f = start();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let _agent = f.agent("q1", silent_agent(tx, 0)).await;
    let session = f.manager.session("q1").unwrap();

    let body = json!({"target": "q1", "operation": "noop.Noop", "timeout": 0.3});
    let (status, out) = f.json("POST", "/v1/runs", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["results"][0]["code"], "timeout", "{out}");
    let id = out["results"][0]["command_id"].as_str().unwrap().to_owned();
    assert_eq!(seen.recv().await.as_deref(), Some(id.as_str()));
    assert!(
        !f.manager.command_followed(&session, &id),
        "{id} still pending"
    );
    assert!(metrics(&f)
        .await
        .contains("\nredpepper_admin_runs_following 0\n"));

    // A client that goes away before the deadline.
    let app = f.app.clone();
    let request = Request::builder()
        .method("POST")
        .uri("/v1/runs")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(
            json!({"target": "q1", "operation": "noop.Noop", "timeout": 600}).to_string(),
        ))
        .unwrap();
    let client = tokio::spawn(async move { app.oneshot(request).await });
    let id = tokio::time::timeout(WAIT, seen.recv())
        .await
        .unwrap()
        .unwrap();
    client.abort();
    assert!(client.await.is_err(), "the run ended by itself");
    assert!(
        !f.manager.command_followed(&session, &id),
        "{id} still pending"
    );
}

#[tokio::test]
async fn a_streaming_run_whose_client_stops_reading_ends_at_its_deadline() {
    let f = start();
    let (tx, mut seen) = mpsc::unbounded_channel();
    // Far more lines than the stream's 256-line buffer.
    let _agent = f.agent("s1", silent_agent(tx, 1000)).await;
    let session = f.manager.session("s1").unwrap();
    let body = json!({"target": "s1", "operation": "noop.Noop", "timeout": 0.5});
    let (status, stream) = f.send("POST", "/v1/runs?stream=true", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let id = tokio::time::timeout(WAIT, seen.recv())
        .await
        .unwrap()
        .unwrap();
    // The clock: a plain run started later, that ends well after the stream's deadline
    // plus its grace for the last lines.
    let later = json!({"target": "s1", "operation": "noop.Noop", "timeout": 4.0});
    let (_, out) = f.json("POST", "/v1/runs", Some(later)).await;
    assert_eq!(out["results"][0]["code"], "timeout", "{out}");
    assert!(
        !f.manager.command_followed(&session, &id),
        "stream still following {id}"
    );
    // The body ends, short of the lines nobody read in time and of the summary.
    let read = tokio::time::timeout(WAIT, stream.into_data_stream().collect::<Vec<_>>());
    let chunks = read.await.expect("the stream never ended");
    let text: String = chunks
        .into_iter()
        .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
        .collect();
    assert!(text.lines().count() < 1000, "every line was delivered");
    assert!(!text.contains("\"summary\""), "{text}");
}

#[tokio::test]
async fn a_replaced_session_is_reported_disconnected() {
    let f = start();
    let _first = f.agent("d1", super::tests::agent_router()).await;
    let mut events = f.manager.events();
    let _second = redpepper_core::Session::connect(
        f.dialer.connect().unwrap(),
        "d1",
        "s",
        super::tests::cfg(),
        std::sync::Arc::new(super::tests::agent_router()),
    )
    .await
    .unwrap();
    let reason = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(ManagerEvent::Disconnected { agent, reason }) = events.recv().await {
                if agent == "d1" {
                    return reason;
                }
            }
        }
    })
    .await
    .expect("no disconnected event for the replaced session");
    assert_eq!(reason, "replaced by a new connection");
}

#[tokio::test]
async fn events_carry_at_most_the_notification_data_limit() {
    let f = start();
    let agent = f.agent("n1", super::tests::agent_router()).await;
    let mut events = f.manager.events();
    let big = "x".repeat(crate::server::EVENT_DATA_LIMIT + 1);
    let data = Value::Map(vec![
        (Value::from("big"), Value::from(big.as_str())),
        (Value::from("small"), Value::from(7)),
    ]);
    agent.notify("report", data).await.unwrap();
    let data = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(ManagerEvent::Notification { notification, .. }) = events.recv().await {
                return notification.data;
            }
        }
    })
    .await
    .unwrap();
    let field = |name: &str| {
        data.as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v.clone())
    };
    assert!(field("big").is_none());
    assert_eq!(field("small").and_then(|v| v.as_i64()), Some(7));
    let size = field("$truncated").and_then(|v| v.as_u64()).unwrap();
    assert!(size > crate::server::EVENT_DATA_LIMIT as u64);
}

async fn serve(f: &Fixture, limits: Limits) -> AdminServer {
    let settings = AdminSettings {
        bind: "127.0.0.1:0".into(),
        token: Token::new(TOKEN).unwrap(),
        tls: None,
        fleet: None,
        console: Default::default(),
    };
    AdminServer::start_with(settings, f.manager.clone(), limits)
        .await
        .unwrap()
}

/// Read until the peer closes the connection (or fails it).
async fn until_closed(c: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        while let Ok(n) = c.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    closed.await.expect("the server kept the connection open");
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n").into_bytes()
}

/// One response (headers and a `content-length` body), as text.
async fn response(c: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if data.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response");
            data.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("no response")
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let f = start();
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = serve(&f, limits).await;
    // Slowloris: a header that never ends.
    let mut slow = TcpStream::connect(server.local_addr()).await.unwrap();
    slow.write_all(b"GET /v1/status HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut slow).await;
    // Keep-alive: one request answered, then nothing.
    let mut idle = TcpStream::connect(server.local_addr()).await.unwrap();
    idle.write_all(&get("/v1/status")).await.unwrap();
    assert!(response(&mut idle).await.starts_with("HTTP/1.1 200"));
    until_closed(&mut idle).await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let f = start();
    let limits = Limits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    let server = serve(&f, limits).await;
    let addr = server.local_addr();
    // An event stream holds a slot and works.
    let mut events = TcpStream::connect(addr).await.unwrap();
    events.write_all(&get("/v1/events")).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&head).contains("\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, events.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        head.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&head).contains("text/event-stream"));
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(&get("/v1/status")).await.unwrap();
    assert!(response(&mut second).await.starts_with("HTTP/1.1 200"));
    // A third waits: asked first, it is still unanswered when the second's next
    // answer says two connections are open.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(&get("/v1/status")).await.unwrap();
    second.write_all(&get("/metrics")).await.unwrap();
    let metrics = response(&mut second).await;
    assert!(
        metrics.contains("\nredpepper_admin_connections 2\n"),
        "{metrics}"
    );
    // Closing a connection frees its slot for the third.
    drop(second);
    assert!(response(&mut third).await.starts_with("HTTP/1.1 200"));
    drop(events);
    server.shutdown().await;
}

#[tokio::test]
async fn a_401_closes_the_kept_alive_connection() {
    let f = start();
    let limits = Limits {
        // Long enough that only the 401 can close the connection within WAIT.
        header_read_timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    let server = serve(&f, limits).await;
    let mut c = TcpStream::connect(server.local_addr()).await.unwrap();
    c.write_all(b"GET /v1/status HTTP/1.1\r\nhost: x\r\nauthorization: Bearer wrong\r\n\r\n")
        .await
        .unwrap();
    let answer = response(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    until_closed(&mut c).await;
    // With the token, the same kind of connection is kept alive for the next request.
    let mut ok = TcpStream::connect(server.local_addr()).await.unwrap();
    ok.write_all(&get("/v1/status")).await.unwrap();
    assert!(response(&mut ok).await.starts_with("HTTP/1.1 200"));
    ok.write_all(&get("/v1/status")).await.unwrap();
    assert!(response(&mut ok).await.starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}
