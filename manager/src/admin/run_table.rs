//! Runs in progress: what `GET /v1/runs` lists and `DELETE /v1/runs/{run_id}` cancels.
//!
//! A run is in the table from its start until its last line (or its answer) is made;
//! the table holds at most [`MAX_RUNS`] runs, and a run beyond that is refused with
//! 429 `too_many_runs`. Each entry holds, per agent, the command id once started and
//! whether the result is in: a few dozen bytes per agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::http::StatusCode;
use serde_json::{json, Value as Json_};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::target::rfc3339;

/// Runs in progress at most; more are refused (429 `too_many_runs`).
pub(crate) const MAX_RUNS: usize = 1024;

/// Where one agent of a run stands.
#[derive(Debug, Clone)]
struct AgentRun {
    agent: String,
    /// Set once the agent accepted the `command` request.
    command_id: Option<String>,
    /// Its result line is made.
    done: bool,
}

/// One run in progress.
#[derive(Debug)]
pub(crate) struct RunEntry {
    pub(crate) id: String,
    target: Json_,
    operation: String,
    started: SystemTime,
    /// Cancelled by `DELETE /v1/runs/{run_id}`.
    pub(crate) cancel: CancellationToken,
    agents: Mutex<Vec<AgentRun>>,
}

impl RunEntry {
    fn agents(&self) -> MutexGuard<'_, Vec<AgentRun>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `agent` accepted the command `command_id`.
    pub(crate) fn started(&self, agent: &str, command_id: &str) {
        if let Some(a) = self.agents().iter_mut().find(|a| a.agent == agent) {
            a.command_id = Some(command_id.to_owned());
        }
    }

    /// `agent`'s result line is made.
    pub(crate) fn finished(&self, agent: &str) {
        if let Some(a) = self.agents().iter_mut().find(|a| a.agent == agent) {
            a.done = true;
        }
    }

    /// Agents without a result yet, with their command id when started.
    pub(crate) fn pending(&self) -> Vec<(String, Option<String>)> {
        self.agents()
            .iter()
            .filter(|a| !a.done)
            .map(|a| (a.agent.clone(), a.command_id.clone()))
            .collect()
    }

    /// The entry as `GET /v1/runs` lists it.
    pub(crate) fn json(&self) -> Json_ {
        let agents = self.agents();
        let pending: Vec<&str> = agents
            .iter()
            .filter(|a| !a.done)
            .map(|a| a.agent.as_str())
            .collect();
        json!({
            "run_id": self.id,
            "target": self.target,
            "operation": self.operation,
            "started": rfc3339(self.started),
            "agents": agents.len(),
            "pending": pending,
            "cancelled": self.cancel.is_cancelled(),
        })
    }
}

/// The runs in progress, by run id.
#[derive(Debug, Default)]
pub(crate) struct RunTable {
    runs: Mutex<HashMap<String, Arc<RunEntry>>>,
}

impl RunTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<RunEntry>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enter a new run; it leaves the table when the guard is dropped.
    pub(crate) fn start(
        self: &Arc<Self>,
        target: Json_,
        operation: &str,
        agents: &[String],
    ) -> Result<RunGuard, ApiError> {
        let mut runs = self.lock();
        if runs.len() >= MAX_RUNS {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_runs",
                format!("{MAX_RUNS} runs in progress already: wait for one to end or cancel one"),
            ));
        }
        let id = format!("{:032x}", rand::random::<u128>());
        let entry = Arc::new(RunEntry {
            id: id.clone(),
            target,
            operation: operation.to_owned(),
            started: SystemTime::now(),
            cancel: CancellationToken::new(),
            agents: Mutex::new(
                agents
                    .iter()
                    .map(|a| AgentRun {
                        agent: a.clone(),
                        command_id: None,
                        done: false,
                    })
                    .collect(),
            ),
        });
        runs.insert(id, entry.clone());
        Ok(RunGuard {
            table: self.clone(),
            entry,
        })
    }

    /// A run in progress.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<RunEntry>> {
        self.lock().get(id).cloned()
    }

    /// Every run in progress, oldest first.
    pub(crate) fn list(&self) -> Vec<Arc<RunEntry>> {
        let mut runs: Vec<Arc<RunEntry>> = self.lock().values().cloned().collect();
        runs.sort_by_key(|r| r.started);
        runs
    }
}

/// A run's place in the table, given back on drop.
#[derive(Debug)]
pub(crate) struct RunGuard {
    table: Arc<RunTable>,
    pub(crate) entry: Arc<RunEntry>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.table.lock().remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn runs_are_bounded_and_leave_when_done() {
        let table = Arc::new(RunTable::default());
        let agents = vec!["a1".to_owned(), "a2".to_owned()];
        let mut guards: Vec<RunGuard> = (0..MAX_RUNS)
            .map(|_| table.start(json!("a*"), "noop.Noop", &agents).unwrap())
            .collect();
        let refused = table.start(json!("a*"), "noop.Noop", &agents).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_runs")
        );
        let last = guards.pop().unwrap();
        let id = last.entry.id.clone();
        last.entry.started("a1", "c1");
        last.entry.finished("a2");
        assert_eq!(last.entry.pending(), vec![("a1".into(), Some("c1".into()))]);
        assert_eq!(table.get(&id).unwrap().json()["pending"], json!(["a1"]));
        drop(last);
        assert!(table.get(&id).is_none());
        assert!(table.start(json!("a*"), "noop.Noop", &agents).is_ok());
    }
}
