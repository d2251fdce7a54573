//! `GET /v1/jobs` (recent runs, newest first) and `GET /v1/jobs/{run_id}` (one run's
//! per-agent results), from the job log ([`crate::jobs::JobLog`]): a run is there once
//! it ended, whether or not the client that started it is still around.

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::error::ApiError;
use super::target::rfc3339;
use super::AppState;
use crate::jobs::log::unix_now;

/// Most runs `GET /v1/jobs` lists.
const MAX_LIMIT: usize = 1000;

/// What a run was, for its job record.
pub(crate) struct JobInfo<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) operation: &'a str,
    pub(crate) args: &'a Option<Json_>,
    pub(crate) target: &'a Json_,
    pub(crate) started: SystemTime,
}

/// Append the outcome of a run to the job log (on a blocking thread; a failure is
/// logged, the run's answer is unaffected).
pub(crate) async fn record(
    state: &AppState,
    info: JobInfo<'_>,
    results: &[Json_],
    summary: &Json_,
) {
    let Some(jobs) = state.fleet.jobs.clone() else {
        return;
    };
    let mut results: Vec<Json_> = results.to_vec();
    for r in &mut results {
        if let Some(o) = r.as_object_mut() {
            o.remove("event");
        }
    }
    let record = json!({
        "run_id": info.run_id,
        "operation": info.operation,
        "args": info.args,
        "target": info.target,
        "node": state.manager.node_name(),
        "started": rfc3339(info.started),
        "finished": rfc3339(SystemTime::now()),
        "finished_unix": unix_now(),
        "summary": summary,
        "results": results,
    });
    match tokio::task::spawn_blocking(move || jobs.append(&record)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(run = %info.run_id, error = %e, "job log: cannot write the run's record")
        }
        Err(e) => tracing::warn!(run = %info.run_id, error = %e, "job log: writer failed"),
    }
}

fn internal(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

fn no_log() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "this manager keeps no job log (see command_log_file)",
    )
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize)]
pub(crate) struct JobsQuery {
    limit: Option<usize>,
}

/// `GET /v1/jobs[?limit=N]` (default 20): recent runs without their results.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<JobsQuery>,
) -> Result<Json<Json_>, ApiError> {
    let jobs = state.fleet.jobs.clone().ok_or_else(no_log)?;
    let limit = q.limit.unwrap_or(20).min(MAX_LIMIT);
    let recent = tokio::task::spawn_blocking(move || jobs.recent(limit))
        .await
        .map_err(|e| internal(format!("job log reader failed: {e}")))?
        .map_err(|e| internal(format!("cannot read the job log: {e}")))?;
    Ok(Json(json!({ "jobs": recent })))
}

/// `GET /v1/jobs/{run_id}`: one run with its per-agent results (a unique prefix of 6
/// or more characters of the id does).
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let jobs = state.fleet.jobs.clone().ok_or_else(no_log)?;
    let id = run_id.clone();
    let found = tokio::task::spawn_blocking(move || jobs.find(&id))
        .await
        .map_err(|e| internal(format!("job log reader failed: {e}")))?
        .map_err(|e| internal(format!("cannot read the job log: {e}")))?;
    found.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run {run_id} in the job log (unknown, still running, or purged)"),
        )
    })
}
