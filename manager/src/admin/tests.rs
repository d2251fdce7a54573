//! The admin API in process: a manager over the in-memory transport, requests sent
//! straight into the router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::future::{join_all, BoxFuture};
use futures::{FutureExt, StreamExt};
use redpepper_core::codec::AgentHello;
use redpepper_core::memory::{listener, MemoryDialer};
use redpepper_core::{Authenticator, PeerInfo, Router, Session, SessionConfig, Value};
use serde_json::{json, Value as Json};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{router, Token};
use crate::Manager;

pub(super) const WAIT: Duration = Duration::from_secs(20);
pub(super) const TOKEN: &str = "test-token-0123456789";

pub(super) struct AnyAgent;

impl Authenticator for AnyAgent {
    fn authenticate<'a>(
        &'a self,
        hello: &'a AgentHello,
        _: &'a PeerInfo,
    ) -> BoxFuture<'a, Result<(), String>> {
        let ok = hello.credentials == "s";
        async move { ok.then_some(()).ok_or_else(|| "bad secret".to_owned()) }.boxed()
    }
}

pub(super) fn cfg() -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::ZERO,
        max_concurrent_requests: 8192,
        ..SessionConfig::default()
    }
}

pub(super) struct Fixture {
    pub(super) manager: Manager,
    pub(super) dialer: MemoryDialer,
    pub(super) app: axum::Router,
}

pub(super) fn start() -> Fixture {
    let (l, dialer) = listener(64);
    let manager = Manager::start_with(cfg(), vec![Box::new(l)], Arc::new(AnyAgent));
    let app = router(
        manager.clone(),
        Token::new(TOKEN).unwrap(),
        CancellationToken::new(),
    );
    Fixture {
        manager,
        dialer,
        app,
    }
}

impl Fixture {
    pub(super) async fn agent(&self, id: &str, router: Router) -> Session {
        let s = Session::connect(
            self.dialer.connect().unwrap(),
            id,
            "s",
            cfg(),
            Arc::new(router),
        )
        .await
        .unwrap();
        self.manager.wait_for_agent(id, WAIT).await.unwrap();
        s
    }

    pub(super) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Json>,
    ) -> (StatusCode, Body) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        (resp.status(), resp.into_body())
    }

    pub(super) async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<Json>,
    ) -> (StatusCode, Json) {
        let (status, body) = self.send(method, path, body).await;
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

pub(super) fn agent_router() -> Router {
    redpepper_agent::operations::router()
}

#[tokio::test]
async fn requests_without_the_token_get_401() {
    let f = start();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdA=="),
        Some(TOKEN),
    ] {
        let mut req = Request::builder().uri("/v1/agents");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = f
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    let (status, body) = f.json("GET", "/v1/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"agents": []}));
    let (status, body) = f.json("GET", "/nowhere", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}

#[tokio::test]
async fn lists_agents_and_calls_them() {
    let f = start();
    let slow = Router::new()
        .method("echo", |ctx| async move {
            Ok(redpepper_core::echo_reply(ctx.args, ctx.kwargs))
        })
        .method("slow", |_| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Value::Nil)
        });
    let _a = f.agent("web1", slow).await;
    let (status, body) = f.json("GET", "/v1/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    let a = &body["agents"][0];
    assert_eq!(
        (a["id"].clone(), a["transport"].clone()),
        (json!("web1"), json!("memory"))
    );
    assert!(a["connected_since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(f.json("GET", "/v1/agents/web1", None).await.1["id"], "web1");

    let call = json!({"method": "echo", "args": ["a"], "kwargs": {"n": 1, "b": {"$bin": "AQI="}}});
    let (status, body) = f.json("POST", "/v1/agents/web1/calls", Some(call)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"agent": "web1", "success": true,
               "data": {"args": ["a"], "kwargs": {"n": 1, "b": {"$bin": "AQI="}}}})
    );

    let (status, body) = f
        .json(
            "POST",
            "/v1/agents/web1/calls",
            Some(json!({"method": "nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["code"], "remote_error");
    assert_eq!(body["error"], "Method nope not found");

    let (status, body) = f
        .json(
            "POST",
            "/v1/agents/web1/calls",
            Some(json!({"method": "slow", "timeout": 0.2})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::GATEWAY_TIMEOUT, json!("timeout"))
    );

    let (status, body) = f
        .json(
            "POST",
            "/v1/agents/db9/calls",
            Some(json!({"method": "echo"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_connected"))
    );
    assert!(body["error"].as_str().unwrap().contains("db9"), "{body}");

    let (status, body) = f
        .json("POST", "/v1/agents/web1/calls", Some(json!({"args": 1})))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("bad_request"))
    );
}

#[tokio::test]
async fn broadcasts_to_a_glob_in_parallel() {
    let f = start();
    let mut keep = Vec::new();
    for id in ["web1", "web2", "web3", "db1"] {
        keep.push(f.agent(id, agent_router()).await);
    }
    let (status, body) = f
        .json(
            "POST",
            "/v1/calls",
            Some(json!({"target": "web*,db7", "method": "echo", "args": ["x"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let agents: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["web1", "web2", "web3", "db7"]);
    assert_eq!(
        body["summary"],
        json!({"total": 4, "succeeded": 3, "failed": 1})
    );
    assert_eq!(body["results"][3]["code"], "not_connected");
    let (status, body) = f
        .json(
            "POST",
            "/v1/calls",
            Some(json!({"target": "zz*", "method": "echo"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("no_match"))
    );
}

#[tokio::test]
async fn runs_operations_with_and_without_streaming() {
    let f = start();
    let _a = f.agent("web1", agent_router()).await;
    let _b = f.agent("web2", agent_router()).await;
    let run = json!({"target": ["web1", "web2"], "operation": "echo.Echo",
                     "kwargs": {"message": "hello", "reverse": true}});
    let (status, body) = f.json("POST", "/v1/runs", Some(run.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["summary"],
        json!({"total": 2, "succeeded": 2, "failed": 0, "changed": 0})
    );
    assert!(
        body["results"][1]["output"]
            .as_str()
            .unwrap()
            .ends_with("\nolleh"),
        "{body}"
    );

    let (status, stream) = f.send("POST", "/v1/runs?stream=true", Some(run)).await;
    assert_eq!(status, StatusCode::OK);
    let bytes = axum::body::to_bytes(stream, usize::MAX).await.unwrap();
    let lines: Vec<Json> = String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds = |agent: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["agent"] == agent)
            .map(|l| l["event"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kinds("web1"), ["started", "progress", "progress", "result"]);
    assert_eq!(kinds("web2"), ["started", "progress", "progress", "result"]);
    assert_eq!(lines.last().unwrap()["event"], "summary");

    let (_, body) = f
        .json(
            "POST",
            "/v1/runs",
            Some(json!({"target": "gone", "operation": "noop.Noop"})),
        )
        .await;
    assert_eq!(body["results"][0]["code"], "not_connected");
    assert_eq!(body["summary"]["failed"], 1);
}

#[tokio::test]
async fn notifications_reach_the_agent_and_events_stream_out() {
    let f = start();
    let (_, events) = f.send("GET", "/v1/events?agent=web*", None).await;
    let mut events = events.into_data_stream();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = agent_router().on_notification(move |_, n| {
        let _ = tx.send(n);
    });
    let agent = f.agent("web1", router).await;
    let (status, _) = f
        .json(
            "POST",
            "/v1/agents/web1/notifications",
            Some(json!({"type": "hello", "data": [1]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let n = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (n.r#type.as_str(), n.data),
        ("hello", Value::Array(vec![Value::from(1)]))
    );

    agent.notify("custom", Value::from("x")).await.unwrap();
    agent.close("shutting down").await;
    let mut seen = String::new();
    while !seen.contains("event: disconnected") {
        let chunk = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let order: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        order,
        ["authenticated", "notification", "disconnected"],
        "{seen}"
    );
    assert!(
        seen.contains(r#""reason":"peer said bye: shutting down""#),
        "{seen}"
    );
}

#[tokio::test]
async fn thousands_of_calls_in_flight_do_not_block_each_other() {
    const N: usize = 2000;
    let f = start();
    let arrived = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (a, r) = (arrived.clone(), release.clone());
    let router = agent_router().method("gate", move |_| {
        let (arrived, release) = (a.clone(), r.clone());
        async move {
            let wait = release.notified();
            if arrived.fetch_add(1, Ordering::SeqCst) + 1 == N {
                release.notify_waiters();
            } else {
                wait.await;
            }
            Ok(Value::from(true))
        }
    });
    let _agent = f.agent("web1", router).await;
    // Every call waits until all N have reached the agent: this finishes only if
    // none of them waits for another.
    let calls = (0..N).map(|_| {
        f.json(
            "POST",
            "/v1/agents/web1/calls",
            Some(json!({"method": "gate"})),
        )
    });
    let results = tokio::time::timeout(Duration::from_secs(120), join_all(calls))
        .await
        .unwrap();
    assert!(results
        .iter()
        .all(|(s, b)| *s == StatusCode::OK && b["data"] == true));

    let (status, text) = f.send("GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(text, usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let ok_calls = text
        .lines()
        .find_map(|l| l.strip_prefix("redpepper_calls_sent_total{outcome=\"ok\"} "))
        .unwrap();
    assert!(ok_calls.parse::<u64>().unwrap() >= N as u64, "{text}");
    assert!(text.contains("redpepper_handshakes_total 1"), "{text}");
}
