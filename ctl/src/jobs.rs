//! `jobs` (finished runs, newest first) and `job RUN_ID` (one run's per-agent
//! results), from the manager's job log: available after the client that started the
//! run went away, and after the manager restarted.
//!
//! ```text
//! RUN_ID                            OPERATION  TARGET  FINISHED                  AGENTS  OK  FAILED
//! 5c0e…                             echo.Echo  web*    2026-12-02T08:30:00.000Z  3       2   1
//! ```

use reqwest::Method;
use serde_json::Value;

use crate::client::AdminClient;
use crate::commands::{print_json, query_escape, show};
use crate::error::CtlError;
use crate::run::result_lines;
use crate::{output, table, EXIT_FAILED, EXIT_OK};

/// A run's target as one cell.
pub fn target_text(t: &Value) -> String {
    match t {
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(","),
        Value::Object(o) => format!(
            "{} ({})",
            target_text(o.get("target").unwrap_or(&Value::Null)),
            show(o.get("match").unwrap_or(&Value::Null))
        ),
        other => show(other),
    }
}

/// The table of a `GET /v1/jobs` answer.
pub fn jobs_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = body["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|j| {
            let s = &j["summary"];
            vec![
                show(&j["run_id"]),
                show(&j["operation"]),
                target_text(&j["target"]),
                show(&j["finished"]),
                s["total"].as_u64().unwrap_or(0).to_string(),
                s["succeeded"].as_u64().unwrap_or(0).to_string(),
                s["failed"].as_u64().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    table::render(
        &[
            "RUN_ID",
            "OPERATION",
            "TARGET",
            "FINISHED",
            "AGENTS",
            "OK",
            "FAILED",
        ],
        &rows,
    )
}

/// `jobs`.
pub async fn list(client: &AdminClient, limit: usize) -> Result<i32, CtlError> {
    let body = client
        .ok_json(Method::GET, &format!("/v1/jobs?limit={limit}"), None)
        .await?;
    if output::structured() {
        print_json(&body);
    } else {
        print!("{}", jobs_table(&body));
    }
    Ok(EXIT_OK)
}

/// `job RUN_ID`: status 1 when some agent failed in that run.
pub async fn show_job(client: &AdminClient, run_id: &str) -> Result<i32, CtlError> {
    let path = format!("/v1/jobs/{}", query_escape(run_id));
    let job = client.ok_json(Method::GET, &path, None).await?;
    let failed = job["summary"]["failed"].as_u64().unwrap_or(0);
    if output::structured() {
        print_json(&job);
    } else {
        println!("run       {}", show(&job["run_id"]));
        println!(
            "operation {} {}",
            show(&job["operation"]),
            show(&job["args"])
        );
        println!("target    {}", target_text(&job["target"]));
        println!("started   {}", show(&job["started"]));
        println!("finished  {}", show(&job["finished"]));
        for r in job["results"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            for line in result_lines(r) {
                println!("{line}");
            }
        }
        let s = &job["summary"];
        println!(
            "summary: {} agent(s), {} succeeded, {} failed, {} changed",
            s["total"], s["succeeded"], s["failed"], s["changed"]
        );
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobs_list_as_a_table() {
        let body = json!({"jobs": [
            {"run_id": "r1", "operation": "echo.Echo", "target": {"match": "data", "target": "role=web"},
             "finished": "T", "summary": {"total": 3, "succeeded": 2, "failed": 1}},
        ]});
        let t = jobs_table(&body);
        assert!(
            t.lines()
                .nth(1)
                .unwrap_or_default()
                .starts_with("r1      echo.Echo  role=web (data)  T"),
            "{t}"
        );
    }
}
