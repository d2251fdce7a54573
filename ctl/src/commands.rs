//! `agents`, `call`, `notify`, `status`, `metrics`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::CallArgs;
use crate::client::{api_error, AdminClient};
use crate::error::CtlError;
use crate::values::{parse_kwargs, parse_value};
use crate::{table, EXIT_FAILED, EXIT_OK};

/// Whether a target names more than one agent (a glob or a list).
pub fn is_multi(target: &str) -> bool {
    target.contains(['*', '?', '[', ','])
}

/// Percent-encode a query value (ids and globs are mostly safe already).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A value for one line: strings as they are, anything else as compact JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Print `v` as indented JSON, or as YAML with `--out yaml`.
pub fn print_json(v: &Value) {
    println!("{}", crate::output::render(v).trim_end());
}

/// What `agents` lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentsFilter<'a> {
    /// Only agents on this node.
    pub node: Option<&'a str>,
    /// Only agents matching this id, glob or list.
    pub target: Option<&'a str>,
    /// Also the agents of agents.yml connected nowhere.
    pub down: bool,
}

/// The path of `GET /v1/agents` with its filters.
pub fn agents_path(node: Option<&str>, target: Option<&str>) -> String {
    agents_query(AgentsFilter {
        node,
        target,
        down: false,
    })
}

/// The path of `GET /v1/agents` for `f`.
pub fn agents_query(f: AgentsFilter<'_>) -> String {
    let (node, target) = (f.node, f.target);
    let mut query = Vec::new();
    if f.down && node.is_none() {
        query.push("down=true".to_owned());
    }
    if let Some(t) = target {
        query.push(format!("target={}", query_escape(t)));
    }
    if let Some(n) = node {
        query.push(format!("node={}", query_escape(n)));
    }
    if query.is_empty() {
        "/v1/agents".to_owned()
    } else {
        format!("/v1/agents?{}", query.join("&"))
    }
}

/// The `agents` table of a `GET /v1/agents` answer, and how many agents it lists.
pub fn agents_table(body: &Value) -> (String, usize) {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = body["agents"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let state = match a["state"].as_str() {
                Some("down") => match a["last_seen_seconds_ago"].as_u64() {
                    Some(ago) => format!("down (seen {} ago)", table::duration(ago)),
                    None => "down (never seen)".to_owned(),
                },
                Some(s) => s.to_owned(),
                None => "connected".to_owned(),
            };
            vec![
                text(&a["id"]),
                state,
                text(&a["node"]),
                text(&a["transport"]),
                text(&a["remote_addr"]),
                text(&a["version"]),
                a["connected_seconds"]
                    .as_u64()
                    .map_or_else(|| "-".into(), table::duration),
                a["last_ping_rtt_ms"]
                    .as_f64()
                    .map_or_else(|| "-".into(), |ms| format!("{ms:.1}ms")),
                a["calls_in_flight"].as_u64().unwrap_or(0).to_string(),
                a["cert_subject"]
                    .as_str()
                    .or_else(|| a["broker_user"].as_str())
                    .unwrap_or("-")
                    .to_owned(),
            ]
        })
        .collect();
    let table = table::render(
        &[
            "ID",
            "STATE",
            "NODE",
            "TRANSPORT",
            "ADDRESS",
            "VERSION",
            "CONNECTED",
            "PING",
            "IN-FLIGHT",
            "IDENTITY",
        ],
        &rows,
    );
    (table, rows.len())
}

/// `agents`.
pub async fn agents(
    client: &AdminClient,
    json: bool,
    filter: AgentsFilter<'_>,
) -> Result<i32, CtlError> {
    let body = client
        .ok_json(Method::GET, &agents_query(filter), None)
        .await?;
    if json {
        print_json(&body);
        return Ok(EXIT_OK);
    }
    let (table, n) = agents_table(&body);
    print!("{table}");
    let down = body["agents"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|a| a["state"] == "down")
        .count();
    eprintln!("{} agent(s) connected, {down} down", n - down);
    Ok(EXIT_OK)
}

/// One failed call result as a line.
fn failure_text(r: &Value) -> String {
    let error = r["error"].as_str().unwrap_or("failed");
    match r["code"].as_str() {
        Some("remote_error") => format!(
            "agent {} answered with an error: {error}",
            show(&r["agent"])
        ),
        _ => error.to_owned(),
    }
}

/// `call`.
pub async fn call(client: &AdminClient, a: &CallArgs) -> Result<i32, CtlError> {
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        return Err(CtlError::Usage(format!(
            "--timeout {}: expected a positive number of seconds",
            a.timeout
        )));
    }
    let kwargs = parse_kwargs(&a.kwargs)?;
    let mut body =
        json!({"method": a.method, "args": a.args, "kwargs": kwargs, "timeout": a.timeout});
    let http_timeout =
        Some(Duration::from_secs_f64(a.timeout.min(86_400.0)) + Duration::from_secs(10));
    if !is_multi(&a.target) {
        let path = format!("/v1/agents/{}/calls", query_escape(&a.target));
        let (status, r) = client
            .json(Method::POST, &path, Some(&body), http_timeout)
            .await?;
        if r.get("success").is_none() {
            return Err(api_error(status, &r));
        }
        if a.json {
            print_json(&r);
        } else if r["success"] == true {
            match &r["data"] {
                Value::String(s) => println!("{s}"),
                Value::Null => {}
                other => print_json(other),
            }
        } else {
            eprintln!("error: {}", failure_text(&r));
        }
        return Ok(if r["success"] == true {
            EXIT_OK
        } else {
            EXIT_FAILED
        });
    }
    body["target"] = json!(a.target);
    let (status, r) = client
        .json(Method::POST, "/v1/calls", Some(&body), http_timeout)
        .await?;
    if !status.is_success() {
        return Err(api_error(status, &r));
    }
    if a.json {
        print_json(&r);
    } else {
        for result in r["results"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let agent = show(&result["agent"]);
            if result["success"] == true {
                println!("{agent}: {}", show(&result["data"]));
            } else {
                println!("{agent}: ERROR {}", failure_text(result));
            }
        }
        let s = &r["summary"];
        eprintln!(
            "{} agent(s): {} succeeded, {} failed",
            s["total"], s["succeeded"], s["failed"]
        );
    }
    Ok(if r["summary"]["failed"] == 0 {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `notify`.
pub async fn notify(
    client: &AdminClient,
    agent: &str,
    kind: &str,
    data: Option<&str>,
) -> Result<i32, CtlError> {
    let data = data.map(parse_value).transpose()?.unwrap_or(Value::Null);
    let path = format!("/v1/agents/{}/notifications", query_escape(agent));
    let (status, r) = client
        .json(
            Method::POST,
            &path,
            Some(&json!({"type": kind, "data": data})),
            None,
        )
        .await?;
    if status.is_success() {
        println!("sent {kind} to {agent}");
        Ok(EXIT_OK)
    } else if r["code"] == "not_connected" || r["code"] == "cluster_unavailable" {
        eprintln!("error: {}", show(&r["error"]));
        Ok(EXIT_FAILED)
    } else {
        Err(api_error(status, &r))
    }
}

/// `status`.
pub async fn status(client: &AdminClient) -> Result<i32, CtlError> {
    let s = client.ok_json(Method::GET, "/v1/status", None).await?;
    println!("manager   {}", client.url());
    println!("version   {}", show(&s["version"]));
    if !s["node"].is_null() {
        println!("node      {}", show(&s["node"]));
    }
    println!(
        "uptime    {}",
        table::duration(s["uptime_seconds"].as_f64().unwrap_or(0.0) as u64)
    );
    println!("agents    {}", s["agents"]);
    for l in s["listening"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!(
            "listening {} {}",
            show(&l["transport"]),
            show(&l["address"])
        );
    }
    Ok(EXIT_OK)
}

/// `metrics`.
pub async fn metrics(client: &AdminClient) -> Result<i32, CtlError> {
    print!("{}", client.text("/metrics").await?);
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_escaping() {
        assert!(is_multi("web*"));
        assert!(is_multi("a,b"));
        assert!(!is_multi("web1"));
        assert_eq!(query_escape("web*,db?"), "web%2A%2Cdb%3F");
        assert_eq!(agents_path(None, None), "/v1/agents");
        assert_eq!(
            agents_path(Some("mgr-b"), Some("web*")),
            "/v1/agents?target=web%2A&node=mgr-b"
        );
    }

    #[test]
    fn agents_show_their_node() {
        let body = json!({"agents": [
            {"id": "web1", "node": "mgr-a", "transport": "tls", "remote_addr": "10.0.0.11:40858",
             "version": "0.4.0", "connected_seconds": 7620, "last_ping_rtt_ms": 0.41,
             "calls_in_flight": 0, "cert_subject": null, "broker_user": null},
            {"id": "db-12", "node": "manager-b", "transport": "amqp", "remote_addr": null,
             "version": "0.3.4", "connected_seconds": 5, "last_ping_rtt_ms": null,
             "calls_in_flight": 2, "cert_subject": null, "broker_user": "db-12"},
            // From a manager before clusters: no node.
            {"id": "old", "transport": "tls"},
            {"id": "db-9", "state": "down", "node": null, "last_seen_seconds_ago": 303},
        ]});
        let (table, n) = agents_table(&body);
        assert_eq!(n, 4);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "ID     STATE                  NODE       TRANSPORT  ADDRESS          VERSION  CONNECTED  PING   IN-FLIGHT  IDENTITY",
                "web1   connected              mgr-a      tls        10.0.0.11:40858  0.4.0    2h07m      0.4ms  0          -",
                "db-12  connected              manager-b  amqp       -                0.3.4    5s         -      2          db-12",
                "old    connected              -          tls        -                -        -          -      0          -",
                "db-9   down (seen 5m03s ago)  -          -          -                -        -          -      0          -",
            ]
        );
    }
}
