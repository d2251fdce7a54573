//! Silent peers, detected by keepalive (1 s interval, 1 s timeout on both sides):
//!
//! - SIGSTOP an agent: the manager ends its session with a ping timeout (a
//!   `disconnected` reason `ping timeout: ...`); a call meanwhile is `404
//!   not_connected`; SIGCONT: the agent finds its session gone, reconnects, and calls
//!   succeed again.
//! - SIGSTOP the manager while a command runs: the agent ends the session with a ping
//!   timeout of its own and keeps retrying (each dial to the frozen manager fails with
//!   "no TLS connection within 10.0s"); the command ends meanwhile. SIGCONT: the agent
//!   is back and the run completes with the command's result (kept by the agent and
//!   delivered on its new session; the manager kept the command pending over the
//!   reconnect).

use redpepper_tests::fleet::json_after_at;
use redpepper_tests::serde_json::Value;
use redpepper_tests::TIMEOUT;

use super::{agent_logged, builder, call_succeeds, HeldCommand};

#[test]
fn sigstop_an_agent_then_sigcont() {
    let mut f = builder(&["a1"]).build();
    f.spawn_manager();
    let agent = f.spawn_agent("a1");
    let m = f.manager();
    let (line, _) = m.connected("a1", 0);

    let paused = agent.pause();
    let (gone, v) = json_after_at(
        &m.proc,
        line + 1,
        "the frozen agent's session to end",
        |v| v["message"] == "agent disconnected" && v["agent"] == "a1",
    );
    assert_eq!(v["reason"], "ping timeout: no pong within 1.0s", "{v}");
    let a = m.get("/v1/agents/a1");
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (404, "not_connected".into()),
        "{}",
        a.body
    );

    paused.resume();
    m.connected("a1", gone + 1);
    call_succeeds(m, "a1");
}

#[test]
fn sigstop_the_manager_mid_command_then_sigcont() {
    let mut f = builder(&["a1"]).build();
    f.spawn_manager();
    let agent = f.spawn_agent("a1");
    let (line, _) = f.manager().connected("a1", 0);

    let held = HeldCommand::new(f.dir.path(), "frozen");
    let (run, _) = held.run_with_ctl(&f, "a1");

    let mark = agent.line_count();
    let paused = f.manager().proc.pause();
    let (i, v) = agent_logged(&agent, mark, "disconnected from manager");
    assert_eq!(v["reason"], "ping timeout: no pong within 1.0s", "{v}");
    // It keeps retrying: the kernel accepts, the frozen manager never handshakes.
    let (_, v) = agent_logged(&agent, i + 1, "cannot connect to manager");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("no TLS connection within 10.0s")),
        "{v}"
    );
    // The command ends while the manager is frozen: the agent holds its result.
    held.finish();

    paused.resume();
    f.manager().connected("a1", line + 1);
    let status = run.wait_exit(TIMEOUT * 2).unwrap();
    let lines: Vec<Value> = run
        .stdout_lines()
        .iter()
        .filter_map(|l| redpepper_tests::serde_json::from_str(l).ok())
        .collect();
    let result = lines
        .iter()
        .find(|v| v["event"] == "result")
        .unwrap_or_else(|| panic!("no result ({status}): {}", run.tail(40)));
    assert_eq!(result["success"], true, "{}", run.tail(20));
    assert!(
        result["output"]
            .as_str()
            .is_some_and(|o| o.contains(&held.output)),
        "{result}"
    );
    assert_eq!(status.code(), Some(0), "{}", run.tail(20));
    call_succeeds(f.manager(), "a1");
}
