//! Fault injection end to end (issue 13): real `redpepper-manager`, `redpepper-agent`
//! and `redpepper-ctl` processes and real RabbitMQ, nginx and tinyproxy instances,
//! killed (`kill -9`) or frozen (SIGSTOP) while a call or a command is in flight. Each
//! test asserts the exact outcome the caller sees, that no call hangs (every wait is
//! bounded by a generous timeout that fails the test) and that nothing is lost.
//!
//! A call is held in flight by freezing its agent (SIGSTOP) before it is sent: the
//! request waits, unanswered, in the agent's socket, while the test kills what is in
//! between. A command is held running by a shell loop waiting for a file the test
//! creates, so "the command finished while the manager was away" is an event, not a
//! sleep. Frozen processes are continued when their guard drops
//! ([`redpepper_tests::Paused`]), killed with their `Proc`.
//!
//! # Layout
//! - this file: the fleet every scenario starts from, calls held in flight, commands
//!   held running.
//! - `manager_kill`: kill -9 the manager mid-command, restart it on the same ports.
//! - `broker_kill`: kill -9 RabbitMQ mid-call (AMQP agent).
//! - `nginx_kill`: kill -9 nginx mid-call (WebSocket agent behind it).
//! - `proxy_kill`: kill -9 tinyproxy mid-call (TLS agent through HTTP CONNECT).
//! - `sigstop`: SIGSTOP/SIGCONT an agent, then the manager.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker_kill;
mod manager_kill;
mod nginx_kill;
mod proxy_kill;
mod sigstop;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redpepper_tests::fleet::{http, Answer, Fleet, FleetBuilder, ManagerProc, ADMIN_TOKEN};
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{Proc, TIMEOUT};

use crate::support::admin::ctl_cmd;

/// A fleet knowing `ids`, admin API on, keepalive 1 s / 1 s on both sides (a frozen or
/// vanished peer is noticed within about 2 s), agents logging JSON.
pub fn builder(ids: &[&str]) -> FleetBuilder {
    Fleet::builder()
        .agents(ids)
        .admin()
        .ping_interval(1)
        .extra("ping_timeout: 1\n")
        .agent_defaults("ping_interval: 1\nping_timeout: 1\n")
        .agent_json_logs()
}

/// `POST /v1/agents/{id}/calls` `echo` sent from a thread: what the caller gets back.
pub struct PendingCall {
    answer: mpsc::Receiver<Answer>,
    what: String,
}

impl PendingCall {
    /// Call `echo` on agent `id` of `m` (timeout 30 s) from a thread, and wait until
    /// the manager has the call in flight (`calls_in_flight` of the agent is 1).
    pub fn start(m: &ManagerProc, id: &str) -> PendingCall {
        let (tx, answer) = mpsc::channel();
        let admin = m.admin();
        let path = format!("/v1/agents/{id}/calls");
        std::thread::spawn(move || {
            let body = json!({"method": "echo", "args": ["in flight"], "timeout": 30});
            let _ = tx.send(http(admin, "POST", &path, Some(ADMIN_TOKEN), Some(&body)));
        });
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let agent = m.get(&format!("/v1/agents/{id}")).json();
            if agent["calls_in_flight"] == 1 {
                break;
            }
            if let Ok(a) = answer.try_recv() {
                panic!(
                    "the call ended before it was seen in flight: {} {}",
                    a.status, a.body
                );
            }
            assert!(
                Instant::now() < deadline,
                "the call never got in flight: {agent}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PendingCall {
            answer,
            what: format!("echo on {id}"),
        }
    }

    /// The answer: it must come within [`TIMEOUT`] (the call's own timeout is 30 s,
    /// so an answer within it is not a timeout answer).
    pub fn answer(self) -> (u16, Value) {
        let a = self
            .answer
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("the call {} hung (no answer: {e})", self.what));
        (a.status, a.json())
    }
}

/// Assert the caller of a call in flight got `502 connection_lost`, the error naming
/// the agent and a cause starting with one of `causes`.
pub fn assert_connection_lost(id: &str, causes: &[&str], (status, body): (u16, Value)) {
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "connection_lost", "{body}");
    let prefix = format!("agent {id}: session closed before the response: ");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        causes
            .iter()
            .any(|cause| error.starts_with(&format!("{prefix}{cause}"))),
        "want {prefix}{causes:?}…: {body}"
    );
}

/// How a killed TCP peer shows in the error: the manager read its FIN, or the kernel
/// answered a reset (which of the two depends on what was in flight).
pub const CONNECTION_DROPPED: &[&str] = &["connection closed by peer", "transport: reading from "];

/// The shape of a service kill mid-call: freeze agent `a1`, start a call, `stop` the
/// service in between (the caller gets `connection_lost` at once), let the agent go on
/// (it notices), `restart` the service: the agent is back after its session line
/// `line` and a new call succeeds.
pub fn kill_mid_call<S>(
    m: &ManagerProc,
    agent: &Proc,
    line: usize,
    service: &mut S,
    stop: fn(&mut S),
    restart: fn(&mut S),
) {
    let paused = agent.pause();
    let call = PendingCall::start(m, "a1");
    let mark = agent.line_count();
    stop(service);
    assert_connection_lost("a1", CONNECTION_DROPPED, call.answer());
    paused.resume();
    agent_logged(agent, mark, "disconnected from manager");
    restart(service);
    m.connected("a1", line + 1);
    call_succeeds(m, "a1");
}

/// A new call to `id` succeeds.
pub fn call_succeeds(m: &ManagerProc, id: &str) {
    let a = m.post(
        &format!("/v1/agents/{id}/calls"),
        &json!({"method": "echo", "args": ["after"], "timeout": 30}),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["data"]["args"], json!(["after"]), "{body}");
}

/// Wait (bounded) for the agent's next JSON log line with `message` at line `from` or
/// later; its index and the line.
pub fn agent_logged(agent: &Proc, from: usize, message: &str) -> (usize, Value) {
    redpepper_tests::fleet::json_after_at(agent, from, message, |v| v["message"] == message)
}

/// A `command.Run` command that writes its shell's pid to `DIR/NAME.pid`, waits until
/// `DIR/NAME.go` exists, then prints `done NAME`: the test decides when it ends.
pub struct HeldCommand {
    pid_file: PathBuf,
    go_file: PathBuf,
    /// The `command` kwarg.
    pub command: String,
    /// What it prints at its end.
    pub output: String,
}

impl HeldCommand {
    /// The command, with its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> HeldCommand {
        let pid_file = dir.join(format!("{name}.pid"));
        let go_file = dir.join(format!("{name}.go"));
        let output = format!("done {name}");
        let command = format!(
            "echo $$ > {}; until [ -e {} ]; do sleep 0.05; done; echo {output}",
            pid_file.display(),
            go_file.display()
        );
        HeldCommand {
            pid_file,
            go_file,
            command,
            output,
        }
    }

    /// Start it on `agent` with `redpepper-ctl run --json`; returns ctl's process and
    /// the command id once the command is running.
    pub fn run_with_ctl(&self, f: &Fleet, agent: &str) -> (Proc, String) {
        let command = format!("command={}", self.command);
        let run = Proc::spawn(
            "ctl-run",
            ctl_cmd(f, &["run", agent, "command.Run", "-k", &command, "--json"]),
        );
        let started = run
            .wait_for_json(|v| v["event"] == "progress" && v["current"] == 0, TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let id = started["command_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.pid();
        (run, id)
    }

    /// The running shell's pid (waits until it wrote it).
    pub fn pid(&self) -> u32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&self.pid_file).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "the command never started: no {}",
                self.pid_file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Let it end, and wait until the agent has reaped it: the agent has the result
    /// from then on.
    pub fn finish(&self) {
        let pid = self.pid();
        std::fs::write(&self.go_file, "")
            .unwrap_or_else(|e| panic!("write {}: {e}", self.go_file.display()));
        redpepper_tests::wait_reaped(pid, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    }
}
