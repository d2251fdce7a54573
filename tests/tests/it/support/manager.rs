//! The in-process manager (the `redpepper_manager` library) started from a fleet's
//! `manager.yml`, and running an operation on one agent with it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use redpepper_config::{ConfigFile, ManagerConfig};
use redpepper_core::Value;
use redpepper_manager::{CommandResult, Manager};
use redpepper_tests::TIMEOUT;

/// A manager in this process, configured by the file at `manager_yml` as the
/// `redpepper-manager` program would be.
pub async fn start_in_process(manager_yml: &Path) -> Manager {
    let config = ManagerConfig::load(Some(manager_yml), &[])
        .unwrap_or_else(|e| panic!("{}: {e}", manager_yml.display()));
    Manager::start(&config)
        .await
        .unwrap_or_else(|e| panic!("manager from {}: {e}", manager_yml.display()))
}

/// Run operation `op` with string `kwargs` on `agent` and wait for its result; the
/// result and the `(current, total)` progress seen before it.
pub async fn run_op(
    manager: &Manager,
    agent: &str,
    op: &str,
    kwargs: &[(&str, Value)],
) -> (CommandResult, Vec<(i64, i64)>) {
    let kwargs = kwargs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let run = manager
        .run_command(agent, op, vec![], kwargs)
        .await
        .unwrap_or_else(|e| panic!("{op} on {agent}: {e}"));
    let mut progress = Vec::new();
    let result = run
        .wait(TIMEOUT, |cur, total, _| progress.push((cur, total)))
        .await
        .unwrap_or_else(|e| panic!("{op} on {agent}: {e}"));
    (result, progress)
}
