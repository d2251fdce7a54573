//! `cluster`: the manager cluster's nodes as the node asked sees them
//! (`GET /v1/cluster`; docs/CLUSTER.md).
//!
//! ```text
//! NODE   STATE  AGENTS  LAST HEARTBEAT  VERSION
//! mgr-a  local  812     -               0.4.0
//! mgr-b  alive  790     0.4s ago        0.4.0
//! mgr-c  dead   0       2m13s ago       0.4.0
//! ```
//!
//! A lone manager lists itself alone (`local`).

use reqwest::Method;
use serde_json::Value;

use crate::client::AdminClient;
use crate::commands::{print_json, show};
use crate::error::CtlError;
use crate::{table, EXIT_OK};

/// How long ago a heartbeat came: `0.4s ago`, `2m13s ago`; `-` for none (this node).
pub fn heartbeat_age(node: &Value) -> String {
    match node["heartbeat_age_seconds"].as_f64() {
        Some(s) if (0.0..60.0).contains(&s) => format!("{s:.1}s ago"),
        Some(s) if s.is_finite() && s >= 0.0 => format!("{} ago", table::duration(s as u64)),
        // A manager that sends only the time: show it.
        _ => node["last_heartbeat"]
            .as_str()
            .map_or_else(|| "-".to_owned(), str::to_owned),
    }
}

/// The `cluster` table of a `GET /v1/cluster` answer, and how many nodes it lists.
pub fn cluster_table(body: &Value) -> (String, usize) {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = body["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|n| {
            vec![
                text(&n["name"]),
                text(&n["state"]),
                n["agents"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), |a| a.to_string()),
                heartbeat_age(n),
                text(&n["version"]),
            ]
        })
        .collect();
    let table = table::render(
        &["NODE", "STATE", "AGENTS", "LAST HEARTBEAT", "VERSION"],
        &rows,
    );
    (table, rows.len())
}

/// `cluster`.
pub async fn cluster(client: &AdminClient, json: bool) -> Result<i32, CtlError> {
    let body = client.ok_json(Method::GET, "/v1/cluster", None).await?;
    if json {
        print_json(&body);
        return Ok(EXIT_OK);
    }
    let (table, n) = cluster_table(&body);
    print!("{table}");
    let nodes = body["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let count = |state: &str| nodes.iter().filter(|n| n["state"] == state).count();
    eprintln!(
        "{n} node(s) seen from {}: {} alive, {} dead",
        show(&body["node"]),
        count("local") + count("alive"),
        count("dead")
    );
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_are_a_table() {
        let body = json!({"node": "mgr-a", "nodes": [
            {"name": "mgr-a", "state": "local", "agents": 812, "last_heartbeat": null,
             "heartbeat_age_seconds": null, "version": "0.4.0", "started": "2025-01-31T10:00:00.000Z"},
            {"name": "mgr-b", "state": "alive", "agents": 790, "last_heartbeat": "2025-01-31T12:00:00.000Z",
             "heartbeat_age_seconds": 0.42, "version": "0.4.0", "started": null},
            {"name": "manager-c", "state": "dead", "agents": 0, "last_heartbeat": "2025-01-31T11:57:47.000Z",
             "heartbeat_age_seconds": 133.2, "version": "0.3.9", "started": null},
        ]});
        let (table, n) = cluster_table(&body);
        assert_eq!(n, 3);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "NODE       STATE  AGENTS  LAST HEARTBEAT  VERSION",
                "mgr-a      local  812     -               0.4.0",
                "mgr-b      alive  790     0.4s ago        0.4.0",
                "manager-c  dead   0       2m13s ago       0.3.9",
            ]
        );
    }

    #[test]
    fn a_heartbeat_without_its_age_shows_its_time() {
        let n = json!({"last_heartbeat": "2025-01-31T12:00:00.000Z"});
        assert_eq!(heartbeat_age(&n), "2025-01-31T12:00:00.000Z");
        assert_eq!(heartbeat_age(&json!({})), "-");
        assert_eq!(
            heartbeat_age(&json!({"heartbeat_age_seconds": 3700.0})),
            "1h01m ago"
        );
    }
}
