//! `POST /v1/runs`: run a RedPepper operation (the `command` request) on one or many
//! agents at once and wait for their `command_result`s.
//!
//! A state is the operation `state` with `args` `[NAME]` (`[]` for the default state),
//! as RedPepper's manager sends it; its agent reports `command_progress` per task
//! (`current`/`total` over the state's tasks), passed on as `progress` lines.
//!
//! Without streaming the answer is `{"results": [...], "summary": {...}}`. With
//! `?stream=true` (or `Accept: application/x-ndjson`) the body is NDJSON, one object
//! per line as things happen:
//!
//! ```text
//! {"event":"started","agent":"web1","command_id":"9f…"}
//! {"event":"progress","agent":"web1","command_id":"9f…","current":0,"total":1,"message":"Running echo.Echo..."}
//! {"event":"result","agent":"web1","command_id":"9f…","success":true,"changed":false,"output":"hi"}
//! {"event":"summary","total":1,"succeeded":1,"failed":0,"changed":0}
//! ```
//!
//! A failed agent gets a `result` line with `success: false`, a `code` (`not_connected`,
//! `timeout`, `connection_lost`, ...) and an `error` text.
//!
//! A command is followed (its entry kept in the manager's table of pending commands)
//! until its result, the run's deadline, or the request's end: a client that
//! disconnects from a plain run drops it at once. A streaming run whose client stops
//! reading gives up on lines it cannot deliver by the deadline (plus
//! [`SEND_GRACE`]), so its task ends too.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::future::join_all;
use redpepper_core::{Kwargs, Value};
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::convert::{json_to_args, json_to_kwargs};
use super::error::ApiError;
use super::target::{self, Target};
use super::{AdminStats, AppState};
use crate::commands::{CommandRun, CommandUpdate};
use crate::Manager;

/// Default time a run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long after the deadline a streaming run still waits for its client to take
/// the last lines (the failures at the deadline, the summary).
const SEND_GRACE: Duration = Duration::from_secs(2);

/// Body of `POST /v1/runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunBody {
    target: Target,
    operation: String,
    #[serde(default)]
    args: Option<Json_>,
    #[serde(default)]
    kwargs: Option<Json_>,
    timeout: Option<f64>,
}

/// Query of `POST /v1/runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunQuery {
    stream: Option<bool>,
}

struct Run {
    operation: String,
    args: Vec<Value>,
    kwargs: Kwargs,
    deadline: Instant,
    timeout: Duration,
    stats: Arc<AdminStats>,
}

/// Where NDJSON lines go (streaming runs), and until when a line may wait for room.
struct Lines<'a> {
    tx: &'a mpsc::Sender<Bytes>,
    until: Instant,
}

/// A command being followed, counted in `runs_following`; on drop (result, deadline,
/// client gone) the [`CommandRun`] goes with it, and the manager stops following.
struct Following<'a> {
    stats: &'a AdminStats,
    run: CommandRun,
}

impl<'a> Following<'a> {
    fn new(stats: &'a AdminStats, run: CommandRun) -> Self {
        stats.runs_following.fetch_add(1, Ordering::Relaxed);
        Self { stats, run }
    }
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        self.stats.runs_following.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `POST /v1/runs`.
pub(crate) async fn run(
    State(state): State<AppState>,
    Query(q): Query<RunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: RunBody = target::body(&body)?;
    if b.operation.is_empty() {
        return Err(ApiError::bad_request(
            "operation: expected an operation name such as echo.Echo or state",
        ));
    }
    let bad = |e: super::convert::ConvertError| ApiError::bad_request(e.to_string());
    let timeout = target::timeout(b.timeout, RUN_TIMEOUT)?;
    let run = Run {
        operation: b.operation,
        args: json_to_args(b.args.as_ref(), "args").map_err(bad)?,
        kwargs: json_to_kwargs(b.kwargs.as_ref(), "kwargs").map_err(bad)?,
        deadline: Instant::now() + timeout,
        timeout,
        stats: state.stats.clone(),
    };
    let connected: Vec<String> = state.manager.agents().into_iter().map(|a| a.id).collect();
    let agents = target::select(&b.target, &connected)?;
    tracing::info!(operation = %run.operation, agents = agents.len(), "admin API: running operation");
    let stream = q.stream.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/x-ndjson"));
    if !stream {
        let results = join_all(
            agents
                .iter()
                .map(|a| run_one(&state.manager, a, &run, None)),
        )
        .await;
        let summary = summary(&results);
        return Ok(Json(json!({"results": results, "summary": summary})).into_response());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let manager = state.manager.clone();
    tokio::spawn(async move {
        let lines = Lines {
            tx: &tx,
            until: run.deadline + SEND_GRACE,
        };
        let results = join_all(
            agents
                .iter()
                .map(|a| run_one(&manager, a, &run, Some(&lines))),
        )
        .await;
        let mut line = summary(&results);
        line["event"] = json!("summary");
        send(Some(&lines), &line).await;
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

fn summary(results: &[Json_]) -> Json_ {
    let ok = results.iter().filter(|r| r["success"] == true).count();
    let changed = results.iter().filter(|r| r["changed"] == true).count();
    json!({"total": results.len(), "succeeded": ok, "failed": results.len() - ok, "changed": changed})
}

/// Send one NDJSON line; a client that went away is ignored (the run goes on), and a
/// line that finds no room by `lines.until` is dropped (a client that stopped reading
/// never holds the run past its deadline).
async fn send(lines: Option<&Lines<'_>>, line: &Json_) {
    if let Some(lines) = lines {
        let mut text = line.to_string();
        text.push('\n');
        let _ = tokio::time::timeout_at(lines.until, lines.tx.send(Bytes::from(text))).await;
    }
}

fn failure(agent: &str, id: Option<&str>, code: &str, error: String) -> Json_ {
    json!({"event": "result", "agent": agent, "command_id": id, "success": false,
           "changed": false, "code": code, "error": error})
}

/// Start the operation on one agent and follow it to its result (or the deadline).
async fn run_one(manager: &Manager, agent: &str, run: &Run, tx: Option<&Lines<'_>>) -> Json_ {
    let started = tokio::time::timeout_at(
        run.deadline,
        manager.run_command(agent, &run.operation, run.args.clone(), run.kwargs.clone()),
    )
    .await;
    let mut handle = match started {
        Ok(Ok(handle)) => Following::new(&run.stats, handle),
        Ok(Err(e)) => {
            let api = ApiError::from_manager(&e);
            let line = failure(agent, None, api.code, e.to_string());
            send(tx, &line).await;
            return line;
        }
        Err(_) => {
            let line = failure(agent, None, "timeout", no_result(run));
            send(tx, &line).await;
            return line;
        }
    };
    let id = handle.run.id.clone();
    send(
        tx,
        &json!({"event": "started", "agent": agent, "command_id": id}),
    )
    .await;
    let line = loop {
        match tokio::time::timeout_at(run.deadline, handle.run.next()).await {
            Ok(Some(CommandUpdate::Progress {
                current,
                total,
                message,
            })) => {
                send(
                    tx,
                    &json!({"event": "progress", "agent": agent, "command_id": id,
                            "current": current, "total": total, "message": message}),
                )
                .await;
            }
            Ok(Some(CommandUpdate::Result(r))) => {
                break json!({"event": "result", "agent": agent, "command_id": id,
                             "success": r.success, "changed": r.changed, "output": r.output});
            }
            Ok(Some(CommandUpdate::Lost(reason))) => {
                break failure(agent, Some(&id), "connection_lost", reason);
            }
            Ok(None) => {
                break failure(
                    agent,
                    Some(&id),
                    "connection_lost",
                    "manager shut down".into(),
                );
            }
            Err(_) => break failure(agent, Some(&id), "timeout", no_result(run)),
        }
    };
    drop(handle);
    send(tx, &line).await;
    line
}

fn no_result(run: &Run) -> String {
    format!("no command_result within {:.1}s", run.timeout.as_secs_f64())
}
