//! The admin API end to end: a real manager, 52 real agent processes, driven only
//! through `redpepper-ctl` and plain HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::admin as admin_support;

use std::process::Command;
use std::time::{Duration, Instant};

use admin_support::*;
use redpepper_tests::serde_json::{self, json, Value};
use redpepper_tests::{bin, free_port, Proc, Signal, TIMEOUT};

fn stdout_json(r: &CtlRun) -> Value {
    serde_json::from_str(&r.stdout.join("\n")).unwrap_or_else(|e| panic!("{e}: {r}"))
}

#[test]
fn fifty_agents_through_ctl_and_http() {
    let web = ids("web-", 50);
    let db = ids("db-", 2);
    let all: Vec<String> = web.iter().chain(&db).cloned().collect();
    let mut c = Cluster::manager(&all, "127.0.0.1:0", "");
    for id in &all {
        c.start_agent(id);
    }
    c.wait_agents(&all);

    // --- list: table, JSON, raw HTTP -------------------------------------------------
    let r = finish(c.ctl_cmd(&["agents"]));
    assert_eq!(r.code, 0, "{r}");
    let header = &r.stdout[0];
    for col in [
        "ID",
        "TRANSPORT",
        "ADDRESS",
        "VERSION",
        "CONNECTED",
        "PING",
        "IN-FLIGHT",
    ] {
        assert!(header.contains(col), "{r}");
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

    let listed = stdout_json(&finish(c.ctl_cmd(&["agents", "--json"])));
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
        assert_eq!(a["calls_in_flight"], 0, "{a}");
    }
    let one = c.get("/v1/agents/db-01");
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["id"], "db-01");

    // --- call one agent: typed kwargs, errors ----------------------------------------
    let r = finish(c.ctl_cmd(&[
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
    ]));
    assert_eq!(r.code, 0, "{r}");
    let answer = stdout_json(&r);
    assert_eq!(answer["success"], true, "{r}");
    assert_eq!(answer["data"]["args"], json!(["hello"]));
    assert_eq!(
        answer["data"]["kwargs"],
        json!({"n": 42, "flag": true, "list": [1, "a", null], "text": "two words"})
    );
    let r = finish(c.ctl_cmd(&["call", "nobody", "echo"]));
    assert_eq!(r.code, 1, "{r}");
    assert_eq!(r.stderr, ["error: agent nobody is not connected"], "{r}");
    let r = finish(c.ctl_cmd(&["call", "web-07", "no_such_method"]));
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr[0].contains("Method no_such_method not found"),
        "{r}"
    );
    let raw = c.post(
        "/v1/agents/web-08/calls",
        json!({"method": "echo", "kwargs": {"b": {"$bin": "AAE="}}}),
    );
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.json()["data"]["kwargs"]["b"], json!({"$bin": "AAE="}));

    // --- broadcast to a glob of 50 ---------------------------------------------------
    let r = finish(c.ctl_cmd(&["call", "web-*", "echo", "ping"]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout.len(), 50, "{r}");
    for id in &web {
        assert!(
            r.stdout.iter().any(|l| l.starts_with(&format!("{id}: "))),
            "{id}: {r}"
        );
    }
    assert!(r.stdout.iter().all(|l| !l.starts_with("db-")), "{r}");
    assert_eq!(r.stderr, ["50 agent(s): 50 succeeded, 0 failed"], "{r}");
    let raw = c.post(
        "/v1/calls",
        json!({"target": "web-*", "method": "echo", "args": ["x"], "timeout": 30}),
    );
    let body = raw.json();
    assert_eq!(
        body["summary"],
        json!({"total": 50, "succeeded": 50, "failed": 0}),
        "{body}"
    );

    // --- run operations with progress -------------------------------------------------
    let r = finish(c.ctl_cmd(&[
        "run",
        "web-*",
        "echo.Echo",
        "-k",
        "message=hello",
        "-k",
        "reverse=true",
    ]));
    assert_eq!(r.code, 0, "{r}");
    for id in &web {
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
    let r = finish(c.ctl_cmd(&[
        "run",
        "db-*",
        "command.Run",
        "-k",
        "command=echo out-$((6*7))",
    ]));
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
    // On a terminal (a pty from util-linux `script`), with stderr thrown away: progress
    // bars, and still every result and the summary.
    let line = format!(
        "{} --manager {} --token-file {} run 'web-0*' echo.Echo -k message=on-a-tty 2>/dev/null",
        bin("redpepper-ctl").display(),
        c.admin_url,
        c.token_file.display()
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
    let r = finish(c.ctl_cmd(&[
        "run",
        "db-00",
        "command.Run",
        "-k",
        "command=exit 3",
        "--json",
    ]));
    assert_eq!(r.code, 1, "{r}");
    let lines: Vec<Value> = r
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["started", "progress", "progress", "result", "summary"],
        "{r}"
    );
    assert_eq!(lines[3]["success"], false);
    let r = finish(c.ctl_cmd(&[
        "run",
        "db-01",
        "command.Run",
        "-k",
        "command=sleep 30",
        "--timeout",
        "1",
    ]));
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stdout
            .iter()
            .any(|l| l.starts_with("db-01: FAILED (timeout)")),
        "{r}"
    );

    // --- notify -----------------------------------------------------------------------
    let r = finish(c.ctl_cmd(&["notify", "web-01", "hello", r#"{"x": 1}"#]));
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, vec!["sent hello to web-01".to_owned()]),
        "{r}"
    );
    let r = finish(c.ctl_cmd(&["notify", "nobody", "hello"]));
    assert_eq!(r.code, 1, "{r}");

    // --- watch events across disconnects ----------------------------------------------
    let watch = Proc::spawn("watch", c.ctl_cmd(&["watch", "--agent", "db-*"]));
    let watch_json = Proc::spawn("watch-json", c.ctl_cmd(&["watch", "--json"]));
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
        c.post(
            "/v1/runs",
            json!({"target": "db-00", "operation": "noop.Noop"}),
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
    c.start_impostor("db-01");
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
    let r = finish(c.ctl_cmd(&["call", "db-01", "echo", "still-me"]));
    assert_eq!(r.code, 0, "{r}");
    c.agent("db-01").signal(Signal::SIGTERM).unwrap();
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
    c.agent("db-00").signal(Signal::SIGKILL).unwrap();
    let ev = watch_json
        .wait_for_json(
            |v| v["type"] == "disconnected" && v["agent"] == "db-00",
            TIMEOUT,
        )
        .unwrap();
    assert!(!ev["reason"].as_str().unwrap().is_empty(), "{ev}");
    c.start_agent("db-01");
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
    let r = finish(c.ctl_cmd(&["call", "db-00", "echo"]));
    assert_eq!(r.stderr, ["error: agent db-00 is not connected"], "{r}");

    // --- 401 --------------------------------------------------------------------------
    let raw = http(c.admin, "GET", "/v1/agents", None, None);
    assert_eq!(raw.status, 401);
    assert_eq!(raw.json()["code"], "unauthorized");
    assert!(raw
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let raw = http(c.admin, "GET", "/metrics", Some("not-the-token"), None);
    assert_eq!(raw.status, 401);
    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["--manager", &c.admin_url, "agents"])
        .env("REDPEPPER_ADMIN_TOKEN", "wrong")
        .env_remove("REDPEPPER_ADMIN_TOKEN_FILE");
    let r = finish(cmd);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stderr.len(), 1, "{r}");
    assert!(r.stderr[0].contains("401"), "{r}");
    c.manager
        .wait_for_line(
            |l| l.contains("admin request refused (401)") && l.contains("127.0.0.1"),
            TIMEOUT,
        )
        .unwrap();
    assert!(c
        .manager
        .find_line(|l| l.contains("not-the-token"))
        .is_none());

    // --- metrics ----------------------------------------------------------------------
    let deadline = Instant::now() + TIMEOUT;
    let samples = loop {
        let raw = c.get("/metrics");
        assert_eq!(raw.status, 200);
        assert!(raw
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"));
        let samples = parse_prometheus(&raw.body);
        if sample(&samples, "redpepper_ping_rtt_seconds_count", "") > 0.0
            && sample(&samples, "redpepper_connected_agents", "transport=\"tls\"") == 51.0
        {
            break samples;
        }
        assert!(Instant::now() < deadline, "{}", raw.body);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(sample(&samples, "redpepper_handshakes_total", "") >= 53.0);
    assert!(sample(&samples, "redpepper_calls_sent_total", "outcome=\"ok\"") >= 100.0);
    assert!(
        sample(
            &samples,
            "redpepper_calls_sent_total",
            "outcome=\"remote_error\""
        ) >= 1.0
    );
    assert!(sample(&samples, "redpepper_call_duration_seconds_count", "") >= 100.0);
    assert!(
        sample(
            &samples,
            "redpepper_call_duration_seconds_bucket",
            "le=\"+Inf\""
        ) >= 100.0
    );
    assert!(
        sample(
            &samples,
            "redpepper_transport_received_bytes_total",
            "transport=\"tls\""
        ) > 0.0
    );
    assert!(
        sample(
            &samples,
            "redpepper_transport_sent_bytes_total",
            "transport=\"tls\""
        ) > 0.0
    );
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
    let r = finish(c.ctl_cmd(&["metrics"]));
    assert_eq!(r.code, 0);
    assert!(
        r.stdout
            .iter()
            .any(|l| l == "redpepper_connected_agents{transport=\"tls\"} 51"),
        "{r}"
    );

    let spec = c.get("/v1/openapi.json").json();
    assert!(spec["paths"]["/v1/runs"]["post"].is_object());
}

#[test]
fn ctl_finds_a_tls_admin_api_from_the_manager_config() {
    let port = free_port();
    let dir = redpepper_tests::scratch_dir();
    let certs = redpepper_tests::TestCerts::generate(&dir.path().join("admin-certs"));
    let extra = format!(
        "admin_tls_cert_file: {}\nadmin_tls_key_file: {}\n",
        certs.manager_cert.display(),
        certs.manager_key.display()
    );
    let c = Cluster::manager(&[], &format!("127.0.0.1:{port}"), &extra);
    assert_eq!(c.admin_url, format!("https://127.0.0.1:{port}"));
    // No --manager, no --token-file: both come from the configuration file.
    let ctl = |args: &[&str], ca: bool| {
        let mut cmd = Command::new(bin("redpepper-ctl"));
        cmd.arg("--config-file")
            .arg(&c.config_file)
            .args(args)
            .env_remove("REDPEPPER_MANAGER")
            .env_remove("REDPEPPER_ADMIN_TOKEN")
            .env_remove("REDPEPPER_ADMIN_TOKEN_FILE")
            .env_remove("REDPEPPER_ADMIN_CA_FILE");
        if ca {
            cmd.env("REDPEPPER_ADMIN_CA_FILE", &certs.ca_cert);
        }
        finish(cmd)
    };
    let r = ctl(&["status"], true);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.iter().any(|l| l.starts_with("listening tls")),
        "{r}"
    );
    let r = ctl(&["agents", "--json"], true);
    assert_eq!(stdout_json(&r), json!({"agents": []}), "{r}");
    // Without the CA the certificate is not trusted: a connection error, exit 2.
    let r = ctl(&["agents"], false);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr[0].starts_with("error: cannot reach the manager at https://"),
        "{r}"
    );
}

#[test]
fn unreachable_manager_and_unsafe_token_file_are_one_line_errors() {
    let port = free_port();
    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["--manager", &format!("http://127.0.0.1:{port}"), "agents"])
        .env("REDPEPPER_ADMIN_TOKEN", "t");
    let r = finish(cmd);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stderr.len(), 1, "{r}");
    assert!(
        r.stderr[0].contains(&format!(
            "cannot reach the manager at http://127.0.0.1:{port}"
        )),
        "{r}"
    );

    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["agents"])
        .env_remove("REDPEPPER_MANAGER")
        .args(["--config-file", "/nonexistent/manager.yml"]);
    let r = finish(cmd);
    assert_eq!(r.code, 2, "{r}");

    // The manager refuses a token file that others can read.
    let dir = redpepper_tests::scratch_dir();
    let certs = redpepper_tests::TestCerts::generate(&dir.path().join("certs"));
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123").unwrap();
    let config = dir.path().join("manager.yml");
    std::fs::write(
        &config,
        format!(
            "bind_host: 127.0.0.1\nbind_port: 0\ntls_cert_file: {}\ntls_key_file: {}\ndata_base_dir: {}\nadmin_bind: 127.0.0.1:0\nadmin_token_file: {}\n",
            certs.manager_cert.display(), certs.manager_key.display(), dir.path().display(), token.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut cmd = Command::new(bin("redpepper-manager"));
    cmd.arg("--config-file").arg(&config);
    let manager = Proc::spawn("manager", cmd);
    let status = manager.wait_exit(TIMEOUT).unwrap();
    assert!(!status.success());
    manager
        .wait_for_line(
            |l| l.contains("admin_token_file") && l.contains("chmod 600"),
            TIMEOUT,
        )
        .unwrap();
}
