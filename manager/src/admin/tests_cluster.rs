//! The admin API's cluster parts on a lone manager: `/v1/cluster`, `node` on agents
//! and events, `?node=` filters, and another node's events (`ManagerEvent::Remote`)
//! rendered and filtered like local ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use redpepper_core::{Notification, Value, VERSION};
use serde_json::{json, Value as Json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::events::{event_stream, EventsQuery, Filter};
use super::tests::{agent_router, start, Fixture, TOKEN, WAIT};
use super::{AppState, Token};
use crate::ManagerEvent;

#[tokio::test]
async fn a_lone_manager_lists_itself_as_the_cluster() {
    let f = start();
    let _a = f.agent("web1", agent_router()).await;
    let (status, body) = f.json("GET", "/v1/cluster", None).await;
    assert_eq!(status, StatusCode::OK);
    let me = f.manager.node_name();
    assert!(!me.is_empty());
    assert_eq!(body["node"], me, "{body}");
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{body}");
    let n = &nodes[0];
    assert_eq!(
        (&n["name"], &n["state"], &n["agents"]),
        (&json!(me), &json!("local"), &json!(1)),
        "{body}"
    );
    assert_eq!(n["last_heartbeat"], Json::Null, "{body}");
    assert_eq!(n["version"], VERSION, "{body}");
    assert!(
        n["started"].is_null() || n["started"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );

    // The token is required here as everywhere.
    let req = Request::builder()
        .uri("/v1/cluster")
        .body(Body::empty())
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn agents_and_status_name_their_node_and_filter_by_it() {
    let f = start();
    let _a = f.agent("web1", agent_router()).await;
    let _b = f.agent("web2", agent_router()).await;
    let me = f.manager.node_name().to_owned();
    let (_, body) = f.json("GET", "/v1/agents", None).await;
    let nodes: Vec<&Json> = body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["node"])
        .collect();
    assert_eq!(nodes, [&json!(me), &json!(me)], "{body}");
    assert_eq!(f.json("GET", "/v1/agents/web2", None).await.1["node"], me);
    assert_eq!(f.json("GET", "/v1/status", None).await.1["node"], me);

    let (status, body) = f
        .json("GET", &format!("/v1/agents?node={me}&target=web2"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&Json> = body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!("web2")], "{body}");
    let (_, body) = f.json("GET", "/v1/agents?node=no-such-node", None).await;
    assert_eq!(body, json!({"agents": []}));
    // An empty filter filters nothing.
    let (_, body) = f.json("GET", "/v1/agents?node=", None).await;
    assert_eq!(body["agents"].as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn notifications_go_through_the_routed_manager() {
    let f = start();
    let (status, body) = f
        .json(
            "POST",
            "/v1/agents/gone/notifications",
            Some(json!({"type": "hello"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_connected"))
    );
    assert!(body["error"].as_str().unwrap().contains("gone"), "{body}");
}

/// The state the event stream runs on, for a stream over a channel of our own.
fn state(f: &Fixture) -> AppState {
    AppState {
        manager: f.manager.clone(),
        token: Arc::new(Token::new(TOKEN).unwrap()),
        stats: Arc::default(),
        started: SystemTime::now(),
        shutdown: CancellationToken::new(),
        runs: Arc::default(),
        fleet: Arc::default(),
        console: Arc::new(super::console::Console::new(Default::default(), false)),
    }
}

fn remote(node: &str, event: ManagerEvent) -> ManagerEvent {
    ManagerEvent::Remote {
        node: node.to_owned(),
        event: Box::new(event),
    }
}

/// The next event of an SSE stream: its `event:` type and its JSON.
async fn next_event<S>(stream: &mut S) -> (String, Json)
where
    S: futures::Stream<Item = Result<axum::body::Bytes, std::convert::Infallible>> + Unpin,
{
    let chunk = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .unwrap();
    let text = std::str::from_utf8(&chunk).unwrap();
    let kind = text
        .lines()
        .find_map(|l| l.strip_prefix("event: "))
        .unwrap_or_else(|| panic!("no event line: {text}"));
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data line: {text}"));
    (kind.to_owned(), serde_json::from_str(data).unwrap())
}

#[tokio::test]
async fn other_nodes_events_carry_their_node_and_filter_by_it() {
    let f = start();
    let me = f.manager.node_name().to_owned();
    let (tx, _) = broadcast::channel(16);
    let query = |node: Option<&str>| EventsQuery {
        node: node.map(str::to_owned),
        ..EventsQuery::default()
    };
    let stream = |node: Option<&str>| {
        Box::pin(event_stream(
            state(&f),
            tx.subscribe(),
            Filter::new(query(node)).unwrap(),
            f.manager.watch_events(),
        ))
    };
    let mut only_b = stream(Some("mgr-b"));
    let mut only_me = stream(Some(&me));
    let mut all = stream(None);

    let local = ManagerEvent::Connected {
        agent: "web1".into(),
        peer: "memory".into(),
    };
    tx.send(local).unwrap();
    tx.send(remote(
        "mgr-b",
        ManagerEvent::Connected {
            agent: "db1".into(),
            peer: "tls://10.0.0.2:40000".into(),
        },
    ))
    .unwrap();
    // Never sent by a node; dropped rather than shown with the wrong node.
    tx.send(remote(
        "mgr-b",
        remote("mgr-c", ManagerEvent::Accepted { peer: "x".into() }),
    ))
    .unwrap();
    tx.send(remote(
        "mgr-b",
        ManagerEvent::Notification {
            agent: "db1".into(),
            notification: Notification {
                r#type: "command_result".into(),
                data: Value::Map(vec![
                    (Value::from("id"), Value::from("c1")),
                    (Value::from("success"), Value::from(true)),
                    (Value::from("changed"), Value::from(false)),
                    (Value::from("output"), Value::from("done")),
                ]),
            },
        },
    ))
    .unwrap();
    tx.send(remote(
        "mgr-b",
        ManagerEvent::Disconnected {
            agent: "db1".into(),
            reason: "node mgr-b is gone".into(),
        },
    ))
    .unwrap();
    // The last event, for the local-only stream to end on.
    tx.send(ManagerEvent::Disconnected {
        agent: "web1".into(),
        reason: "bye".into(),
    })
    .unwrap();

    // ?node=mgr-b: the local event first in the channel is not there.
    let (kind, ev) = next_event(&mut only_b).await;
    assert_eq!(kind, "authenticated");
    assert_eq!(
        (&ev["agent"], &ev["node"], &ev["peer"]),
        (
            &json!("db1"),
            &json!("mgr-b"),
            &json!("tls://10.0.0.2:40000")
        ),
        "{ev}"
    );
    // Another node's session is not looked up here.
    assert_eq!(ev["version"], Json::Null, "{ev}");
    let (kind, ev) = next_event(&mut only_b).await;
    assert_eq!(kind, "command_result", "{ev}");
    assert_eq!(
        (&ev["agent"], &ev["node"], &ev["command_id"], &ev["output"]),
        (&json!("db1"), &json!("mgr-b"), &json!("c1"), &json!("done")),
        "{ev}"
    );
    let (kind, ev) = next_event(&mut only_b).await;
    assert_eq!(kind, "disconnected", "{ev}");
    assert_eq!(ev["reason"], "node mgr-b is gone", "{ev}");

    // ?node=this node: only the local ones.
    for want in ["authenticated", "disconnected"] {
        let (kind, ev) = next_event(&mut only_me).await;
        assert_eq!((kind.as_str(), &ev["agent"]), (want, &json!("web1")));
        assert_eq!(ev["node"], me, "{ev}");
    }

    // No filter: all of them in order, each with its node; the nested one dropped.
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (kind, ev) = next_event(&mut all).await;
        seen.push(format!("{kind}@{}", ev["node"].as_str().unwrap()));
    }
    assert_eq!(
        seen,
        [
            format!("authenticated@{me}"),
            "authenticated@mgr-b".to_owned(),
            "command_result@mgr-b".to_owned(),
            "disconnected@mgr-b".to_owned(),
            format!("disconnected@{me}"),
        ]
    );
}

#[tokio::test]
async fn the_event_stream_names_this_node() {
    let f = start();
    let me = f.manager.node_name().to_owned();
    let (status, events) = f
        .send(
            "GET",
            &format!("/v1/events?node={me}&types=authenticated"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut events = events.into_data_stream();
    let _a = f.agent("web1", agent_router()).await;
    let chunk = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = std::str::from_utf8(&chunk).unwrap();
    let data: Json =
        serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(
        (&data["type"], &data["agent"], &data["node"]),
        (&json!("authenticated"), &json!("web1"), &json!(me)),
        "{text}"
    );
    // A local session's version is read from it.
    assert!(data["version"].is_string(), "{text}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_cluster_parts() {
    let f = start();
    let (_, spec) = f.json("GET", "/v1/openapi.json", None).await;
    assert!(spec["paths"]["/v1/cluster"]["get"].is_object());
    let schemas = &spec["components"]["schemas"];
    assert!(schemas["Agent"]["properties"]["node"].is_object());
    assert!(schemas["Node"]["properties"]["last_heartbeat"].is_object());
    let params = spec["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(params.iter().any(|p| p["name"] == "node"));
}
