//! [`FleetBuilder`]: the options of a [`Fleet`], and the files it writes
//! (`agents.yml`, `manager.yml`, [`overlay`] for YAML where the later key wins).

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::cluster::ClusterSpec;
use super::{create_dir, tied, write_file, Fleet, ADMIN_TOKEN};
use crate::certs::TestCerts;
use crate::python::agents_yml;
use crate::scratch_dir;

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
    pub(super) agents: Vec<Entry>,
    pub(super) tls: bool,
    pub(super) transports: Option<Vec<String>>,
    pub(super) websocket: Option<String>,
    pub(super) amqp: Option<(String, String)>,
    pub(super) admin: Option<Admin>,
    pub(super) ping_interval: Option<u64>,
    pub(super) hello_timeout: Option<u64>,
    pub(super) extra: String,
    pub(super) agent_defaults: String,
    pub(super) agent_host: String,
    pub(super) agent_json_logs: bool,
    pub(super) tied: bool,
    pub(super) cluster: Option<ClusterSpec>,
}

#[derive(Debug, Clone)]
pub(super) struct Admin {
    pub(super) bind: String,
    pub(super) tls: bool,
    pub(super) token_mode: u32,
}

impl FleetBuilder {
    /// No agents, TLS TCP settings, nothing else.
    pub(super) fn new() -> FleetBuilder {
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
            cluster: None,
        }
    }

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

    /// These `agents.yml` entries.
    pub fn entries(mut self, entries: impl IntoIterator<Item = Entry>) -> Self {
        self.agents.extend(entries);
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
    /// and `manager.yml` (and `manager-NODE.yml` per node of a
    /// [cluster](FleetBuilder::cluster)).
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
        let nodes = self.write_nodes(dir.path(), &text);
        Fleet {
            dir,
            certs,
            manager_yml,
            token_file,
            options: self,
            manager: None,
            nodes,
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
    pub(super) fn listeners(&self) -> Vec<String> {
        let all = self
            .transports
            .clone()
            .unwrap_or_else(|| vec!["tls".into()]);
        all.into_iter().filter(|t| t != "amqp").collect()
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
