//! [`Fleet`]: one builder for a manager-and-agents world, shared by every end-to-end
//! test that starts our programs: a scratch directory with certificates, `agents.yml`,
//! `manager.yml` with the sections a test asks for, an `agent-ID.yml` per agent, and
//! launchers for the `redpepper-manager` and `redpepper-agent` processes.
//!
//! ```no_run
//! use redpepper_tests::fleet::Fleet;
//!
//! let mut fleet = Fleet::builder().agent("a1").admin().build();
//! fleet.spawn_manager(); // waits for its listeners and admin API
//! let agent = fleet.spawn_agent("a1"); // over TLS TCP to the manager's port
//! fleet.manager().connected("a1", 0);
//! # drop(agent);
//! ```
//!
//! A test that runs the manager in-process (the library) loads
//! [`Fleet::manager_yml`] itself; this crate depends on no redpepper crate.
//!
//! # Layout
//!
//! - this file: [`Fleet`] (the files it wrote, launchers for our programs and the
//!   Python peers' settings), [`write_tree`] (files of a RedPepper data directory).
//! - `builder.rs`: [`FleetBuilder`] (the options, writing the files), [`Entry`] (one
//!   `agents.yml` entry), [`overlay`] (YAML where a key given later wins).
//! - `cluster.rs`: several managers joined in a cluster ([`FleetBuilder::cluster`]):
//!   a `manager-NODE.yml` and pinned ports per node, [`Fleet::spawn_node`],
//!   [`Fleet::kill_node`], agents listing nodes ([`ClusterAgent`]).
//! - `manager.rs`: [`ManagerProc`], a started manager process and what it bound.
//! - `http.rs`: [`http`], a minimal HTTP/1.1 client for the admin API.
//! - `tied.rs`: [`tied::spawn_tied`], processes that die with the test process, for
//!   fixtures kept in a `static`.

mod builder;
mod cluster;
mod http;
mod manager;
pub mod tied;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use builder::{overlay, secret_of, Entry, FleetBuilder};
pub use cluster::ClusterAgent;
pub use http::{http, Answer};
pub use manager::{json_after, json_after_at, ManagerProc};
use tempfile::TempDir;

use crate::bin_command;
use crate::certs::TestCerts;
use crate::process::Proc;
use crate::python::{PyAgentConfig, PyManagerConfig};

/// The admin API token of every fleet.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-6f1c2a9b7d";

/// The proxy variables cleared for every agent process (a test sets its own).
const PROXY_VARS: [&str; 8] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// A scratch directory with certificates and the files of one manager and its agents
/// (see the module docs). Processes it spawns are killed when their [`Proc`] is
/// dropped (or with the test process, see [`FleetBuilder::tied_to_test_process`]).
pub struct Fleet {
    /// The scratch directory (kept with `REDPEPPER_TEST_KEEP=1`).
    pub dir: TempDir,
    /// The CA, manager and agent certificates.
    pub certs: TestCerts,
    /// `manager.yml`.
    pub manager_yml: PathBuf,
    /// The admin API's token file, when the admin API is on.
    pub token_file: Option<PathBuf>,
    pub(super) options: FleetBuilder,
    pub(super) manager: Option<ManagerProc>,
    nodes: Vec<cluster::Node>,
}

impl Fleet {
    /// A builder with no agents, TLS TCP settings, nothing else.
    pub fn builder() -> FleetBuilder {
        FleetBuilder::new()
    }

    /// `name` inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The manager's `data_base_dir`: `agents.yml`, and RedPepper's `groups.yml`,
    /// `data/`, `state/`, `operations/` when a test writes them ([`write_tree`]).
    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// `redpepper-manager --config-file manager.yml` (not started).
    pub fn manager_command(&self) -> Command {
        let mut cmd = bin_command("redpepper-manager");
        cmd.arg("--config-file").arg(&self.manager_yml);
        cmd
    }

    /// Start the manager process (JSON logs) and wait until every listener and the
    /// admin API (if on) are up; [`Fleet::manager`] is it from then on.
    ///
    /// # Panics
    ///
    /// When it does not get there (the message shows its output).
    pub fn spawn_manager(&mut self) -> &ManagerProc {
        let mut cmd = self.manager_command();
        cmd.args(["--log-format", "json"]);
        let proc = self.spawn("manager", cmd);
        let listeners = self.options.listeners();
        let admin = self.options.admin.is_some();
        self.manager
            .insert(ManagerProc::ready(proc, &listeners, admin))
    }

    /// The started manager.
    ///
    /// # Panics
    ///
    /// Before [`Fleet::spawn_manager`].
    pub fn manager(&self) -> &ManagerProc {
        self.manager
            .as_ref()
            .unwrap_or_else(|| panic!("the fleet's manager is not started (spawn_manager)"))
    }

    /// The YAML of agent `id` with `secret`: id, secret, the fleet's CA as
    /// `tls_ca_file`, the started manager's TLS port (if any), the builder's agent
    /// defaults, then `extra` (its top-level keys win, see [`overlay`]).
    pub fn agent_yml(&self, id: &str, secret: &str, extra: &str) -> String {
        let mut y = format!(
            "agent_id: {id}\nagent_secret: {secret}\ntls_ca_file: {}\n",
            self.certs.ca_cert.display()
        );
        if let Some(addr) = self.manager.as_ref().and_then(|m| m.tls_addr) {
            let _ = write!(
                y,
                "manager_host: {}\nmanager_port: {}\n",
                self.options.agent_host,
                addr.port()
            );
        } else {
            let _ = writeln!(y, "manager_host: {}", self.options.agent_host);
        }
        overlay(&overlay(&y, &self.options.agent_defaults), extra)
    }

    /// Write `agent-NAME.yml` with `text`; its path.
    pub fn write_agent_yml(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(&format!("agent-{name}.yml"));
        write_file(&path, text);
        path
    }

    /// Start a `redpepper-agent` labelled `name` from `config`, with no proxy
    /// variables but those of `env`.
    pub fn spawn_agent_from(&self, name: &str, config: &Path, env: &[(&str, String)]) -> Proc {
        let mut cmd = bin_command("redpepper-agent");
        cmd.arg("--config-file").arg(config).env_remove("RUST_LOG");
        if self.options.agent_json_logs {
            cmd.args(["--log-format", "json"]);
        }
        for var in PROXY_VARS {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.spawn(name, cmd)
    }

    /// Start agent `id` with its secret and the defaults ([`Fleet::agent_yml`]).
    pub fn spawn_agent(&self, id: &str) -> Proc {
        self.spawn_agent_with(id, "")
    }

    /// Start agent `id` with its secret and `extra` YAML.
    pub fn spawn_agent_with(&self, id: &str, extra: &str) -> Proc {
        let path = self.write_agent_yml(id, &self.agent_yml(id, &secret_of(id), extra));
        self.spawn_agent_from(id, &path, &[])
    }

    /// Start an agent claiming to be `id` with a wrong secret (refused, it keeps
    /// retrying at its backoff's cap), labelled `impostor`.
    pub fn spawn_impostor(&self, id: &str) -> Proc {
        let text = self.agent_yml(id, "not-the-secret", "");
        let path = self.write_agent_yml(&format!("impostor-{id}"), &text);
        self.spawn_agent_from("impostor", &path, &[])
    }

    /// A Python RedPepper manager's settings in `manager-py/`, sharing the fleet's
    /// certificates, with the fleet's `agents.yml` entries (written now).
    pub fn py_manager_config(&self) -> PyManagerConfig {
        let config = PyManagerConfig::new(&self.path("manager-py"), &self.certs);
        let secrets: Vec<String> = self
            .options
            .agents
            .iter()
            .map(|e| secret_of(&e.id))
            .collect();
        let ips: Vec<Vec<&str>> = self
            .options
            .agents
            .iter()
            .map(|e| e.allowed_ips.iter().map(String::as_str).collect())
            .collect();
        let entries: Vec<(&str, &str, &[&str])> = self
            .options
            .agents
            .iter()
            .zip(&secrets)
            .zip(&ips)
            .map(|((e, s), ips)| (e.id.as_str(), s.as_str(), &ips[..]))
            .collect();
        config.write_agents(&entries);
        config
    }

    /// A Python RedPepper agent's settings in `NAME/`, as agent `id` with `secret`,
    /// dialling the manager on `port`.
    pub fn py_agent_config(&self, name: &str, port: u16, id: &str, secret: &str) -> PyAgentConfig {
        PyAgentConfig::new(&self.path(name), &self.certs, port, id, secret)
    }

    fn spawn(&self, name: &str, cmd: Command) -> Proc {
        if self.options.tied {
            tied::spawn_tied(name, "KILL", &cmd)
        } else {
            Proc::spawn(name, cmd)
        }
    }
}

/// Write `files` (path relative to `dir`, text) under `dir`, creating folders: a
/// RedPepper data directory for our manager ([`Fleet::data_dir`]) or a Python one
/// (`PyManagerConfig::data_dir`).
///
/// # Panics
///
/// On I/O errors (the message names the file).
pub fn write_tree<S: AsRef<str>>(dir: &Path, files: &[(&str, S)]) {
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            create_dir(parent);
        }
        write_file(&path, text.as_ref());
    }
}

pub(super) fn create_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
}

pub(super) fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
