//! Command results are never lost, end to end: our `redpepper-agent` reaches our
//! `redpepper-manager` through a [`Relay`] that cuts the connection mid-command.
//!
//! - A cut mid-command (and the agent kept away until the command has finished): the
//!   run still returns the command's result, sent again by the agent's outbox on its
//!   next session.
//! - The agent kept away past `commands.grace`: the run ends `connection_lost`, saying
//!   the agent did not come back; the result the agent brings later is dropped by the
//!   manager (logged), harmlessly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use redpepper_tests::fleet::{json_after, Fleet};
use redpepper_tests::relay::Relay;
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{Proc, TIMEOUT};

/// A manager with the admin API and agent `r1` (JSON logs, pinging every second)
/// dialling it through a relay; `manager_extra` is more manager YAML.
fn through_relay(manager_extra: &str) -> (Fleet, Relay, Proc) {
    let mut fleet = Fleet::builder()
        .agent("r1")
        .admin()
        .extra(manager_extra)
        .agent_defaults("ping_interval: 1\n")
        .agent_json_logs()
        .build();
    fleet.spawn_manager();
    let relay = Relay::start(fleet.manager().tls_addr.unwrap());
    let agent = fleet.spawn_agent_with("r1", &format!("manager_port: {}\n", relay.addr().port()));
    fleet.manager().connected("r1", 0);
    (fleet, relay, agent)
}

/// Wait until the command under test created `path` (its way of saying where it is).
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + TIMEOUT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `POST /v1/runs` of `command.Run` `command` on `r1`, on a thread; its one result.
fn run_in_background(fleet: &Fleet, command: String) -> std::thread::JoinHandle<Value> {
    let admin = fleet.manager().admin();
    std::thread::spawn(move || {
        let body = json!({"target": "r1", "operation": "command.Run",
                          "kwargs": {"command": command}, "timeout": 120});
        let answer = redpepper_tests::fleet::http(
            admin,
            "POST",
            "/v1/runs",
            Some(redpepper_tests::fleet::ADMIN_TOKEN),
            Some(&body),
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["results"][0].clone()
    })
}

#[test]
fn a_cut_mid_command_still_delivers_its_result() {
    let (fleet, relay, agent) = through_relay("");
    let started = fleet.path("started");
    let finished = fleet.path("finished");
    let command = format!(
        "touch {}; sleep 3; echo done; touch {}",
        started.display(),
        finished.display()
    );
    let run = run_in_background(&fleet, command);
    wait_for_file(&started);
    // Cut, and keep the agent away until the command has finished: its result is
    // made while no session exists.
    relay.refuse(true);
    assert!(relay.cut() >= 1, "the agent's connection was open");
    json_after(&agent, 0, "the agent to notice the cut", |v| {
        v["message"] == "disconnected from manager"
    });
    wait_for_file(&finished);
    relay.refuse(false);
    let result = run.join().unwrap();
    assert_eq!(result["event"], "result", "{result}");
    assert_eq!(result["success"], true, "{result}");
    assert!(
        result["output"].as_str().unwrap().contains("done"),
        "{result}"
    );
    assert!(
        relay.relayed() >= 2,
        "the agent came back through the relay"
    );
}

#[test]
fn an_agent_away_past_the_grace_loses_the_command() {
    let (fleet, relay, agent) = through_relay("commands:\n  grace: 2\n");
    let started = fleet.path("started");
    let command = format!("touch {}; sleep 1; echo done", started.display());
    let run = run_in_background(&fleet, command);
    wait_for_file(&started);
    relay.refuse(true);
    assert!(relay.cut() >= 1);
    json_after(&agent, 0, "the agent to notice the cut", |v| {
        v["message"] == "disconnected from manager"
    });
    let result = run.join().unwrap();
    assert_eq!(result["event"], "result", "{result}");
    assert_eq!(result["success"], false, "{result}");
    assert_eq!(result["code"], "connection_lost", "{result}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("did not come back"),
        "{result}"
    );
    // The agent comes back with the result: the manager drops it, and says so.
    relay.refuse(false);
    json_after(
        &fleet.manager().proc,
        0,
        "the late result to be dropped",
        |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("result for a command not followed"))
        },
    );
}

/// The first scenario: `seq 1 300000` (about 2 MB of output) returns at once,
/// cut to fit `max_message_size` with the cut marked, head and tail kept.
#[test]
fn a_result_larger_than_max_message_size_arrives_cut() {
    let (fleet, _relay, _agent) = through_relay("");
    let started = Instant::now();
    let result = run_in_background(&fleet, "seq 1 300000".to_owned())
        .join()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(result["event"], "result", "{result}");
    assert_eq!(result["success"], true, "{result}");
    let output = result["output"].as_str().unwrap();
    assert!(output.contains("bytes omitted ..."), "{}", &output[..200]);
    assert!(output.contains("\n1\n2\n3\n"), "the head is kept");
    assert!(output.trim_end().ends_with("300000"), "the tail is kept");
    assert!(output.len() <= 1024 * 1024, "{}", output.len());
    eprintln!(
        "seq 1 300000: {} bytes of output back in {took:?}",
        output.len()
    );
}
