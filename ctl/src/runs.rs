//! `runs` (the runs in progress) and `cancel RUN_ID`.
//!
//! ```text
//! RUN_ID                            OPERATION    TARGET  STARTED                   AGENTS  PENDING
//! 5c0e…                             command.Run  web*    2026-12-02T08:30:00.000Z  3       web2
//! ```

use reqwest::Method;
use serde_json::Value;

use crate::client::AdminClient;
use crate::commands::{print_json, query_escape, show};
use crate::error::CtlError;
use crate::{table, EXIT_OK};

/// The path of a run.
pub fn run_path(run_id: &str) -> String {
    format!("/v1/runs/{}", query_escape(run_id))
}

/// `runs`.
pub async fn list(client: &AdminClient, json: bool) -> Result<i32, CtlError> {
    let body = client.ok_json(Method::GET, "/v1/runs", None).await?;
    if json {
        print_json(&body);
        return Ok(EXIT_OK);
    }
    let runs = body["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let pending = r["pending"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let target = match &r["target"] {
                Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(","),
                other => show(other),
            };
            vec![
                show(&r["run_id"]),
                show(&r["operation"]),
                target,
                show(&r["started"]),
                r["agents"].as_u64().unwrap_or(0).to_string(),
                if pending.is_empty() {
                    "-".to_owned()
                } else {
                    pending.iter().map(show).collect::<Vec<_>>().join(",")
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "RUN_ID",
                "OPERATION",
                "TARGET",
                "STARTED",
                "AGENTS",
                "PENDING"
            ],
            &rows
        )
    );
    eprintln!("{} run(s) in progress", rows.len());
    Ok(EXIT_OK)
}

/// `cancel RUN_ID`.
pub async fn cancel(client: &AdminClient, run_id: &str, json: bool) -> Result<i32, CtlError> {
    let body = client
        .ok_json(Method::DELETE, &run_path(run_id), None)
        .await?;
    if json {
        print_json(&body);
        return Ok(EXIT_OK);
    }
    let agents = body["cancelling"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    println!("run {run_id}: cancelling {} agent(s)", agents.len());
    for a in agents {
        let command = match &a["command_id"] {
            Value::Null => "not started yet".to_owned(),
            id => format!("command {}", show(id)),
        };
        println!("{}: {command}", show(&a["agent"]));
    }
    Ok(EXIT_OK)
}
