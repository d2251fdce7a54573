//! The request/response endpoints: status, agents, the cluster's nodes, calls (one
//! agent or many), notifications, `/metrics`, the OpenAPI document.
//!
//! Everything that reaches an agent goes through the routed [`Manager`] methods
//! (`call`, `notify`), so it works for agents on any node of a cluster; lists come
//! from [`Manager::agents`], the whole cluster's.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::future::join_all;
use redpepper_core::{Kwargs, Value, VERSION};
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::convert::{json_to_args, json_to_kwargs, json_to_value, value_to_json};
use super::error::ApiError;
use super::target::{self, rfc3339, Target};
use super::AppState;
use crate::agents::AgentInfo;
use crate::error::ManagerError;
use crate::Manager;

/// Default timeout of a call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /v1/status`.
pub(crate) async fn status(State(state): State<AppState>) -> Json<Json_> {
    let m = &state.manager;
    let listening: Vec<Json_> = m
        .listening()
        .iter()
        .map(|(kind, describe, addr)| {
            json!({"transport": kind.as_str(), "address": describe, "bound": addr.map(|a| a.to_string())})
        })
        .collect();
    Json(json!({
        "version": VERSION,
        "node": m.node_name(),
        "started": rfc3339(state.started),
        "uptime_seconds": SystemTime::now().duration_since(state.started).unwrap_or_default().as_secs_f64(),
        "agents": m.agents().len(),
        "listening": listening,
    }))
}

pub(crate) fn agent_json(a: &AgentInfo) -> Json_ {
    json!({
        "id": a.id,
        "state": "connected",
        "node": a.node,
        "transport": a.transport.as_str(),
        "remote_addr": a.remote_addr.map(|x| x.to_string()),
        "cert_subject": a.client_cert_subject,
        "broker_user": a.broker_user,
        "version": a.version,
        "connected_since": rfc3339(a.connected_since),
        "connected_seconds": SystemTime::now().duration_since(a.connected_since).unwrap_or_default().as_secs(),
        "last_ping_rtt_ms": a.last_rtt.map(|d| d.as_secs_f64() * 1000.0),
        "calls_in_flight": a.calls_in_flight,
    })
}

/// Query of `GET /v1/agents`.
#[derive(Debug, Deserialize)]
pub(crate) struct AgentsQuery {
    target: Option<String>,
    node: Option<String>,
    /// Also list the agents of `agents.yml` connected nowhere, as `down`.
    down: Option<bool>,
}

/// A `down` agent: in `agents.yml`, connected to no node.
fn down_json(id: &str, last_seen: Option<SystemTime>) -> Json_ {
    json!({
        "id": id,
        "state": "down",
        "node": null,
        "last_seen": last_seen.map(rfc3339),
        "last_seen_seconds_ago": last_seen
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default().as_secs()),
    })
}

/// `GET /v1/agents[?target=GLOB][&node=NAME][&down=true]`: connected agents (the whole
/// cluster's); with `down=true` also each agent of `agents.yml` connected nowhere,
/// with `state: down` and when it was last seen.
pub(crate) async fn agents(
    State(state): State<AppState>,
    Query(q): Query<AgentsQuery>,
) -> Result<Json<Json_>, ApiError> {
    let mut infos = state.manager.agents();
    let with_down = q.down.unwrap_or(false) && q.node.as_deref().is_none_or(str::is_empty);
    let mut down: Vec<String> = if with_down {
        let up: std::collections::HashSet<&str> = infos.iter().map(|a| a.id.as_str()).collect();
        state
            .fleet
            .known()
            .into_iter()
            .filter(|id| !up.contains(id.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    if let Some(t) = q.target.filter(|t| !t.is_empty()) {
        let ids: Vec<String> = infos
            .iter()
            .map(|a| a.id.clone())
            .chain(down.iter().cloned())
            .collect();
        let chosen = match target::select(&Target::One(t), &ids) {
            Ok(chosen) => chosen,
            Err(e) if e.code == "no_match" => Vec::new(),
            Err(e) => return Err(e),
        };
        let chosen: std::collections::HashSet<String> = chosen.into_iter().collect();
        infos.retain(|a| chosen.contains(&a.id));
        down.retain(|id| chosen.contains(id));
    }
    if let Some(node) = q.node.filter(|n| !n.is_empty()) {
        infos.retain(|a| a.node == node);
    }
    let mut list: Vec<Json_> = infos.iter().map(agent_json).collect();
    list.extend(
        down.iter()
            .map(|id| down_json(id, state.fleet.last_seen.get(id))),
    );
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!({"agents": list})))
}

/// `GET /v1/agents/{id}`.
pub(crate) async fn agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    state
        .manager
        .agents()
        .iter()
        .find(|a| a.id == id)
        .map(|a| Json(agent_json(a)))
        .ok_or_else(|| not_connected(&id))
}

/// `GET /v1/cluster`: this node's name and every node it knows (itself first; a lone
/// manager lists itself alone).
pub(crate) async fn cluster(State(state): State<AppState>) -> Json<Json_> {
    let now = SystemTime::now();
    let nodes: Vec<Json_> = state
        .manager
        .cluster_nodes()
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "state": n.state.as_str(),
                "agents": n.agents,
                "last_heartbeat": n.last_heartbeat.map(rfc3339),
                "heartbeat_age_seconds": n.last_heartbeat
                    .map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64()),
                "version": n.version,
                "started": n.started.map(rfc3339),
            })
        })
        .collect();
    Json(json!({"node": state.manager.node_name(), "nodes": nodes}))
}

fn not_connected(id: &str) -> ApiError {
    ApiError::from_manager(&ManagerError::NotConnected(id.to_owned()))
}

/// Body of a call.
#[derive(Debug, Deserialize)]
pub(crate) struct CallBody {
    target: Option<Target>,
    method: String,
    #[serde(default)]
    args: Option<Json_>,
    #[serde(default)]
    kwargs: Option<Json_>,
    timeout: Option<f64>,
}

struct Call {
    method: String,
    args: Vec<Value>,
    kwargs: Kwargs,
    timeout: Duration,
}

fn parse_call(b: &CallBody) -> Result<Call, ApiError> {
    if b.method.is_empty() {
        return Err(ApiError::bad_request("method: expected a method name"));
    }
    let bad = |e: super::convert::ConvertError| ApiError::bad_request(e.to_string());
    Ok(Call {
        method: b.method.clone(),
        args: json_to_args(b.args.as_ref(), "args").map_err(bad)?,
        kwargs: json_to_kwargs(b.kwargs.as_ref(), "kwargs").map_err(bad)?,
        timeout: target::timeout(b.timeout, CALL_TIMEOUT)?,
    })
}

/// One agent's answer, as JSON, with the HTTP status a single call would get.
async fn call_one(manager: &Manager, agent: &str, call: &Call) -> (StatusCode, Json_) {
    let result = manager
        .call(
            agent,
            &call.method,
            call.args.clone(),
            call.kwargs.clone(),
            call.timeout,
        )
        .await;
    match result {
        Ok(data) => (
            StatusCode::OK,
            json!({"agent": agent, "success": true, "data": value_to_json(&data)}),
        ),
        Err(e) => {
            let api = ApiError::from_manager(&e);
            let message = match &e {
                ManagerError::Call {
                    source: redpepper_core::CallError::Remote(text),
                    ..
                } => text.clone(),
                other => other.to_string(),
            };
            (
                api.status,
                json!({"agent": agent, "success": false, "code": api.code, "error": message}),
            )
        }
    }
}

/// `POST /v1/agents/{id}/calls`: `{method, args, kwargs, timeout}`.
pub(crate) async fn call(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let call = parse_call(&target::body(&body)?)?;
    tracing::debug!(agent = %id, method = %call.method, "admin API: call");
    let (status, json) = call_one(&state.manager, &id, &call).await;
    Ok((status, Json(json)).into_response())
}

/// `POST /v1/calls`: `{target, method, args, kwargs, timeout}`, every selected agent in
/// parallel; the whole request is bounded by `timeout` (plus a second of slack).
pub(crate) async fn broadcast(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Json_>, ApiError> {
    let b: CallBody = target::body(&body)?;
    let target = b
        .target
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("target: expected an agent id, glob or list"))?;
    let call = parse_call(&b)?;
    let connected: Vec<String> = state.manager.agents().into_iter().map(|a| a.id).collect();
    let agents = target::select(target, &connected)?;
    tracing::info!(method = %call.method, agents = agents.len(), "admin API: broadcasting call");
    let bound = call.timeout + Duration::from_secs(1);
    let calls = agents.iter().map(|agent| {
        let (manager, call) = (&state.manager, &call);
        async move {
            match tokio::time::timeout(bound, call_one(manager, agent, call)).await {
                Ok((_, json)) => json,
                Err(_) => json!({"agent": agent, "success": false, "code": "timeout",
                                 "error": format!("no answer within {:.1}s", bound.as_secs_f64())}),
            }
        }
    });
    let results = join_all(calls).await;
    let succeeded = results.iter().filter(|r| r["success"] == true).count();
    Ok(Json(json!({
        "results": results,
        "summary": {"total": results.len(), "succeeded": succeeded, "failed": results.len() - succeeded},
    })))
}

/// Body of a notification.
#[derive(Debug, Deserialize)]
pub(crate) struct NotifyBody {
    r#type: String,
    #[serde(default)]
    data: Json_,
}

/// `POST /v1/agents/{id}/notifications`: `{type, data}`.
pub(crate) async fn notify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: NotifyBody = target::body(&body)?;
    if b.r#type.is_empty() {
        return Err(ApiError::bad_request("type: expected a notification type"));
    }
    let data = json_to_value(&b.data, "data").map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(agent = %id, kind = %b.r#type, "admin API: sending notification");
    state
        .manager
        .notify(&id, &b.r#type, data)
        .await
        .map_err(|e| ApiError::from_manager(&e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"agent": id, "type": b.r#type, "sent": true})),
    )
        .into_response())
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(8192);
    state
        .manager
        .metrics()
        .render_prometheus(&mut out, &state.manager.connected_per_transport());
    super::metrics_process::render(&mut out, &state.manager);
    let stats = &state.stats;
    for (name, kind, help, value) in [
        (
            "redpepper_admin_unauthorized_total",
            "counter",
            "Admin API requests refused for a missing or wrong token.",
            &stats.unauthorized,
        ),
        (
            "redpepper_admin_events_missed_total",
            "counter",
            "Events a slow event-stream client missed.",
            &stats.events_missed,
        ),
        (
            "redpepper_admin_connections",
            "gauge",
            "Admin API connections open (event streams included).",
            &stats.connections,
        ),
        (
            "redpepper_admin_runs_following",
            "gauge",
            "Agents whose operation a /v1/runs request is following.",
            &stats.runs_following,
        ),
    ] {
        let value = value.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// `GET /v1/openapi.json`.
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// Any other path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: see /v1/openapi.json",
    )
}
