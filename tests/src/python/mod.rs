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

use std::fmt::Write as _;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::certs::TestCerts;
use crate::net::{free_port, wait_for_listen};
use crate::paths::{python, python_script};
use crate::process::Proc;
use crate::TIMEOUT;

mod agents;

pub use agents::{
    agents_yml, agents_yml_entries, sha256_hex, write_agents_yml, yaml_str, AgentEntry,
};

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

fn yaml_path(p: &Path) -> String {
    yaml_str(&p.to_string_lossy())
}

/// Settings of a Python manager; [`PyManagerConfig::write`] makes `manager.yml`.
///
/// The API server, which RedPepper 0.3.4 cannot turn off, is parked on
/// `127.0.0.1:0` with no logins, reusing the manager certificate.
#[derive(Debug, Clone)]
pub struct PyManagerConfig {
    /// Directory for `manager.yml`, the command log and the data directory.
    pub dir: PathBuf,
    /// `bind_host`; default `127.0.0.1`.
    pub bind_host: String,
    /// `bind_port`; default 0 (the driver reports the real port).
    pub bind_port: u16,
    /// `tls_cert_file`.
    pub tls_cert_file: PathBuf,
    /// `tls_key_file` (mode 0600).
    pub tls_key_file: PathBuf,
    /// `tls_ca_file`, to verify agent certificates; default none.
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_verify_mode`: `none` (default), `optional` or `required`.
    /// With `none`, `tls_check_hostname` is written as false (Python's ssl
    /// refuses `CERT_NONE` with hostname checking on).
    pub tls_verify_mode: String,
    /// `ping_interval` in seconds; `None` keeps RedPepper's default (30).
    pub ping_interval: Option<u64>,
    /// `ping_timeout` in seconds; `None` keeps RedPepper's default (5).
    pub ping_timeout: Option<u64>,
    /// `max_message_size` in bytes; `None` keeps RedPepper's default (1 MiB).
    pub max_message_size: Option<u64>,
    /// `data_base_dir` (holds `agents.yml`); default `<dir>/data`.
    pub data_dir: PathBuf,
    /// `command_log_file`; default `<dir>/commands.sqlite`.
    pub command_log_file: PathBuf,
    /// Further `key: value` YAML lines, written as given.
    pub extra: Vec<String>,
}

impl PyManagerConfig {
    /// Defaults for a manager in `dir` using the manager certificate of `certs`.
    pub fn new(dir: &Path, certs: &TestCerts) -> Self {
        PyManagerConfig {
            dir: dir.to_path_buf(),
            bind_host: "127.0.0.1".to_string(),
            bind_port: 0,
            tls_cert_file: certs.manager_cert.clone(),
            tls_key_file: certs.manager_key.clone(),
            tls_ca_file: None,
            tls_verify_mode: "none".to_string(),
            ping_interval: None,
            ping_timeout: None,
            max_message_size: None,
            data_dir: dir.join("data"),
            command_log_file: dir.join("commands.sqlite"),
            extra: Vec::new(),
        }
    }

    /// The `manager.yml` text.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(y, "{k}: {v}");
        };
        line("bind_host", yaml_str(&self.bind_host));
        line("bind_port", self.bind_port.to_string());
        line("tls_cert_file", yaml_path(&self.tls_cert_file));
        line("tls_key_file", yaml_path(&self.tls_key_file));
        if let Some(ca) = &self.tls_ca_file {
            line("tls_ca_file", yaml_path(ca));
        }
        line("tls_verify_mode", yaml_str(&self.tls_verify_mode));
        line("tls_check_hostname", "false".to_string());
        if let Some(v) = self.ping_interval {
            line("ping_interval", v.to_string());
        }
        if let Some(v) = self.ping_timeout {
            line("ping_timeout", v.to_string());
        }
        if let Some(v) = self.max_message_size {
            line("max_message_size", v.to_string());
        }
        line("data_base_dir", yaml_path(&self.data_dir));
        line("command_log_file", yaml_path(&self.command_log_file));
        line("api_bind_host", yaml_str("127.0.0.1"));
        line("api_bind_port", "0".to_string());
        line("api_logins", "[]".to_string());
        line("api_tls_cert_file", yaml_path(&self.tls_cert_file));
        line("api_tls_key_file", yaml_path(&self.tls_key_file));
        line(
            "api_session_secret_key",
            yaml_str("redpepper-tests-session-secret"),
        );
        for extra in &self.extra {
            let _ = writeln!(y, "{extra}");
        }
        y
    }

    /// Creates the directories and writes `<dir>/manager.yml`; writes an empty
    /// `agents.yml` unless one exists. Returns the config file's path.
    ///
    /// # Panics
    ///
    /// On I/O errors.
    pub fn write(&self) -> PathBuf {
        fs::create_dir_all(&self.data_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.data_dir.display()));
        let agents = self.data_dir.join("agents.yml");
        if !agents.exists() {
            write_agents_yml(&agents, &[]);
        }
        let path = self.dir.join("manager.yml");
        fs::write(&path, self.to_yaml())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Writes `<data_dir>/agents.yml` with the given entries.
    ///
    /// # Panics
    ///
    /// On I/O errors.
    pub fn write_agents(&self, entries: &[(&str, &str, &[&str])]) {
        fs::create_dir_all(&self.data_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.data_dir.display()));
        write_agents_yml(&self.data_dir.join("agents.yml"), entries);
    }
}

/// Settings of a Python agent; [`PyAgentConfig::write`] makes `agent.yml`.
#[derive(Debug, Clone)]
pub struct PyAgentConfig {
    /// Directory for `agent.yml` and the operation module cache.
    pub dir: PathBuf,
    /// `manager_host`; default `localhost` (the manager certificate's name).
    pub manager_host: String,
    /// `manager_port`.
    pub manager_port: u16,
    /// `agent_id`.
    pub agent_id: String,
    /// `agent_secret`.
    pub agent_secret: String,
    /// `tls_ca_file`: the CA the manager certificate is checked against.
    pub tls_ca_file: PathBuf,
    /// `tls_cert_file`: the agent's client certificate.
    pub tls_cert_file: PathBuf,
    /// `tls_key_file` (mode 0600).
    pub tls_key_file: PathBuf,
    /// `tls_check_hostname`; default true.
    pub tls_check_hostname: bool,
    /// `tls_verify_mode`; default `required`.
    pub tls_verify_mode: String,
    /// `ping_interval` in seconds; `None` keeps RedPepper's default (30).
    pub ping_interval: Option<u64>,
    /// `ping_timeout` in seconds; `None` keeps RedPepper's default (5).
    pub ping_timeout: Option<u64>,
    /// `operation_modules_cache_dir`; default `<dir>/operations` (created by `write`).
    pub operation_modules_cache_dir: PathBuf,
    /// Further `key: value` YAML lines, written as given.
    pub extra: Vec<String>,
}

impl PyAgentConfig {
    /// Defaults for agent `agent_id` in `dir`, dialing `localhost:manager_port`,
    /// with the agent certificate of `certs` and its CA.
    pub fn new(
        dir: &Path,
        certs: &TestCerts,
        manager_port: u16,
        agent_id: &str,
        agent_secret: &str,
    ) -> Self {
        PyAgentConfig {
            dir: dir.to_path_buf(),
            manager_host: "localhost".to_string(),
            manager_port,
            agent_id: agent_id.to_string(),
            agent_secret: agent_secret.to_string(),
            tls_ca_file: certs.ca_cert.clone(),
            tls_cert_file: certs.agent_cert.clone(),
            tls_key_file: certs.agent_key.clone(),
            tls_check_hostname: true,
            tls_verify_mode: "required".to_string(),
            ping_interval: None,
            ping_timeout: None,
            operation_modules_cache_dir: dir.join("operations"),
            extra: Vec::new(),
        }
    }

    /// The `agent.yml` text.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(y, "{k}: {v}");
        };
        line("manager_host", yaml_str(&self.manager_host));
        line("manager_port", self.manager_port.to_string());
        line("agent_id", yaml_str(&self.agent_id));
        line("agent_secret", yaml_str(&self.agent_secret));
        line("tls_ca_file", yaml_path(&self.tls_ca_file));
        line("tls_cert_file", yaml_path(&self.tls_cert_file));
        line("tls_key_file", yaml_path(&self.tls_key_file));
        line("tls_check_hostname", self.tls_check_hostname.to_string());
        line("tls_verify_mode", yaml_str(&self.tls_verify_mode));
        if let Some(v) = self.ping_interval {
            line("ping_interval", v.to_string());
        }
        if let Some(v) = self.ping_timeout {
            line("ping_timeout", v.to_string());
        }
        line(
            "operation_modules_cache_dir",
            yaml_path(&self.operation_modules_cache_dir),
        );
        for extra in &self.extra {
            let _ = writeln!(y, "{extra}");
        }
        y
    }

    /// Creates the directories and writes `<dir>/agent.yml`; returns its path.
    ///
    /// # Panics
    ///
    /// On I/O errors.
    pub fn write(&self) -> PathBuf {
        let cache = &self.operation_modules_cache_dir;
        fs::create_dir_all(cache).unwrap_or_else(|e| panic!("create {}: {e}", cache.display()));
        let path = self.dir.join("agent.yml");
        fs::write(&path, self.to_yaml())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

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
