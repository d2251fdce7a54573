//! Any node is the whole fleet's: node A lists every agent with its node, calls and
//! runs operations on agents of B and C, streams events of B's agents, and shows the
//! other nodes alive (the shared cluster, [`shared`]).

use std::time::Duration;

use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{Proc, TIMEOUT};

use super::*;

/// `agents` as a table and as JSON on A: every shared agent, with the node it is on.
#[test]
fn node_a_lists_every_agent_with_its_node() {
    let (w, nodes) = shared();
    let f = &w.fleet;
    let r = ctl_on(f, A, &["agents"]);
    assert_eq!(r.code, 0, "redpepper-ctl agents on {A}: {r}");
    let header = &r.stdout[0];
    let node_col = header
        .find("NODE")
        .unwrap_or_else(|| panic!("no NODE column in `redpepper-ctl agents` on {A}: {r}"));
    for (id, node) in nodes {
        let row = r
            .stdout
            .iter()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("agent {id} (on {node}) not listed by {A}: {r}"));
        assert!(
            row.get(node_col..)
                .is_some_and(|c| c.starts_with(node.as_str())),
            "agent {id}: want node {node} under NODE (column {node_col}): {row}\n{r}"
        );
    }
    let listed = ctl_on(f, A, &["agents", "--json"]).json();
    let agents = listed["agents"].as_array().unwrap();
    for (id, node) in nodes {
        let a = agents
            .iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap_or_else(|| panic!("agent {id} not in `agents --json` on {A}: {listed}"));
        assert_eq!(a["node"], node.as_str(), "agent {id} on {A}: {a}");
    }
    // Transports are what each agent uses, wherever it is.
    for (id, want) in [
        ("c-tls-b", "tls"),
        ("c-ws-b", "websocket"),
        ("c-amqp-1", "amqp"),
    ] {
        let a = agents.iter().find(|a| a["id"] == id).unwrap();
        assert_eq!(a["transport"], want, "agent {id} as listed by {A}: {a}");
    }
    // One agent of another node, by id.
    let one = f.node(A).get("/v1/agents/c-tls-c");
    assert_eq!(
        one.status, 200,
        "GET /v1/agents/c-tls-c on {A}: {}",
        one.body
    );
    assert_eq!(one.json()["node"], C, "{}", one.body);
}

/// `run` of `echo.Echo` and `command.Run` from A reaches every agent of every node,
/// with each agent's output; a plain call and a notification to agents of B too.
#[test]
fn runs_calls_and_notifications_from_a_reach_every_node() {
    let (w, nodes) = shared();
    let f = &w.fleet;
    let n = nodes.len();
    let r = ctl_on(
        f,
        A,
        &[
            "run",
            "c-*",
            "echo.Echo",
            "-k",
            "message=hello",
            "-k",
            "reverse=true",
        ],
    );
    assert_eq!(r.code, 0, "run echo.Echo from {A}: {r}\n{}", w.diag(&[]));
    for (id, node) in nodes {
        for want in [format!("{id}: succeeded"), format!("{id}> olleh")] {
            assert!(
                r.stdout.iter().any(|l| l.starts_with(&want)),
                "agent {id} on {node}: no line {want:?} from {A}: {r}"
            );
        }
    }
    let summary = format!("summary: {n} agent(s), {n} succeeded, 0 failed, 0 changed");
    assert_eq!(
        r.stdout.last().map(String::as_str),
        Some(summary.as_str()),
        "{r}"
    );

    let r = ctl_on(
        f,
        A,
        &[
            "run",
            "c-*",
            "command.Run",
            "-k",
            "command=echo out-$((6*7))",
        ],
    );
    assert_eq!(r.code, 0, "run command.Run from {A}: {r}\n{}", w.diag(&[]));
    for (id, node) in nodes {
        assert!(
            r.stdout
                .iter()
                .any(|l| l.starts_with(&format!("{id}> ")) && l.contains("out-42")),
            "agent {id} on {node}: no output out-42 from {A}: {r}"
        );
    }

    for id in ["c-ws-b", "c-amqp-1", "c-tls-c"] {
        let r = ctl_on(f, A, &["call", id, "echo", "via-a", "--json"]);
        assert_eq!(r.code, 0, "call echo on {id} ({}) from {A}: {r}", nodes[id]);
        let answer = r.json();
        assert_eq!(answer["success"], true, "{id}: {answer}");
        assert_eq!(answer["data"]["args"], json!(["via-a"]), "{id}: {answer}");
    }
    let r = ctl_on(f, A, &["notify", "c-tls-b", "hello", r#"{"x": 1}"#]);
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, vec!["sent hello to c-tls-b".to_owned()]),
        "notify c-tls-b (on {B}) from {A}: {r}"
    );
}

/// A's event stream shows what B's agent reports to B (`node` B), and A's own
/// agents' events (`node` A).
#[test]
fn a_streams_events_of_agents_on_b() {
    let (w, _) = shared();
    let f = &w.fleet;
    let watch = Proc::spawn("watch-on-a", ctl_cmd_on(f, A, &["watch", "--json"]));
    // Runs started on B itself: their results are B's events, which reach A's stream
    // once A's watch is known to B (a heartbeat or so after it subscribed).
    let ev = seen_on_stream(w, &watch, B, "c-tls-b");
    assert_eq!(
        ev["node"], B,
        "event of c-tls-b (on {B}) on {A}'s stream: {ev}"
    );
    assert_eq!(ev["success"], true, "{ev}");
    let ev = seen_on_stream(w, &watch, A, "c-tls-a");
    assert_eq!(
        ev["node"], A,
        "event of c-tls-a (on {A}) on {A}'s stream: {ev}"
    );
}

/// Run `noop.Noop` on `agent` through `node`'s own admin API until its
/// `command_result` (by command id) shows on `watch`; that event.
fn seen_on_stream(w: &World, watch: &Proc, node: &str, agent: &str) -> Value {
    let m = w.fleet.node(node);
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let a = m.post(
            "/v1/runs",
            &json!({"target": agent, "operation": "noop.Noop", "timeout": 30}),
        );
        let body = a.json();
        assert_eq!(a.status, 200, "run noop.Noop on {agent} via {node}: {body}");
        let id = body["results"][0]["command_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no command_id in the run's answer from {node}: {body}"))
            .to_owned();
        let seen = watch.wait_for_json(
            |v| v["type"] == "command_result" && v["command_id"] == id.as_str(),
            Duration::from_secs(5),
        );
        if let Ok(ev) = seen {
            assert_eq!(ev["agent"], agent, "{ev}");
            return ev;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the result of command {id} of {agent} (run via {node}) never showed on {A}'s \
             event stream; the stream:\n{}\n{}",
            watch.tail(20),
            w.diag(&[])
        );
    }
}

/// `/v1/cluster` and `redpepper-ctl cluster` on A: A local, B and C alive, with their
/// agents, heartbeats and versions.
#[test]
fn a_sees_b_and_c_alive() {
    let (w, nodes) = shared();
    let f = &w.fleet;
    let (body, by_name) = wait_until(
        &format!("{A}'s /v1/cluster to show {B} and {C} alive"),
        || w.diag(&[]),
        || {
            let (body, by_name) = cluster_view(f.node(A))?;
            // Alive and heard from: a node is known (alive) from its first message,
            // which may be an agent's arrival before its first heartbeat.
            let alive = |n: &str| {
                by_name
                    .get(n)
                    .is_some_and(|e| e["state"] == "alive" && e["last_heartbeat"].is_string())
            };
            if alive(B) && alive(C) {
                Ok((body, by_name))
            } else {
                Err(body.to_string())
            }
        },
    );
    assert_eq!(body["node"], A, "{body}");
    assert_eq!(body["nodes"][0]["name"], A, "this node first: {body}");
    assert_eq!(body["nodes"][0]["state"], "local", "{body}");
    for name in [A, B, C] {
        let e = &by_name[name];
        let on_it = nodes.values().filter(|n| n.as_str() == name).count() as u64;
        let agents = e["agents"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {e}"));
        assert!(agents >= on_it, "{name} holds at least {on_it} agents: {e}");
        assert!(
            !e["version"].as_str().unwrap_or("").is_empty(),
            "{name}: {e}"
        );
        assert!(
            e["started"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{name}: {e}"
        );
    }
    for name in [B, C] {
        let e = &by_name[name];
        assert!(
            e["last_heartbeat"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{name} as seen by {A}: {e}"
        );
    }

    let r = ctl_on(f, A, &["cluster"]);
    assert_eq!(r.code, 0, "redpepper-ctl cluster on {A}: {r}");
    let header = &r.stdout[0];
    let mut at = 0;
    for col in ["NODE", "STATE", "AGENTS", "LAST HEARTBEAT", "VERSION"] {
        at = header[at..]
            .find(col)
            .map(|i| i + at)
            .unwrap_or_else(|| panic!("no column {col} in `redpepper-ctl cluster`: {r}"));
    }
    for (name, state) in [(A, "local"), (B, "alive"), (C, "alive")] {
        let row = r
            .stdout
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("node {name} not in `redpepper-ctl cluster`: {r}"));
        assert!(
            row.contains(&format!(" {state} ")),
            "{name}: want {state}: {row}"
        );
    }
}
