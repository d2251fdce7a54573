//! The admin API end to end: a real manager and real agent processes, driven only
//! through `redpepper-ctl` and plain HTTP. One test per behaviour; those that leave
//! the connected agents as they are share one fleet of 55 agents
//! ([`shared`](crate::support::admin::shared)), the one that stops agents has its own.
//!
//! # Layout
//! - this file: the API and `redpepper-ctl` against running agents.
//! - `connecting`: how `redpepper-ctl` finds and reaches the manager (own managers).
//! - `fleet`: down agents, data/regex targets, `--batch`, `jobs`, `agents add`.
//! - `runs`: runs in progress, `redpepper-ctl runs` / `cancel`, Ctrl-C during `run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod connecting;
mod fleet;
mod runs;

use crate::support::admin::*;

use std::process::Command;
use std::time::{Duration, Instant};

use redpepper_tests::fleet::{http, json_after, Fleet};
use redpepper_tests::serde_json::{self, json, Value};
use redpepper_tests::{bin, Proc, Signal, TIMEOUT};

#[test]
fn agents_are_listed_as_a_table_as_json_and_over_http() {
    let f = shared();
    let all = shared_ids();
    let r = ctl(f, &["agents"]);
    assert_eq!(r.code, 0, "{r}");
    let header = &r.stdout[0];
    // The columns `redpepper-ctl agents` prints, in its order.
    let columns = "ID TRANSPORT ADDRESS VERSION CONNECTED PING IN-FLIGHT IDENTITY";
    let mut at = 0;
    for col in columns.split(' ') {
        let found = header[at..].find(col).map(|i| i + at);
        at = found.unwrap_or_else(|| panic!("no column {col} after {at}: {r}"));
    }
    assert_eq!(r.stdout.len(), 1 + all.len(), "{r}");
    let row = r.stdout.iter().find(|l| l.starts_with("web-07 ")).unwrap();
    assert!(row.contains(" tls ") && row.contains("127.0.0.1:"), "{row}");
    // Columns line up: every row has TRANSPORT where the header has it.
    let col = header.find("TRANSPORT").unwrap();
    assert!(
        r.stdout[1..].iter().all(|l| l[col..].starts_with("tls")),
        "{r}"
    );

    let listed = ctl(f, &["agents", "--json"]).json();
    let agents = listed["agents"].as_array().unwrap();
    assert_eq!(agents.len(), all.len());
    for a in agents {
        assert_eq!(a["transport"], "tls", "{a}");
        assert!(
            a["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{a}"
        );
        assert!(!a["version"].as_str().unwrap().is_empty(), "{a}");
        assert!(a["connected_since"].as_str().unwrap().ends_with('Z'), "{a}");
        // Other tests call the other agents meanwhile; nobody calls idle-00.
        assert!(a["calls_in_flight"].is_u64(), "{a}");
        if a["id"] == "idle-00" {
            assert_eq!(a["calls_in_flight"], 0, "{a}");
        }
    }
    let one = f.manager().get("/v1/agents/db-01");
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["id"], "db-01");
}

#[test]
fn a_call_passes_typed_kwargs_and_errors_are_one_line() {
    let f = shared();
    let r = ctl(
        f,
        &[
            "call",
            "web-07",
            "echo",
            "hello",
            "-k",
            "n=42",
            "-k",
            "flag=true",
            "-k",
            r#"list=[1, "a", null]"#,
            "-k",
            "text=two words",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    let answer = r.json();
    assert_eq!(answer["success"], true, "{r}");
    assert_eq!(answer["data"]["args"], json!(["hello"]));
    assert_eq!(
        answer["data"]["kwargs"],
        json!({"n": 42, "flag": true, "list": [1, "a", null], "text": "two words"})
    );
    let r = ctl(f, &["call", "nobody", "echo"]);
    assert_eq!(r.code, 1, "{r}");
    assert_eq!(r.stderr, ["error: agent nobody is not connected"], "{r}");
    let r = ctl(f, &["call", "web-07", "no_such_method"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr[0].contains("Method no_such_method not found"),
        "{r}"
    );
    let raw = f.manager().post(
        "/v1/agents/web-08/calls",
        &json!({"method": "echo", "kwargs": {"b": {"$bin": "AAE="}}}),
    );
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.json()["data"]["kwargs"]["b"], json!({"$bin": "AAE="}));
}

#[test]
fn a_call_to_a_glob_reaches_every_match() {
    let f = shared();
    let r = ctl(f, &["call", "web-*", "echo", "ping"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout.len(), 50, "{r}");
    for id in ids("web-", 50) {
        assert!(
            r.stdout.iter().any(|l| l.starts_with(&format!("{id}: "))),
            "{id}: {r}"
        );
    }
    assert!(r.stdout.iter().all(|l| !l.starts_with("db-")), "{r}");
    assert_eq!(r.stderr, ["50 agent(s): 50 succeeded, 0 failed"], "{r}");
    let raw = f.manager().post(
        "/v1/calls",
        &json!({"target": "web-*", "method": "echo", "args": ["x"], "timeout": 30}),
    );
    let body = raw.json();
    assert_eq!(
        body["summary"],
        json!({"total": 50, "succeeded": 50, "failed": 0}),
        "{body}"
    );
}

#[test]
fn runs_show_progress_output_and_a_summary() {
    let f = shared();
    let r = ctl(
        f,
        &[
            "run",
            "web-*",
            "echo.Echo",
            "-k",
            "message=hello",
            "-k",
            "reverse=true",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    for id in ids("web-", 50) {
        for want in [
            format!("{id}: [0/1] Running echo.Echo"),
            format!("{id}: [1/1] Finished echo.Echo"),
            format!("{id}: succeeded (changed: no)"),
            format!("{id}> olleh"),
        ] {
            assert!(r.stdout.iter().any(|l| l.starts_with(&want)), "{want}: {r}");
        }
    }
    assert_eq!(
        r.stdout.last().unwrap(),
        "summary: 50 agent(s), 50 succeeded, 0 failed, 0 changed"
    );
    let r = ctl(
        f,
        &[
            "run",
            "db-*",
            "command.Run",
            "-k",
            "command=echo out-$((6*7))",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout
            .iter()
            .any(|l| l.starts_with("db-00> ") && l.contains("out-42")),
        "{r}"
    );
    assert!(
        r.stdout.iter().any(|l| l.starts_with("db-01: [1/1]")),
        "{r}"
    );
}

#[test]
fn runs_on_a_terminal_show_every_result_and_the_summary() {
    let f = shared();
    // On a terminal (a pty from util-linux `script`), with stderr thrown away: progress
    // bars, and still every result and the summary.
    let line = format!(
        "{} --manager {} --token-file {} run 'web-0*' echo.Echo -k message=on-a-tty 2>/dev/null",
        bin("redpepper-ctl").display(),
        admin_url(f),
        f.token_file.as_ref().unwrap().display()
    );
    let mut tty = Command::new("script");
    tty.args(["-qec", &line, "/dev/null"])
        .env_remove("REDPEPPER_MANAGER")
        .env_remove("REDPEPPER_ADMIN_TOKEN");
    let r = finish(tty);
    assert_eq!(r.code, 0, "{r}");
    let shown = r.stdout.join("\n");
    for i in 0..10 {
        assert!(shown.contains(&format!("web-0{i}> on-a-tty")), "{shown}");
    }
    assert!(
        shown.contains("summary: 10 agent(s), 10 succeeded, 0 failed, 0 changed"),
        "{shown}"
    );
}

#[test]
fn a_failed_or_timed_out_run_exits_1() {
    let f = shared();
    let r = ctl(
        f,
        &[
            "run",
            "db-00",
            "command.Run",
            "-k",
            "command=exit 3",
            "--json",
        ],
    );
    assert_eq!(r.code, 1, "{r}");
    let lines = r.json_lines();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["started", "progress", "progress", "result", "summary"],
        "{r}"
    );
    assert_eq!(lines[3]["success"], false);
    let r = ctl(
        f,
        &[
            "run",
            "slow-00",
            "command.Run",
            "-k",
            "command=sleep 30",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stdout
            .iter()
            .any(|l| l.starts_with("slow-00: FAILED (timeout)")),
        "{r}"
    );
}

#[test]
fn notify_reaches_a_connected_agent_and_fails_for_an_absent_one() {
    let f = shared();
    let r = ctl(f, &["notify", "web-01", "hello", r#"{"x": 1}"#]);
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, vec!["sent hello to web-01".to_owned()]),
        "{r}"
    );
    let r = ctl(f, &["notify", "nobody", "hello"]);
    assert_eq!(r.code, 1, "{r}");
}

#[test]
fn requests_without_the_token_get_401_and_the_token_is_never_logged() {
    let f = shared();
    let m = f.manager();
    let mark = m.proc.line_count();
    let raw = http(m.admin(), "GET", "/v1/agents", None, None);
    assert_eq!(raw.status, 401);
    assert_eq!(raw.json()["code"], "unauthorized");
    assert!(raw
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let raw = http(m.admin(), "GET", "/metrics", Some("not-the-token"), None);
    assert_eq!(raw.status, 401);
    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["--manager", admin_url(f), "agents"])
        .env("REDPEPPER_ADMIN_TOKEN", "wrong")
        .env_remove("REDPEPPER_ADMIN_TOKEN_FILE");
    let r = finish(cmd);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stderr.len(), 1, "{r}");
    assert!(r.stderr[0].contains("401"), "{r}");
    m.proc
        .wait_for_line_after(
            mark,
            |l| l.contains("admin request refused (401)") && l.contains("127.0.0.1"),
            TIMEOUT,
        )
        .unwrap();
    assert!(m.proc.find_line(|l| l.contains("not-the-token")).is_none());
}

#[test]
fn metrics_count_calls_notifications_refusals_and_agents() {
    let f = shared();
    let m = f.manager();
    let agents = shared_ids().len() as f64;
    // What this test counts on, caused here: 100 calls, one remote error, 150
    // notifications (progress and result of 50 runs), three refused admin requests,
    // one refused agent.
    for _ in 0..2 {
        let raw = m.post(
            "/v1/calls",
            &json!({"target": "web-*", "method": "echo", "timeout": 30}),
        );
        assert_eq!(raw.json()["summary"]["succeeded"], 50, "{}", raw.body);
    }
    assert_eq!(ctl(f, &["call", "web-09", "no_such_method"]).code, 1);
    let r = ctl(f, &["run", "web-*", "echo.Echo", "-k", "message=counted"]);
    assert_eq!(r.code, 0, "{r}");
    for token in [None, Some("not-the-token"), Some("wrong")] {
        assert_eq!(http(m.admin(), "GET", "/metrics", token, None).status, 401);
    }
    let _impostor = f.spawn_impostor("idle-00");
    json_after(&m.proc, 0, "the impostor's refusal", |v| {
        v["message"] == "authentication failed" && v["agent"] == "idle-00"
    });

    let deadline = Instant::now() + TIMEOUT;
    let samples = loop {
        let raw = m.get("/metrics");
        assert_eq!(raw.status, 200);
        assert!(raw
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"));
        let samples = parse_prometheus(&raw.body);
        if sample(&samples, "redpepper_ping_rtt_seconds_count", "") > 0.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "{}", raw.body);
        std::thread::sleep(Duration::from_millis(100));
    };
    let tls = "transport=\"tls\"";
    assert_eq!(sample(&samples, "redpepper_connected_agents", tls), agents);
    assert!(sample(&samples, "redpepper_handshakes_total", "") >= agents);
    assert!(sample(&samples, "redpepper_calls_sent_total", "outcome=\"ok\"") >= 100.0);
    let remote_error = "outcome=\"remote_error\"";
    assert!(sample(&samples, "redpepper_calls_sent_total", remote_error) >= 1.0);
    assert!(sample(&samples, "redpepper_call_duration_seconds_count", "") >= 100.0);
    let inf = "le=\"+Inf\"";
    assert!(sample(&samples, "redpepper_call_duration_seconds_bucket", inf) >= 100.0);
    assert!(sample(&samples, "redpepper_transport_received_bytes_total", tls) > 0.0);
    assert!(sample(&samples, "redpepper_transport_sent_bytes_total", tls) > 0.0);
    assert!(sample(&samples, "redpepper_notifications_received_total", "") >= 100.0);
    assert!(sample(&samples, "redpepper_admin_unauthorized_total", "") >= 3.0);
    assert!(sample(&samples, "redpepper_auth_failures_total", "") >= 1.0);
    for name in [
        "redpepper_bad_frames_total",
        "redpepper_oversize_frames_total",
        "redpepper_auth_failures_total",
    ] {
        sample(&samples, name, "");
    }
    let r = ctl(f, &["metrics"]);
    assert_eq!(r.code, 0);
    let want = format!("redpepper_connected_agents{{{tls}}} {agents}");
    assert!(r.stdout.contains(&want), "{want}: {r}");
}

#[test]
fn the_openapi_document_is_served() {
    let spec = shared().manager().get("/v1/openapi.json").json();
    assert!(spec["paths"]["/v1/runs"]["post"].is_object());
}

/// Agents stop and come back here: a fleet of its own.
#[test]
fn watch_streams_events_across_refusals_and_disconnects() {
    let all: Vec<String> = ["db-00", "db-01", "web-00"].map(String::from).into();
    let f = started(&all, Fleet::builder());
    let mut agents: Vec<Proc> = all.iter().map(|id| f.spawn_agent(id)).collect();
    wait_connected(&f, &all);
    let watch = Proc::spawn("watch", ctl_cmd(&f, &["watch", "--agent", "db-*"]));
    let watch_json = Proc::spawn("watch-json", ctl_cmd(&f, &["watch", "--json"]));
    // The streams are subscribed once they show an event we cause.
    let deadline = Instant::now() + TIMEOUT;
    while watch
        .find_line(|l| l.contains(" command_result "))
        .is_none()
        || watch_json
            .find_line(|l| l.contains("command_result"))
            .is_none()
    {
        assert!(Instant::now() < deadline, "no events: {}", watch.tail(20));
        f.manager().post(
            "/v1/runs",
            &json!({"target": "db-00", "operation": "noop.Noop"}),
        );
    }
    // Progress of those runs streamed too.
    watch_json
        .wait_for_json(
            |v| v["type"] == "command_progress" && v["agent"] == "db-00",
            TIMEOUT,
        )
        .unwrap();
    // An agent refused for a wrong secret: an auth_failed event naming the claimed id.
    let _impostor = f.spawn_impostor("db-01");
    let ev = watch_json
        .wait_for_json(
            |v| v["type"] == "auth_failed" && v["agent"] == "db-01",
            TIMEOUT,
        )
        .unwrap();
    assert!(ev["peer"].as_str().unwrap().contains("127.0.0.1"), "{ev}");
    watch
        .wait_for_line(
            |l| l.contains(" auth_failed ") && l.contains("db-01"),
            TIMEOUT,
        )
        .unwrap();
    // The refused impostor did not replace the real db-01.
    let r = ctl(&f, &["call", "db-01", "echo", "still-me"]);
    assert_eq!(r.code, 0, "{r}");
    agents[1].signal(Signal::SIGTERM).unwrap();
    let line = watch
        .wait_for_line(
            |l| l.contains(" disconnected ") && l.contains("db-01"),
            TIMEOUT,
        )
        .unwrap();
    assert!(line.contains("peer said bye: shutting down"), "{line}");
    let ev = watch_json
        .wait_for_json(
            |v| v["type"] == "disconnected" && v["agent"] == "db-01",
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(ev["reason"], "peer said bye: shutting down");
    assert!(ev["time"].as_str().unwrap().ends_with('Z'));
    agents[0].signal(Signal::SIGKILL).unwrap();
    let ev = watch_json
        .wait_for_json(
            |v| v["type"] == "disconnected" && v["agent"] == "db-00",
            TIMEOUT,
        )
        .unwrap();
    assert!(!ev["reason"].as_str().unwrap().is_empty(), "{ev}");
    agents.push(f.spawn_agent("db-01"));
    watch_json
        .wait_for_json(|v| v["type"] == "connected", TIMEOUT)
        .unwrap();
    watch
        .wait_for_line(
            |l| l.contains(" authenticated ") && l.contains("db-01"),
            TIMEOUT,
        )
        .unwrap();
    assert!(
        watch.find_line(|l| l.contains("web-")).is_none(),
        "{}",
        watch.tail(20)
    );
    let r = ctl(&f, &["call", "db-00", "echo"]);
    assert_eq!(r.stderr, ["error: agent db-00 is not connected"], "{r}");
}
