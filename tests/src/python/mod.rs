//! The real RedPepper 0.3.4 as a test peer: config writers for its manager and
//! agent, an `agents.yml` writer, and launchers that wait until each is ready.
//!
//! - [`PyManager::start`] runs `tests/python/drive_manager.py` (the Python
//!   `Manager` class in-process, driven over stdin/stdout JSON lines) and waits
//!   for its `{"event": "listening", "port": P}` line: it binds port 0, so there
//!   is no port race. [`PyManager::command`] runs an operation on an agent.
//! - [`PyManager::start_cli`] runs the `redpepper-manager` command itself; it
//!   logs nothing once its agent server listens, so readiness is the port
//!   appearing in `/proc/net/tcp`.
//! - [`PyAgent::start`] runs `python -m redpepper.agent -l DEBUG`;
//!   [`PyAgent::wait_connected`] waits for the line it logs once the manager's
//!   hello was accepted, [`HELLO_ACCEPTED`].
//!
//! Both Python programs log to stderr as `LEVEL    logger.name   message`.
//! Everything runs with the manager's data directory as working directory:
//! RedPepper's `agents.yml` cache checks the file's timestamp relative to it.

use std::ops::Deref;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::net::{free_port, wait_for_listen};
use crate::paths::{python, python_script};
use crate::process::Proc;
use crate::TIMEOUT;

mod agents;
mod config;

pub use agents::{
    agents_yml, agents_yml_entries, sha256_hex, write_agents_yml, yaml_str, AgentEntry,
};
pub use config::{PyAgentConfig, PyManagerConfig};

/// What the Python agent logs at DEBUG once the manager accepted its hello:
/// `Checking manager hello message with version 0.3.4`.
pub const HELLO_ACCEPTED: &str = "Checking manager hello message with version";
/// What the Python agent logs (INFO) once TLS is up, before its hello.
pub const AGENT_TLS_CONNECTED: &str = "Connected to manager at";
/// What the Python manager logs (INFO) when an agent passed authentication:
/// `Auth from 127.0.0.1 succeeded for ID`.
pub const MANAGER_AUTH_OK: &str = "succeeded for";
/// What the Python manager logs (ERROR) when authentication failed:
/// `Auth from 127.0.0.1 failed for ID`.
pub const MANAGER_AUTH_FAILED: &str = "failed for";

/// A command for the venv's Python with unbuffered output.
pub fn python_command() -> Command {
    let mut cmd = Command::new(python());
    cmd.env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Starts `tests/python/raw_peer.py` against `127.0.0.1:port`, verifying the
/// manager with `ca_file`, with further arguments `args` (see the script's
/// docs: `--id`, `--secret`, `--send JSON`, `--send-raw HEX`, `--coalesce`,
/// `--no-hello`, `--recv N`, `--timeout S`, ...). It prints one JSON event per
/// line: `connected`, `sent`, `received` (with `message`), `closed`, `exit`.
pub fn raw_peer(port: u16, ca_file: &Path, args: &[&str]) -> Proc {
    let mut cmd = python_command();
    cmd.arg(python_script("raw_peer.py"))
        .args(["--port", &port.to_string(), "--ca"])
        .arg(ca_file)
        .args(args);
    Proc::spawn("raw-peer", cmd)
}

/// A running Python RedPepper manager. Dereferences to its [`Proc`].
#[derive(Debug)]
pub struct PyManager {
    proc: Proc,
    port: u16,
    driven: bool,
    next_tag: AtomicU64,
}

impl Deref for PyManager {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl PyManager {
    /// Writes `config` and starts the manager driver (`drive_manager.py --stdin`,
    /// DEBUG logging) in the data directory; returns once it listens.
    ///
    /// # Panics
    ///
    /// When it does not come up within [`TIMEOUT`].
    pub fn start(config: &PyManagerConfig) -> PyManager {
        let config_file = config.write();
        let mut cmd = python_command();
        cmd.arg(python_script("drive_manager.py"))
            .arg("--config-file")
            .arg(&config_file)
            .args(["-l", "DEBUG", "--stdin"])
            .current_dir(&config.data_dir);
        let proc = Proc::spawn("py-manager", cmd);
        let listening = proc
            .wait_for_json(|v| v["event"] == "listening", TIMEOUT)
            .unwrap_or_else(|e| panic!("Python manager did not start listening: {e}"));
        let port = listening["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("bad listening event: {listening}"));
        PyManager {
            proc,
            port,
            driven: true,
            next_tag: AtomicU64::new(1),
        }
    }

    /// Writes `config` and starts the `redpepper-manager` command
    /// (`python -m redpepper.manager -l DEBUG`) in the data directory; returns
    /// once its port listens. A `bind_port` of 0 is replaced by [`free_port`].
    /// Such a manager cannot be sent commands ([`PyManager::command`] panics).
    ///
    /// # Panics
    ///
    /// When it does not come up within [`TIMEOUT`].
    pub fn start_cli(config: &PyManagerConfig) -> PyManager {
        let mut config = config.clone();
        if config.bind_port == 0 {
            config.bind_port = free_port();
        }
        let config_file = config.write();
        let mut cmd = python_command();
        cmd.args(["-m", "redpepper.manager", "--config-file"])
            .arg(&config_file)
            .args(["-l", "DEBUG"])
            .current_dir(&config.data_dir);
        let proc = Proc::spawn("py-manager-cli", cmd);
        proc.wait_for_line(|l| l.contains("Starting server on"), TIMEOUT)
            .unwrap_or_else(|e| panic!("Python manager did not start: {e}"));
        if let Err(e) = wait_for_listen(config.bind_port, TIMEOUT) {
            panic!("{e}; Python manager output:\n{}", proc.tail(50));
        }
        PyManager {
            proc,
            port: config.bind_port,
            driven: false,
            next_tag: AtomicU64::new(1),
        }
    }

    /// The port its agent server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The underlying process.
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Gives up the wrapper, keeping the process.
    pub fn into_proc(self) -> Proc {
        self.proc
    }

    /// Waits until the driver reports `agent` connected and ready for commands.
    ///
    /// # Errors
    ///
    /// When it does not connect within `timeout`.
    pub fn wait_agent(&self, agent: &str, timeout: Duration) -> Result<(), String> {
        let op =
            self.op(json!({"op": "wait_agent", "agent": agent, "timeout": timeout.as_secs_f64()}));
        self.answer(&op, timeout + TIMEOUT)
            .and_then(|v| match v["event"].as_str() {
                Some("connected") => Ok(()),
                _ => Err(format!("waiting for agent {agent}: {v}")),
            })
    }

    /// Runs operation `cmdtype` (such as `echo.Echo`) on `agent` with keyword
    /// arguments `kwargs` (a JSON object) and waits for its `result` event:
    /// `{"event": "result", "id", "success", "changed", "output", ...}`.
    ///
    /// # Errors
    ///
    /// When the driver reports an error (agent not connected within the
    /// timeout, no result) or says nothing within `timeout` plus [`TIMEOUT`].
    pub fn command(
        &self,
        agent: &str,
        cmdtype: &str,
        kwargs: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let op = self.op(json!({
            "op": "command", "agent": agent, "cmdtype": cmdtype, "args": [], "kwargs": kwargs,
            "timeout": timeout.as_secs_f64(),
        }));
        loop {
            let v = self.answer(&op, timeout + TIMEOUT)?;
            match v["event"].as_str() {
                Some("result") => return Ok(v),
                Some("command_sent") => continue,
                _ => return Err(format!("command {cmdtype} on {agent}: {v}")),
            }
        }
    }

    /// Sends the agent a raw Request (`method`, `args`, `kwargs`) and waits for
    /// `{"event": "rpc_result", "ok": bool, "data": ...}`; a failed call has
    /// `ok: false` and the error string as `data`.
    ///
    /// # Errors
    ///
    /// As [`PyManager::command`].
    pub fn rpc(
        &self,
        agent: &str,
        method: &str,
        args: Value,
        kwargs: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let op = self.op(json!({
            "op": "rpc", "agent": agent, "method": method, "args": args, "kwargs": kwargs,
            "timeout": timeout.as_secs_f64(),
        }));
        let v = self.answer(&op, timeout + TIMEOUT)?;
        match v["event"].as_str() {
            Some("rpc_result") => Ok(v),
            _ => Err(format!("rpc {method} on {agent}: {v}")),
        }
    }

    /// The ids of the agents connected now.
    ///
    /// # Errors
    ///
    /// When the driver does not answer.
    pub fn connected_agents(&self) -> Result<Vec<String>, String> {
        let op = self.op(json!({"op": "agents"}));
        let v = self.answer(&op, TIMEOUT)?;
        Ok(v["agents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Waits for the next event line satisfying `pred`, such as a `bus` event
    /// of type `auth_failure`. Searches after the previous `wait_event` (or
    /// [`Proc::wait_for_line`]) match; the answers of [`PyManager::command`]
    /// and friends do not move that position.
    ///
    /// # Errors
    ///
    /// As [`Proc::wait_for_json`].
    pub fn wait_event(
        &self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, String> {
        self.proc.wait_for_json(pred, timeout)
    }

    /// Calls the manager's `shutdown()` (Bye "server shutting down" to every
    /// agent) and waits for the driver to exit.
    ///
    /// # Errors
    ///
    /// When it does not exit within [`TIMEOUT`].
    pub fn shutdown(&self) -> Result<(), String> {
        self.require_driver();
        self.proc
            .send_line(&json!({"op": "shutdown"}).to_string())?;
        self.proc
            .wait_for_json(|v| v["event"] == "shutdown", TIMEOUT)?;
        self.proc.wait_exit(TIMEOUT).map(|_| ())
    }

    fn require_driver(&self) {
        assert!(self.driven, "this manager runs the redpepper-manager command: start it with PyManager::start to drive it");
    }

    /// Sends an op with a fresh tag; returns the tag and the output mark from
    /// before sending (its answers come after it).
    fn op(&self, mut op: Value) -> Op {
        self.require_driver();
        let tag = format!("t{}", self.next_tag.fetch_add(1, Ordering::Relaxed));
        op["tag"] = Value::String(tag.clone());
        let mark = self.proc.line_count();
        if let Err(e) = self.proc.send_line(&op.to_string()) {
            panic!("{e}; output:\n{}", self.proc.tail(50));
        }
        Op {
            tag,
            next: std::cell::Cell::new(mark),
        }
    }

    /// The next event answering `op`. Does not move the position that
    /// [`PyManager::wait_event`] and [`Proc::wait_for_line`] search from.
    fn answer(&self, op: &Op, timeout: Duration) -> Result<Value, String> {
        let tag = op.tag.as_str();
        let (index, line) =
            self.proc
                .wait_for_line_after(op.next.get(), |l| tagged(l, tag), timeout)?;
        op.next.set(index + 1);
        serde_json::from_str(&line).map_err(|e| format!("{}: {e}", self.proc.name()))
    }
}

/// An op sent to the driver: its tag and where to look for its next answer.
struct Op {
    tag: String,
    next: std::cell::Cell<usize>,
}

/// Whether an output line is a JSON event with `"tag": tag`.
fn tagged(line: &str, tag: &str) -> bool {
    line.starts_with('{') && serde_json::from_str::<Value>(line).is_ok_and(|v| v["tag"] == tag)
}

/// A running Python RedPepper agent. Dereferences to its [`Proc`].
#[derive(Debug)]
pub struct PyAgent {
    proc: Proc,
}

impl Deref for PyAgent {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl PyAgent {
    /// Writes `config` and starts `python -m redpepper.agent -l DEBUG` in its
    /// directory. It returns at once; see [`PyAgent::wait_connected`].
    pub fn start(config: &PyAgentConfig) -> PyAgent {
        let config_file = config.write();
        let mut cmd = python_command();
        cmd.args(["-m", "redpepper.agent", "--config-file"])
            .arg(&config_file)
            .args(["-l", "DEBUG"])
            .current_dir(&config.dir);
        PyAgent {
            proc: Proc::spawn(&format!("py-agent-{}", config.agent_id), cmd),
        }
    }

    /// Waits until the agent logged [`HELLO_ACCEPTED`] (the manager answered
    /// its hello with ManagerHello); returns that line.
    ///
    /// # Errors
    ///
    /// When it does not within `timeout`.
    pub fn wait_connected(&self, timeout: Duration) -> Result<String, String> {
        self.proc
            .wait_for_line(|l| l.contains(HELLO_ACCEPTED), timeout)
    }

    /// The underlying process.
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Gives up the wrapper, keeping the process.
    pub fn into_proc(self) -> Proc {
        self.proc
    }
}

#[cfg(test)]
mod tests;
