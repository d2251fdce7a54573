//! `watch`: follow `/v1/events`, one line per event.
//!
//! ```text
//! 2025-01-31T12:00:00.000Z connected        mgr-a tls://127.0.0.1:50412
//! 2025-01-31T12:00:00.004Z authenticated    mgr-a web1 tls://127.0.0.1:50412 version 0.4.0
//! 2025-01-31T12:00:09.120Z command_progress mgr-b db1 9f3a… [1/1] Finished echo.Echo
//! 2025-01-31T12:01:00.000Z disconnected     mgr-a web1 peer said bye: shutting down
//! ```
//!
//! The word after the type is the cluster node the event happened on (a lone
//! manager's: its node name, the host name by default); events of a manager that does
//! not send one go without it.

use std::io::Write as _;

use reqwest::Method;
use serde_json::Value;

use crate::cli::WatchArgs;
use crate::client::AdminClient;
use crate::commands::{query_escape, show};
use crate::error::CtlError;
use crate::EXIT_OK;

/// One event as a line of text.
pub fn event_line(ev: &Value) -> String {
    let kind = ev["type"].as_str().unwrap_or("?");
    let agent = show(&ev["agent"]);
    let detail = match kind {
        "connected" => show(&ev["peer"]),
        // Another node's agent: the version is in `agents`, not in the event.
        "authenticated" if ev["version"].is_null() => format!("{agent} {}", show(&ev["peer"])),
        "authenticated" => format!(
            "{agent} {} version {}",
            show(&ev["peer"]),
            show(&ev["version"])
        ),
        "auth_failed" => format!("{agent} {}", show(&ev["peer"])),
        "disconnected" => format!("{agent} {}", show(&ev["reason"])),
        "notification" => format!("{agent} {} {}", show(&ev["notification_type"]), ev["data"]),
        "command_progress" => format!(
            "{agent} {} [{}/{}] {}",
            show(&ev["command_id"]),
            ev["current"],
            ev["total"],
            show(&ev["message"])
        ),
        "command_result" => format!(
            "{agent} {} success={} changed={} {}",
            show(&ev["command_id"]),
            ev["success"],
            ev["changed"],
            show(&ev["output"]).replace('\n', "\\n")
        ),
        "lagged" => format!(
            "missed {} event(s): this client read too slowly",
            ev["missed"]
        ),
        _ => ev.to_string(),
    };
    match ev["node"].as_str() {
        Some(node) => format!("{} {kind:<16} {node} {detail}", show(&ev["time"])),
        None => format!("{} {kind:<16} {detail}", show(&ev["time"])),
    }
}

/// `watch`.
pub async fn watch(client: &AdminClient, a: &WatchArgs) -> Result<i32, CtlError> {
    let mut query = Vec::new();
    if let Some(agent) = &a.agent {
        query.push(format!("agent={}", query_escape(agent)));
    }
    if let Some(types) = &a.types {
        query.push(format!("types={}", query_escape(types)));
    }
    if let Some(node) = &a.node {
        query.push(format!("node={}", query_escape(node)));
    }
    let path = if query.is_empty() {
        "/v1/events".to_owned()
    } else {
        format!("/v1/events?{}", query.join("&"))
    };
    let mut lines = client.lines(Method::GET, &path, None).await?;
    let mut data = String::new();
    let mut stdout = std::io::stdout();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("data:") {
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            continue;
        }
        if !line.is_empty() || data.is_empty() {
            // `event:` lines (the type is in the data too) and comments.
            continue;
        }
        let text = std::mem::take(&mut data);
        let out = if a.json {
            text
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(ev) => event_line(&ev),
                Err(_) => text,
            }
        };
        // One line per event, flushed at once so a pipe sees it immediately.
        if writeln!(stdout, "{out}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(EXIT_OK);
        }
    }
    eprintln!("the manager closed the event stream");
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_name_type_agent_and_details() {
        let l = event_line(
            &json!({"type": "disconnected", "time": "T", "agent": "web1",
                                   "reason": "peer said bye: shutting down"}),
        );
        assert_eq!(l, "T disconnected     web1 peer said bye: shutting down");
        let l = event_line(
            &json!({"type": "command_progress", "time": "T", "agent": "a",
                                   "command_id": "c", "current": 1, "total": 1, "message": "done"}),
        );
        assert_eq!(l, "T command_progress a c [1/1] done");
    }

    #[test]
    fn lines_name_the_node() {
        let l = event_line(
            &json!({"type": "authenticated", "time": "T", "node": "mgr-b",
                                   "agent": "db1", "peer": "tls://10.0.0.2:1", "version": null}),
        );
        assert_eq!(l, "T authenticated    mgr-b db1 tls://10.0.0.2:1");
        let l = event_line(&json!({"type": "connected", "time": "T", "node": "mgr-a",
                                   "peer": "tls://10.0.0.3:2"}));
        assert_eq!(l, "T connected        mgr-a tls://10.0.0.3:2");
    }
}
