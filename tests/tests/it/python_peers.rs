//! The Python RedPepper 0.3.4 manager and agent talking to each other through
//! the harness: validates the harness, the helper scripts and the venv that
//! `scripts/test` builds, and pins down the Python peers' observable behaviour
//! the interoperability tests rely on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::python::{agent_config, connected_pair, run_succeeds, secret, setup};
use redpepper_tests::python::{AGENT_TLS_CONNECTED, HELLO_ACCEPTED, MANAGER_AUTH_OK};
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::*;

fn bus(v: &Value, kind: &str) -> bool {
    v["event"] == "bus" && v["type"] == kind
}

#[test]
fn python_agent_runs_echo_for_python_manager() {
    let (fleet, config) = setup();
    let manager = PyManager::start(&config);
    let agent = PyAgent::start(&agent_config(&fleet, manager.port(), &secret()));

    let hello = agent.wait_connected(TIMEOUT).unwrap();
    assert!(
        hello.ends_with(&format!("{HELLO_ACCEPTED} 0.3.4")),
        "{hello}"
    );
    manager.wait_agent("a1", TIMEOUT).unwrap();
    assert_eq!(manager.connected_agents().unwrap(), vec!["a1".to_string()]);

    let result = run_succeeds(&manager, "echo.Echo", json!({"message": "hello from rust"}));
    assert_eq!(result["changed"], false, "{result}");
    let output = result["output"].as_str().unwrap();
    assert_eq!(
        output,
        "Operation echo.Echo(\"hello from rust\") succeeded:\nhello from rust"
    );

    // Progress went 0/1 then 1/1 before the result, all for the same command.
    let id = result["id"].as_str().unwrap().to_string();
    let first = manager
        .wait_event(|v| bus(v, "command_progress"), TIMEOUT)
        .unwrap();
    let second = manager
        .wait_event(|v| bus(v, "command_progress"), TIMEOUT)
        .unwrap();
    assert_eq!(
        (&first["id"], &first["progress_current"]),
        (&json!(id), &json!(0))
    );
    assert_eq!(
        (&second["id"], &second["progress_current"]),
        (&json!(id), &json!(1))
    );
    assert_eq!(second["progress_total"], 1);

    let reversed = run_succeeds(
        &manager,
        "echo.Echo",
        json!({"message": "abc", "reverse": true}),
    );
    assert!(
        reversed["output"].as_str().unwrap().ends_with("\ncba"),
        "{reversed}"
    );
    assert_ne!(reversed["id"], result["id"]);
}

#[test]
fn python_agent_reports_unknown_methods_and_bad_operations() {
    let (_fleet, manager, _agent) = connected_pair();

    let answer = manager
        .rpc("a1", "no_such_method", json!([]), json!({}), TIMEOUT)
        .unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["data"], "Method no_such_method not found");

    let failed = manager
        .command("a1", "nosuchmodule.Op", json!({}), TIMEOUT)
        .unwrap();
    assert_eq!(failed["success"], false, "{failed}");
    assert!(
        failed["output"]
            .as_str()
            .unwrap()
            .contains("Failed to execute command 'nosuchmodule.Op'"),
        "{failed}"
    );
}

#[test]
fn python_manager_refuses_a_wrong_secret() {
    let (fleet, config) = setup();
    let manager = PyManager::start(&config);
    let agent = PyAgent::start(&agent_config(&fleet, manager.port(), "wrong"));

    let failure = manager
        .wait_event(|v| bus(v, "auth_failure"), TIMEOUT)
        .unwrap();
    assert_eq!(failure["agent"], "a1");
    assert_eq!(failure["secret_hash"], sha256_hex("wrong"));
    // The agent surfaces the Bye reason, then backs off and retries.
    agent
        .wait_for_line(|l| l.contains(AGENT_TLS_CONNECTED), TIMEOUT)
        .unwrap();
    agent
        .wait_for_line(
            |l| l.contains("AuthenticationError: authentication failed"),
            TIMEOUT,
        )
        .unwrap();
    agent
        .wait_for_line(|l| l.contains("Retrying in 2 seconds"), TIMEOUT)
        .unwrap();
    assert!(agent.find_line(|l| l.contains(HELLO_ACCEPTED)).is_none());
}

#[test]
fn python_manager_shutdown_says_bye_to_the_agent() {
    let (_fleet, manager, agent) = connected_pair();
    manager.wait_agent("a1", TIMEOUT).unwrap();

    manager.shutdown().unwrap();
    agent
        .wait_for_line(
            |l| l.contains("Received BYE message: server shutting down"),
            TIMEOUT,
        )
        .unwrap();
}

#[test]
fn redpepper_manager_command_serves_agents_and_stops_on_sigterm() {
    let (fleet, mut config) = setup();
    config.ping_interval = Some(1);
    let manager = PyManager::start_cli(&config);
    let mut agent_config = agent_config(&fleet, manager.port(), &secret());
    agent_config.ping_interval = Some(1);
    let agent = PyAgent::start(&agent_config);

    agent.wait_connected(TIMEOUT).unwrap();
    manager
        .wait_for_line(|l| l.contains(&format!("{MANAGER_AUTH_OK} a1")), TIMEOUT)
        .unwrap();
    // Both sides ping every second: the agent logs its own pings and the pongs.
    let ping = agent
        .wait_for_line(|l| l.contains("Ping "), TIMEOUT)
        .unwrap();
    let data = ping.rsplit(' ').next().unwrap().to_string();
    agent
        .wait_for_line(|l| l.ends_with(&format!("Pong {data}")), TIMEOUT)
        .unwrap();

    manager.signal(Signal::SIGTERM).unwrap();
    manager.wait_exit(TIMEOUT).unwrap();
    // No Bye on SIGTERM: the agent just sees the connection drop.
    agent
        .wait_for_line(|l| l.contains("Retrying in"), TIMEOUT)
        .unwrap();
    assert!(agent.find_line(|l| l.contains("Received BYE")).is_none());
}

#[test]
fn raw_peer_speaks_the_wire_protocol_to_python_manager() {
    let (fleet, config) = setup();
    let manager = PyManager::start(&config);

    let request = r#"{"t": 20, "id": "r1", "method": "nope", "args": [], "kwargs": {}}"#;
    let peer = raw_peer(
        manager.port(),
        &fleet.certs.ca_cert,
        &[
            "--id",
            "a1",
            "--secret",
            &secret(),
            "--recv",
            "2",
            "--send",
            request,
        ],
    );

    let hello = peer
        .wait_for_json(|v| v["event"] == "received", TIMEOUT)
        .unwrap();
    assert_eq!(hello["message"], json!({"t": 11, "version": "0.3.4"}));
    let response = peer
        .wait_for_json(|v| v["event"] == "received", TIMEOUT)
        .unwrap();
    assert_eq!(
        response["message"],
        json!({"t": 21, "id": "r1", "success": false, "data": "Method nope not found"})
    );
    let exit = peer
        .wait_for_json(|v| v["event"] == "exit", TIMEOUT)
        .unwrap();
    assert_eq!(exit["received"], 2);
    assert!(peer.wait_exit(TIMEOUT).unwrap().success());
}
