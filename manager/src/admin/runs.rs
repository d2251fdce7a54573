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
//! `timeout`, `cancelled`, `connection_lost`, ...) and an `error` text.
//!
//! The target is read as ids, globs and lists (`"match": "glob"`, the default), as a
//! regular expression (`"match": "regex"`), or as `KEY=VALUE[,KEY=VALUE]` against each
//! agent's `agents.yml` `data` (`"match": "data"`); agents of `agents.yml` that are
//! not connected anywhere are selected too and get a `not_connected` result, so the
//! run fails naming them (Salt's "Minion did not return"). `"batch": N` or `"N%"`
//! runs the agents in waves of that many, each wave ending before the next starts.
//! When the run ends its outcome is appended to the job log (`GET /v1/jobs`).
//!
//! Every run has a `run_id`: in the `x-redpepper-run-id` header of the answer, in the
//! `started` lines and the summary, and in the plain answer. Runs in progress are
//! listed by `GET /v1/runs`; `DELETE /v1/runs/{run_id}` cancels one: every agent whose
//! command has no result yet is sent our `cancel` request and gets a `cancelled` result
//! (unless its own result was already in). A run whose timeout passes sends `cancel`
//! the same way to agents still running its command (their lines say `timeout`):
//! nothing keeps running past the deadline the caller set, as far as agents can cancel
//! (RedPepper 0.3.4 agents cannot; the line says so).
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
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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
use super::jobs::{self, JobInfo};
use super::run_table::RunEntry;
use super::target::{self, Target};
use super::{AdminStats, AppState};
use crate::commands::{CommandRun, CommandUpdate};
use crate::Manager;

/// Default time a run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a run waits for an agent to answer its `cancel` request (at the run's
/// deadline, or when cancelled) before giving its result line.
const CANCEL_WAIT: Duration = Duration::from_secs(2);
/// How long after the deadline a streaming run still waits for room for a line
/// (the failures at the deadline, the summary) when its client is not reading; a line
/// that finds room at once is sent whatever the time.
const SEND_GRACE: Duration = Duration::from_secs(2);
/// The answer header that carries a run's id.
pub(crate) const RUN_ID_HEADER: &str = "x-redpepper-run-id";

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
    /// How `target` is read: `glob` (default), `regex`, `data`.
    #[serde(default, rename = "match")]
    match_kind: Option<String>,
    /// Waves: a count or `"N%"` of the selected agents.
    #[serde(default)]
    batch: Option<Json_>,
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
    entry: Arc<RunEntry>,
}

/// Why a run stopped waiting for an agent's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The run's timeout passed.
    Timeout,
    /// `DELETE /v1/runs/{run_id}`.
    Cancelled,
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
    let args = json_to_args(b.args.as_ref(), "args").map_err(bad)?;
    let kwargs = json_to_kwargs(b.kwargs.as_ref(), "kwargs").map_err(bad)?;
    let connected: Vec<String> = state.manager.agents().into_iter().map(|a| a.id).collect();
    let agents = state
        .fleet
        .select(&b.target, b.match_kind.as_deref(), &connected)?;
    let wave = wave_size(b.batch.as_ref(), agents.len())?;
    let mut target_json = serde_json::to_value(&b.target).unwrap_or(Json_::Null);
    if let Some(kind) = b.match_kind.as_deref().filter(|k| *k != "glob") {
        target_json = json!({"match": kind, "target": target_json});
    }
    let job_args = b.args.clone();
    let started = std::time::SystemTime::now();
    // Given back when the run ends (its answer made, or its client gone).
    let guard = state
        .runs
        .start(target_json.clone(), &b.operation, &agents)?;
    let run_id = guard.entry.id.clone();
    let run = Run {
        operation: b.operation,
        args,
        kwargs,
        deadline: Instant::now() + timeout,
        timeout,
        stats: state.stats.clone(),
        entry: guard.entry.clone(),
    };
    tracing::info!(run = %run_id, operation = %run.operation, agents = agents.len(), "admin API: running operation");
    let id_header = HeaderValue::from_str(&run_id).ok();
    let stream = q.stream.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/x-ndjson"));
    if !stream {
        let results = in_waves(&state.manager, &agents, wave, &run, None).await;
        let summary = summary(&results);
        drop(guard);
        let info = JobInfo {
            run_id: &run_id,
            operation: &run.operation,
            args: &job_args,
            target: &target_json,
            started,
        };
        jobs::record(&state, info, &results, &summary).await;
        let mut resp =
            Json(json!({"run_id": run_id, "results": results, "summary": summary})).into_response();
        if let Some(v) = id_header {
            resp.headers_mut().insert(RUN_ID_HEADER, v);
        }
        return Ok(resp);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let state = state.clone();
    tokio::spawn(async move {
        let lines = Lines {
            tx: &tx,
            until: run.deadline + SEND_GRACE,
        };
        let results = in_waves(&state.manager, &agents, wave, &run, Some(&lines)).await;
        drop(guard);
        let info = JobInfo {
            run_id: &run.entry.id,
            operation: &run.operation,
            args: &job_args,
            target: &target_json,
            started,
        };
        jobs::record(&state, info, &results, &summary(&results)).await;
        let mut line = summary(&results);
        line["event"] = json!("summary");
        line["run_id"] = json!(run.entry.id);
        send(Some(&lines), &line).await;
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response();
    if let Some(v) = id_header {
        resp.headers_mut().insert(RUN_ID_HEADER, v);
    }
    Ok(resp)
}

/// `GET /v1/runs`: the runs in progress, oldest first.
pub(crate) async fn list(State(state): State<AppState>) -> Json<Json_> {
    let runs: Vec<Json_> = state.runs.list().iter().map(|r| r.json()).collect();
    Json(json!({ "runs": runs }))
}

/// `DELETE /v1/runs/{run_id}`: cancel a run in progress. 202 with the agents being
/// cancelled (each gets a `cancelled` result line in the run), 404 `not_found` for a
/// run that is unknown or already over.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = state.runs.get(&run_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run {run_id} in progress (unknown, or over)"),
        )
    })?;
    let cancelling: Vec<Json_> = entry
        .pending()
        .into_iter()
        .map(|(agent, command_id)| json!({"agent": agent, "command_id": command_id}))
        .collect();
    tracing::info!(run = %run_id, agents = cancelling.len(), "admin API: cancelling run");
    entry.cancel.cancel();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "cancelling": cancelling})),
    )
        .into_response())
}

/// Agents per wave for `batch` (`N` or `"N%"` of `total`, at least one); all at once
/// without it.
fn wave_size(batch: Option<&Json_>, total: usize) -> Result<usize, ApiError> {
    let bad = |b: &Json_| {
        ApiError::bad_request(format!(
            "batch: expected a count above 0 or a percentage such as \"25%\", found {b}"
        ))
    };
    let size = match batch {
        None | Some(Json_::Null) => return Ok(total.max(1)),
        Some(b @ Json_::Number(n)) => n
            .as_u64()
            .filter(|&n| n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .ok_or_else(|| bad(b))?,
        Some(b @ Json_::String(s)) => {
            let s = s.trim();
            if let Some(p) = s.strip_suffix('%') {
                let p: f64 = p.trim().parse().map_err(|_| bad(b))?;
                if !(p > 0.0 && p <= 100.0) {
                    return Err(bad(b));
                }
                ((total as f64 * p / 100.0).ceil() as usize).max(1)
            } else {
                s.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(b))?
            }
        }
        Some(b) => return Err(bad(b)),
    };
    Ok(size)
}

/// Run `agents` in waves of `wave`, each wave's agents at once; a wave not started
/// by the run's cancellation gets `cancelled` lines.
async fn in_waves(
    manager: &Manager,
    agents: &[String],
    wave: usize,
    run: &Run,
    tx: Option<&Lines<'_>>,
) -> Vec<Json_> {
    let mut results = Vec::with_capacity(agents.len());
    for (n, chunk) in agents.chunks(wave.max(1)).enumerate() {
        if run.entry.cancel.is_cancelled() {
            for agent in chunk {
                let line = failure(
                    agent,
                    None,
                    "cancelled",
                    "run cancelled before its wave started".into(),
                );
                run.entry.finished(agent);
                send(tx, &line).await;
                results.push(line);
            }
            continue;
        }
        if wave < agents.len() {
            tracing::debug!(run = %run.entry.id, wave = n + 1, agents = chunk.len(), "admin API: run wave");
        }
        results.extend(join_all(chunk.iter().map(|a| run_one(manager, a, run, tx))).await);
    }
    results
}

fn summary(results: &[Json_]) -> Json_ {
    let ok = results.iter().filter(|r| r["success"] == true).count();
    let changed = results.iter().filter(|r| r["changed"] == true).count();
    let not_connected: Vec<&Json_> = results
        .iter()
        .filter(|r| r["code"] == "not_connected")
        .map(|r| &r["agent"])
        .collect();
    let mut s = json!({"total": results.len(), "succeeded": ok, "failed": results.len() - ok, "changed": changed});
    if !not_connected.is_empty() {
        s["not_connected"] = json!(not_connected);
    }
    s
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

/// Start the operation on one agent and follow it to its result (or the deadline, or
/// the run's cancellation).
async fn run_one(manager: &Manager, agent: &str, run: &Run, tx: Option<&Lines<'_>>) -> Json_ {
    let line = follow(manager, agent, run, tx).await;
    run.entry.finished(agent);
    send(tx, &line).await;
    line
}

/// [`run_one`] up to its result line.
async fn follow(manager: &Manager, agent: &str, run: &Run, tx: Option<&Lines<'_>>) -> Json_ {
    // Not cut short by a cancellation: a command the agent accepted is then cancelled
    // by its id, rather than left running unknown.
    let started = tokio::time::timeout_at(
        run.deadline,
        manager.run_command(agent, &run.operation, run.args.clone(), run.kwargs.clone()),
    )
    .await;
    let mut handle = match started {
        Ok(Ok(handle)) => Following::new(&run.stats, handle),
        Ok(Err(e)) => {
            let api = ApiError::from_manager(&e);
            return failure(agent, None, api.code, e.to_string());
        }
        Err(_) => return failure(agent, None, "timeout", no_result(run)),
    };
    let id = handle.run.id.clone();
    run.entry.started(agent, &id);
    send(
        tx,
        &json!({"event": "started", "agent": agent, "command_id": id, "run_id": run.entry.id}),
    )
    .await;
    let stop = loop {
        let update = tokio::select! {
            update = tokio::time::timeout_at(run.deadline, handle.run.next()) => match update {
                Ok(update) => update,
                Err(_) => break Stop::Timeout,
            },
            () = run.entry.cancel.cancelled() => break Stop::Cancelled,
        };
        if let Some(line) = update_line(agent, &id, update, tx).await {
            return line;
        }
    };
    // The result may be in already: it wins.
    while let Some(update) = futures::FutureExt::now_or_never(handle.run.next()) {
        if let Some(line) = update_line(agent, &id, update, None).await {
            return line;
        }
    }
    let (code, what) = match stop {
        Stop::Timeout => ("timeout", no_result(run)),
        Stop::Cancelled => ("cancelled", "run cancelled".to_owned()),
    };
    let told = match tokio::time::timeout(CANCEL_WAIT, manager.cancel_command(agent, &id)).await {
        Ok(Ok(true)) => "the agent stopped the command".to_owned(),
        Ok(Ok(false)) => {
            "the agent did not stop it (it cannot cancel commands, or it had ended)".to_owned()
        }
        Ok(Err(e)) => format!("cancel not delivered: {e}"),
        Err(_) => format!(
            "the agent did not answer the cancel within {:.0}s",
            CANCEL_WAIT.as_secs_f64()
        ),
    };
    drop(handle);
    failure(agent, Some(&id), code, format!("{what}; {told}"))
}

/// Pass a progress update on (`None`), or the result line an update ends with.
async fn update_line(
    agent: &str,
    id: &str,
    update: Option<CommandUpdate>,
    tx: Option<&Lines<'_>>,
) -> Option<Json_> {
    match update {
        Some(CommandUpdate::Progress {
            current,
            total,
            message,
        }) => {
            send(
                tx,
                &json!({"event": "progress", "agent": agent, "command_id": id,
                        "current": current, "total": total, "message": message}),
            )
            .await;
            None
        }
        Some(CommandUpdate::Result(r)) => {
            Some(json!({"event": "result", "agent": agent, "command_id": id,
                   "success": r.success, "changed": r.changed, "output": r.output}))
        }
        Some(CommandUpdate::Lost(reason)) => {
            Some(failure(agent, Some(id), "connection_lost", reason))
        }
        None => Some(failure(
            agent,
            Some(id),
            "connection_lost",
            "manager shut down".into(),
        )),
    }
}

fn no_result(run: &Run) -> String {
    format!("no command_result within {:.1}s", run.timeout.as_secs_f64())
}
