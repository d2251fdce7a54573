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
//! - this file: [`FleetBuilder`] (the options), [`Fleet`] (files and launchers),
//!   [`Entry`] (one `agents.yml` entry), [`overlay`] (YAML keys given later win).
//! - `manager.rs`: [`ManagerProc`], a started manager process and what it bound.
//! - `http.rs`: [`http`], a minimal HTTP/1.1 client for the admin API.
//! - `tied.rs`: [`tied::spawn_tied`], processes that die with the test process, for
//!   fixtures kept in a `static`.

mod http;
mod manager;
pub mod tied;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use http::{http, Answer};
pub use manager::{json_after, json_after_at, ManagerProc};
use tempfile::TempDir;

use crate::certs::TestCerts;
use crate::process::Proc;
use crate::python::{agents_yml, PyAgentConfig, PyManagerConfig};
use crate::{bin_command, scratch_dir};

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

/// Agent `id`'s secret in a fleet.
pub fn secret_of(id: &str) -> String {
    format!("secret-of-{id}")
}

/// One `agents.yml` entry: by default secret [`secret_of`], allowed from 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The agent id.
    pub id: String,
    /// `allowed_ips`.
    pub allowed_ips: Vec<String>,
    /// `amqp_user` (ours), if any.
    pub amqp_user: Option<String>,
}

impl Entry {
    /// Agent `id`, allowed from 127.0.0.1 only, no broker user.
    pub fn new(id: &str) -> Entry {
        Entry {
            id: id.into(),
            allowed_ips: vec!["127.0.0.1/32".into()],
            amqp_user: None,
        }
    }

    /// Agent `id`, pinned to broker user `id`, from loopback only (so AMQP relies on
    /// the pin).
    pub fn pinned(id: &str) -> Entry {
        Entry::new(id).amqp_user(id)
    }

    /// With `amqp_user: USER`.
    #[must_use]
    pub fn amqp_user(mut self, user: &str) -> Entry {
        self.amqp_user = Some(user.into());
        self
    }

    /// With these `allowed_ips`.
    #[must_use]
    pub fn allowed_ips(mut self, ranges: &[&str]) -> Entry {
        self.allowed_ips = ranges.iter().map(|r| (*r).to_owned()).collect();
        self
    }
}

/// What [`Fleet::builder`] collects; [`FleetBuilder::build`] writes the files.
#[derive(Debug, Clone)]
#[must_use]
pub struct FleetBuilder {
    agents: Vec<Entry>,
    tls: bool,
    transports: Option<Vec<String>>,
    websocket: Option<String>,
    amqp: Option<(String, String)>,
    admin: Option<Admin>,
    ping_interval: Option<u64>,
    hello_timeout: Option<u64>,
    extra: String,
    agent_defaults: String,
    agent_host: String,
    agent_json_logs: bool,
    tied: bool,
}

#[derive(Debug, Clone)]
struct Admin {
    bind: String,
    tls: bool,
    token_mode: u32,
}

impl FleetBuilder {
    /// Agent `id` in `agents.yml` ([`Entry::new`]).
    pub fn agent(self, id: &str) -> Self {
        self.entry(Entry::new(id))
    }

    /// Every agent of `ids` ([`Entry::new`]).
    pub fn agents<S: AsRef<str>>(mut self, ids: &[S]) -> Self {
        self.agents
            .extend(ids.iter().map(|id| Entry::new(id.as_ref())));
        self
    }

    /// This `agents.yml` entry.
    pub fn entry(mut self, entry: Entry) -> Self {
        self.agents.push(entry);
        self
    }

    /// No TLS TCP settings (`bind_host`, `bind_port`, `tls_cert_file`,
    /// `tls_key_file`); on by default.
    pub fn no_tls(mut self) -> Self {
        self.tls = false;
        self
    }

    /// TLS TCP settings: the default, for after [`FleetBuilder::no_tls`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// `transports: [..]` (unset by default: the manager's default, TLS TCP).
    pub fn transports(mut self, transports: &[&str]) -> Self {
        self.transports = Some(transports.iter().map(|t| (*t).to_owned()).collect());
        self
    }

    /// A `websocket:` section binding 127.0.0.1:0, plus `body` (indented YAML lines
    /// such as `"  tls: false\n"`).
    pub fn websocket(mut self, body: &str) -> Self {
        self.websocket = Some(body.to_owned());
        self
    }

    /// An `amqp:` section with this broker `url` and hello `queue`.
    pub fn amqp(mut self, url: &str, queue: &str) -> Self {
        self.amqp = Some((url.to_owned(), queue.to_owned()));
        self
    }

    /// The admin API on 127.0.0.1:0 with token [`ADMIN_TOKEN`] in a 0600 file.
    pub fn admin(mut self) -> Self {
        self.admin.get_or_insert(Admin {
            bind: "127.0.0.1:0".into(),
            tls: false,
            token_mode: 0o600,
        });
        self
    }

    /// The admin API on `bind` ([`FleetBuilder::admin`] otherwise).
    pub fn admin_bind(mut self, bind: &str) -> Self {
        self = self.admin();
        if let Some(a) = &mut self.admin {
            a.bind = bind.to_owned();
        }
        self
    }

    /// The admin API over HTTPS with the fleet's manager certificate.
    pub fn admin_tls(mut self) -> Self {
        self = self.admin();
        if let Some(a) = &mut self.admin {
            a.tls = true;
        }
        self
    }

    /// The admin token file with this mode (0600 by default; the manager refuses a
    /// file others can read).
    pub fn admin_token_mode(mut self, mode: u32) -> Self {
        self = self.admin();
        if let Some(a) = &mut self.admin {
            a.token_mode = mode;
        }
        self
    }

    /// The manager's `ping_interval`.
    pub fn ping_interval(mut self, seconds: u64) -> Self {
        self.ping_interval = Some(seconds);
        self
    }

    /// The manager's `hello_timeout`.
    pub fn hello_timeout(mut self, seconds: u64) -> Self {
        self.hello_timeout = Some(seconds);
        self
    }

    /// Further manager YAML; its top-level keys replace the builder's ([`overlay`]).
    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        self
    }

    /// YAML added to every agent's file (before what a test gives for one agent).
    pub fn agent_defaults(mut self, yaml: &str) -> Self {
        self.agent_defaults.push_str(yaml);
        self
    }

    /// The `manager_host` agents dial over TLS TCP (default `127.0.0.1`).
    pub fn agent_host(mut self, host: &str) -> Self {
        self.agent_host = host.to_owned();
        self
    }

    /// Agents log JSON lines (`--log-format json`).
    pub fn agent_json_logs(mut self) -> Self {
        self.agent_json_logs = true;
        self
    }

    /// For a fleet kept in a `static` (never dropped): its directory is swept by a
    /// later run and the processes it spawns die with the test process
    /// ([`tied`]).
    pub fn tied_to_test_process(mut self) -> Self {
        self.tied = true;
        self
    }

    /// Create the scratch directory, certificates, `data/agents.yml`, the token file
    /// and `manager.yml`.
    ///
    /// # Panics
    ///
    /// On I/O errors (the message names the file).
    pub fn build(self) -> Fleet {
        let dir = if self.tied {
            tied::owned_dir("redpepper-fleet-")
        } else {
            scratch_dir()
        };
        let certs = TestCerts::generate(&dir.path().join("certs"));
        let data = dir.path().join("data");
        create_dir(&data);
        write_file(&data.join("agents.yml"), &agents_file(&self.agents));
        let token_file = self.admin.as_ref().map(|a| {
            let path = dir.path().join("admin-token");
            write_file(&path, &format!("{ADMIN_TOKEN}\n"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(a.token_mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            path
        });
        let manager_yml = dir.path().join("manager.yml");
        let text = overlay(
            &self.manager_yaml(&certs, &data, token_file.as_deref()),
            &self.extra,
        );
        write_file(&manager_yml, &text);
        Fleet {
            dir,
            certs,
            manager_yml,
            token_file,
            options: self,
            manager: None,
        }
    }

    fn manager_yaml(&self, certs: &TestCerts, data: &Path, token_file: Option<&Path>) -> String {
        let mut y = format!("data_base_dir: {}\n", data.display());
        if self.tls {
            let _ = write!(
                y,
                "bind_host: 127.0.0.1\nbind_port: 0\ntls_cert_file: {}\ntls_key_file: {}\n",
                certs.manager_cert.display(),
                certs.manager_key.display()
            );
        }
        if let Some(s) = self.ping_interval {
            let _ = writeln!(y, "ping_interval: {s}");
        }
        if let Some(s) = self.hello_timeout {
            let _ = writeln!(y, "hello_timeout: {s}");
        }
        if let Some(t) = &self.transports {
            let _ = writeln!(y, "transports: [{}]", t.join(", "));
        }
        if let (Some(a), Some(token_file)) = (&self.admin, token_file) {
            let _ = write!(
                y,
                "admin_bind: {}\nadmin_token_file: {}\n",
                a.bind,
                token_file.display()
            );
            if a.tls {
                let _ = write!(
                    y,
                    "admin_tls_cert_file: {}\nadmin_tls_key_file: {}\n",
                    certs.manager_cert.display(),
                    certs.manager_key.display()
                );
            }
        }
        if let Some(body) = &self.websocket {
            let _ = write!(y, "websocket:\n  bind: 127.0.0.1:0\n{body}");
        }
        if let Some((url, queue)) = &self.amqp {
            let _ = write!(y, "amqp:\n  url: {url}\n  queue: {queue}\n");
        }
        y
    }

    /// The transports the manager listens on with sockets of its own.
    fn listeners(&self) -> Vec<String> {
        let all = self
            .transports
            .clone()
            .unwrap_or_else(|| vec!["tls".into()]);
        all.into_iter().filter(|t| t != "amqp").collect()
    }
}

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
    options: FleetBuilder,
    manager: Option<ManagerProc>,
}

impl Fleet {
    /// A builder with no agents, TLS TCP settings, nothing else.
    pub fn builder() -> FleetBuilder {
        FleetBuilder {
            agents: Vec::new(),
            tls: true,
            transports: None,
            websocket: None,
            amqp: None,
            admin: None,
            ping_interval: None,
            hello_timeout: None,
            extra: String::new(),
            agent_defaults: String::new(),
            agent_host: "127.0.0.1".into(),
            agent_json_logs: false,
            tied: false,
        }
    }

    /// `name` inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
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

/// `agents.yml` for `entries` ([`agents_yml`], plus `amqp_user` where given).
fn agents_file(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return agents_yml(&[]);
    }
    let mut out = String::new();
    for e in entries {
        let ips: Vec<&str> = e.allowed_ips.iter().map(String::as_str).collect();
        out.push_str(&agents_yml(&[(&e.id, &secret_of(&e.id), &ips)]));
        if let Some(u) = &e.amqp_user {
            let _ = writeln!(out, "  amqp_user: {u}");
        }
    }
    out
}

/// `base` with every top-level key of `over` replaced by `over`'s (with its indented
/// lines), and `over`'s other keys appended: YAML where the later setting wins, as a
/// configuration layer would.
pub fn overlay(base: &str, over: &str) -> String {
    let key = |line: &str| -> Option<String> {
        if line.starts_with([' ', '\t', '#', '-']) {
            return None;
        }
        line.split_once(':').map(|(k, _)| k.trim().to_owned())
    };
    let replaced: Vec<String> = over.lines().filter_map(key).collect();
    let mut out = String::new();
    let mut skipping = false;
    for line in base.lines() {
        if let Some(k) = key(line) {
            skipping = replaced.contains(&k);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(over);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn create_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_keys_with_their_sections_and_appends_the_rest() {
        let base = "a: 1\nws:\n  bind: x\n  tls: true\nb: 2\n";
        assert_eq!(
            overlay(base, "ws:\n  tls: false\nc: 3\n"),
            "a: 1\nb: 2\nws:\n  tls: false\nc: 3\n"
        );
        assert_eq!(overlay(base, ""), base);
    }

    #[test]
    fn agents_file_pins_broker_users() {
        let text = agents_file(&[
            Entry::pinned("a1"),
            Entry::new("a2").allowed_ips(&["0.0.0.0/0"]),
        ]);
        assert!(text.contains("\"a1\":"), "{text}");
        assert!(text.contains("  amqp_user: a1\n"), "{text}");
        assert_eq!(text.matches("amqp_user").count(), 1, "{text}");
        assert!(text.contains("0.0.0.0/0"), "{text}");
        assert_eq!(agents_file(&[]), "{}\n");
    }
}
