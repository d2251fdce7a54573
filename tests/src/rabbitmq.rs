//! [`RabbitNode`]: a private RabbitMQ node for the AMQP tests. (Over 500 lines as one
//! cohesive thing: a node's life, its users and vhosts and its TLS listener share the
//! node's directories and ports.)
//!
//! Debian's `rabbitmq-server` runs as a child process in the foreground, with its own
//! node name (`rp-test-<port>@localhost`), ports (AMQP, AMQPS, Erlang distribution,
//! and a private `epmd`), and base directories (Mnesia, logs, Erlang cookie in its own
//! `HOME`) inside a temporary directory, so it neither needs nor disturbs a
//! system-wide broker. The AMQPS listener uses certificates made for it (a fresh
//! [`TestCerts`] CA; the server certificate is valid for `localhost` and `127.0.0.1`).
//! Readiness is the broker's own "Server startup complete" log line, confirmed with
//! `rabbitmqctl wait` on the node's PID file.
//!
//! ```no_run
//! use redpepper_tests::rabbitmq::{Perms, RabbitNode};
//!
//! let node = RabbitNode::shared(); // one per test binary
//! node.add_vhost("t1");
//! node.add_user("manager", "pw", "t1", &Perms::manager("redpepper.manager"));
//! let url = node.amqp_url("manager", "pw", "t1");
//! # let _ = url;
//! ```
//!
//! Startup takes seconds, so a test binary shares one node ([`RabbitNode::shared`])
//! and isolates its tests with vhosts; a test that stops or restarts the broker starts
//! its own ([`RabbitNode::start`]). Every process is started with
//! [`spawn_tied`], so the broker and its `epmd` stop
//! when the test process ends, even for the shared node that is never dropped. A missing
//! `rabbitmq-server` is a test failure that says to run `scripts/test`, never a skip.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::certs::TestCerts;
use crate::fleet::tied::{owned_dir, spawn_tied};
use crate::net::free_port;
use crate::process::Proc;
use crate::{system_program, TIMEOUT};

mod cluster;
pub use cluster::RabbitCluster;

/// Where Debian keeps the real scripts (`/usr/sbin/rabbitmq*` switch to the
/// `rabbitmq` user when run as root, which would lose our `HOME` and cookie).
const DEBIAN_SCRIPTS: &str = "/usr/lib/rabbitmq/bin";

/// Prefix of the nodes' temporary directories (see [`owned_dir`]).
const DIR_PREFIX: &str = "redpepper-rabbitmq-";

/// Permission regexes of one broker user in one vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perms {
    /// Resources the user may declare and delete.
    pub configure: String,
    /// Resources the user may publish to.
    pub write: String,
    /// Resources the user may consume from.
    pub read: String,
}

impl Perms {
    /// Everything (`.*` three times).
    pub fn all() -> Perms {
        Perms {
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }
    }

    /// What docs/AMQP.md tells operators to grant the manager consuming `queue`.
    pub fn manager(queue: &str) -> Perms {
        let own = format!("^{}(\\..+)?$", regex_escape(queue));
        Perms {
            configure: own.clone(),
            write: "^amq\\.default$".into(),
            read: own,
        }
    }

    /// A manager of cluster `cluster` (`cluster.name`) that also serves AMQP agents on
    /// hello queue `queue` ([`Perms::manager`]): configure, write and read on the
    /// cluster's exchange `CLUSTER.cluster` and its node queues `CLUSTER.node.*` (a
    /// queue is bound with write on it and read on the exchange), plus the AMQP
    /// transport's resources.
    pub fn cluster_manager(cluster: &str, queue: &str) -> Perms {
        let c = regex_escape(cluster);
        let q = regex_escape(queue);
        let ours = format!("{c}\\.cluster|{c}\\.node\\..+");
        Perms {
            configure: format!("^({q}(\\..+)?|{ours})$"),
            write: format!("^(amq\\.default|{ours})$"),
            read: format!("^({q}(\\..+)?|{ours})$"),
        }
    }

    /// What docs/AMQP.md tells operators to grant agent `agent_id`.
    pub fn agent(agent_id: &str) -> Perms {
        let own = format!(
            "^redpepper\\.agent\\.{}\\.[0-9a-f]+$",
            regex_escape(agent_id)
        );
        Perms {
            configure: own.clone(),
            write: "^amq\\.default$".into(),
            read: own,
        }
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One broker user for [`RabbitNode::add_users`].
#[derive(Debug, Clone)]
pub struct BrokerUser {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Its permissions in the vhost.
    pub perms: Perms,
}

/// A private RabbitMQ node (see the module docs). Stopped on drop.
pub struct RabbitNode {
    dir: TempDir,
    name: String,
    port: u16,
    tls_port: u16,
    dist_port: u16,
    epmd_port: u16,
    certs: TestCerts,
    server: Mutex<Option<Proc>>,
    /// `import_definitions` runs one at a time: two concurrent imports that create the
    /// same user race inside RabbitMQ and one fails with `user_already_exists`.
    imports: Mutex<()>,
    /// The `epmd` this node registers with (shared by the nodes of a cluster).
    _epmd: Arc<Proc>,
}

impl std::fmt::Debug for RabbitNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitNode")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Whether RabbitMQ is installed (what [`RabbitNode::start`] needs).
pub fn installed() -> bool {
    Path::new(DEBIAN_SCRIPTS).join("rabbitmq-server").is_file()
        || crate::paths::find_system_program("rabbitmq-server").is_some()
}

/// A Debian RabbitMQ script (`rabbitmq-server`, `rabbitmqctl`).
fn script(name: &str) -> PathBuf {
    let debian = Path::new(DEBIAN_SCRIPTS).join(name);
    if debian.is_file() {
        return debian;
    }
    system_program(name)
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl RabbitNode {
    /// The node shared by every test of this test binary (started on first use).
    pub fn shared() -> &'static RabbitNode {
        static NODE: OnceLock<RabbitNode> = OnceLock::new();
        NODE.get_or_init(RabbitNode::start)
    }

    /// Start a new private node and wait until it is ready.
    ///
    /// # Panics
    ///
    /// When RabbitMQ is not installed (run `scripts/test`) or does not start.
    pub fn start() -> RabbitNode {
        // Fails (with the command that fixes it) when RabbitMQ is not installed.
        script("rabbitmq-server");
        let (epmd, epmd_port) = start_epmd();
        let node =
            RabbitNode::prepare(epmd, epmd_port, &format!("{:032X}", rand::random::<u128>()));
        node.boot();
        node
    }

    /// A node's directories, files and ports, registering with `epmd` (on
    /// `epmd_port`) and with Erlang cookie `cookie`; not started.
    fn prepare(epmd: Arc<Proc>, epmd_port: u16, cookie: &str) -> RabbitNode {
        let dir = owned_dir(DIR_PREFIX);
        let certs = TestCerts::generate(&dir.path().join("certs"));
        let (port, tls_port, dist_port) = (free_port(), free_port(), free_port());
        let name = format!("rp-test-{port}@localhost");
        for sub in ["home", "mnesia", "log"] {
            fs::create_dir_all(dir.path().join(sub))
                .unwrap_or_else(|e| panic!("create {sub}: {e}"));
        }
        let cookie_file = dir.path().join("home/.erlang.cookie");
        write(&cookie_file, cookie);
        fs::set_permissions(&cookie_file, fs::Permissions::from_mode(0o400))
            .unwrap_or_else(|e| panic!("chmod cookie: {e}"));
        write(&dir.path().join("enabled_plugins"), "[].\n");
        write(
            &dir.path().join("rabbitmq.conf"),
            &format!(
                "listeners.tcp.1 = 127.0.0.1:{port}\n\
                 listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 loopback_users = none\n",
                certs.ca_cert.display(),
                certs.manager_cert.display(),
                certs.manager_key.display(),
            ),
        );
        RabbitNode {
            dir,
            name,
            port,
            tls_port,
            dist_port,
            epmd_port,
            certs,
            server: Mutex::new(None),
            imports: Mutex::new(()),
            _epmd: epmd,
        }
    }

    fn env(&self, cmd: &mut Command) {
        let d = self.dir.path();
        cmd.current_dir(d)
            .env("HOME", d.join("home"))
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_ENABLED_PLUGINS", "")
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .env_remove("RABBITMQ_ERLANG_COOKIE");
    }

    fn boot(&self) {
        let mut cmd = Command::new(script("rabbitmq-server"));
        self.env(&mut cmd);
        let proc = spawn_tied("rabbitmq", "TERM", &cmd);
        proc.wait_for_line(|l| l.contains("Server startup complete"), TIMEOUT * 2)
            .unwrap_or_else(|e| panic!("RabbitMQ node {} did not start: {e}", self.name));
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(proc);
        // `rabbitmqctl wait`: the node's PID file (RABBITMQ_PID_FILE) and the broker
        // application running on it.
        self.ctl(&["wait", &self.pid_file(), "--timeout", "120"])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The node's PID file (RABBITMQ_PID_FILE), which `rabbitmqctl wait` and `stop`
    /// take to follow the OS process.
    fn pid_file(&self) -> String {
        self.dir
            .path()
            .join("rabbitmq.pid")
            .to_string_lossy()
            .into_owned()
    }

    /// Run `rabbitmqctl -n NODE ARGS...`; its output, or an error with it.
    ///
    /// # Errors
    ///
    /// When rabbitmqctl fails.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(script("rabbitmqctl"));
        self.env(&mut cmd);
        cmd.args(["-n", &self.name, "-q"]).args(args);
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "rabbitmqctl {} failed ({}): {text}",
                args.join(" "),
                out.status
            ))
        }
    }

    /// The node name (`rp-test-PORT@localhost`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plain AMQP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The AMQPS port (on 127.0.0.1).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The CA that signed the broker's TLS certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.certs.ca_cert
    }

    /// The certificates made for this node (its CA, server and a client certificate).
    pub fn certs(&self) -> &TestCerts {
        &self.certs
    }

    /// `amqp://USER:PASS@127.0.0.1:PORT/VHOST`.
    pub fn amqp_url(&self, user: &str, pass: &str, vhost: &str) -> String {
        format!(
            "amqp://{user}:{pass}@127.0.0.1:{}/{}",
            self.port,
            encode_vhost(vhost)
        )
    }

    /// `amqps://USER:PASS@localhost:TLS_PORT/VHOST` (verify with [`RabbitNode::ca_cert`]).
    pub fn amqps_url(&self, user: &str, pass: &str, vhost: &str) -> String {
        format!(
            "amqps://{user}:{pass}@localhost:{}/{}",
            self.tls_port,
            encode_vhost(vhost)
        )
    }

    /// Create a vhost (no error if it exists).
    ///
    /// # Panics
    ///
    /// When rabbitmqctl fails.
    pub fn add_vhost(&self, vhost: &str) {
        self.import(&format!(r#"{{"vhosts":[{{"name":{}}}]}}"#, json_str(vhost)));
    }

    /// Create (or update) a user with `perms` in `vhost` (created if needed).
    ///
    /// # Panics
    ///
    /// When rabbitmqctl fails.
    pub fn add_user(&self, user: &str, pass: &str, vhost: &str, perms: &Perms) {
        self.add_users(
            vhost,
            &[BrokerUser {
                name: user.into(),
                password: pass.into(),
                perms: perms.clone(),
            }],
        );
    }

    /// Create (or update) many users in `vhost` with one `rabbitmqctl` run (each run
    /// starts an Erlang VM, which takes about a second).
    ///
    /// # Panics
    ///
    /// When rabbitmqctl fails.
    pub fn add_users(&self, vhost: &str, users: &[BrokerUser]) {
        let mut defs = format!(r#"{{"vhosts":[{{"name":{}}}],"users":["#, json_str(vhost));
        for (i, u) in users.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                defs,
                r#"{sep}{{"name":{},"password_hash":"{}","hashing_algorithm":"rabbit_password_hashing_sha256","tags":[]}}"#,
                json_str(&u.name),
                password_hash(&u.password)
            );
        }
        defs.push_str(r#"],"permissions":["#);
        for (i, u) in users.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                defs,
                r#"{sep}{{"user":{},"vhost":{},"configure":{},"write":{},"read":{}}}"#,
                json_str(&u.name),
                json_str(vhost),
                json_str(&u.perms.configure),
                json_str(&u.perms.write),
                json_str(&u.perms.read)
            );
        }
        defs.push_str("]}");
        self.import(&defs);
    }

    fn import(&self, definitions: &str) {
        let file = self
            .dir
            .path()
            .join(format!("definitions-{:x}.json", rand::random::<u128>()));
        write(&file, definitions);
        let path = file.to_string_lossy().into_owned();
        let _one_at_a_time = self.imports.lock().unwrap_or_else(|p| p.into_inner());
        self.ctl(&["import_definitions", &path])
            .unwrap_or_else(|e| panic!("{e}\ndefinitions: {definitions}"));
    }

    /// Stop the broker (as `rabbitmqctl stop` does) and wait until it has exited.
    /// Data and ports are kept for [`RabbitNode::start_again`].
    ///
    /// # Panics
    ///
    /// When it does not stop.
    pub fn stop(&self) {
        let proc = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(proc) = proc else { return };
        // With the PID file, `rabbitmqctl stop` returns once the node's OS process has
        // exited, so its listening sockets are closed and start_again can bind them.
        if let Err(e) = self.ctl(&["stop", &self.pid_file()]) {
            eprintln!("rabbitmqctl stop: {e}; killing the node");
            proc.kill();
        }
        proc.wait_exit(TIMEOUT)
            .unwrap_or_else(|e| panic!("RabbitMQ did not stop: {e}"));
    }

    /// Kill the broker at once (SIGKILL to its process group: `kill -9`, no shutdown,
    /// open connections break) and wait until it is reaped. Data and ports are kept
    /// for [`RabbitNode::start_again`]; `epmd` keeps running.
    pub fn kill(&self) {
        let proc = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(proc) = proc {
            proc.kill();
        }
    }

    /// Start the stopped broker again, same node, ports and data; wait until ready.
    ///
    /// # Panics
    ///
    /// When it is still running or does not start.
    pub fn start_again(&self) {
        assert!(
            self.server
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none(),
            "start_again: the node is running; stop it first"
        );
        self.boot();
    }

    /// [`RabbitNode::stop`] then [`RabbitNode::start_again`].
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// The broker's output so far (its log), for diagnostics.
    pub fn log_tail(&self, lines: usize) -> String {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or_else(|| "(not running)".into(), |p| p.tail(lines))
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        if let Some(proc) = self
            .server
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // Terminates gracefully (the script traps TERM); the process group goes next.
            let _ = proc.signal(crate::Signal::SIGTERM);
            let _ = proc.wait_exit(Duration::from_secs(30));
        }
    }
}

/// A private `epmd` (Erlang's port mapper) and its port.
fn start_epmd() -> (Arc<Proc>, u16) {
    let port = free_port();
    let mut epmd = Command::new(system_program("epmd"));
    epmd.args(["-port", &port.to_string(), "-address", "127.0.0.1"]);
    let epmd = spawn_tied("epmd", "KILL", &epmd);
    crate::wait_for_listen(port, TIMEOUT)
        .unwrap_or_else(|e| panic!("epmd: {e}\n{}", epmd.tail(20)));
    (Arc::new(epmd), port)
}

fn encode_vhost(vhost: &str) -> String {
    let mut out = String::new();
    for b in vhost.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ++ sha256(salt ++ password)).
fn password_hash(password: &str) -> String {
    let salt: [u8; 4] = rand::random();
    let salt = &salt[..];
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut raw = salt.to_vec();
    raw.extend_from_slice(&h.finalize());
    BASE64.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_salt_then_sha256_of_salt_and_password() {
        let a = BASE64.decode(password_hash("pw")).unwrap();
        let b = BASE64.decode(password_hash("pw")).unwrap();
        assert_eq!(a.len(), 4 + 32);
        let (salt, digest) = a.split_at(4);
        let mut h = Sha256::new();
        h.update(salt);
        h.update(b"pw");
        assert_eq!(digest, &h.finalize()[..]);
        assert_ne!(a, b, "a fresh salt each time");
    }

    #[test]
    fn permission_regexes_escape_names() {
        let m = Perms::manager("redpepper.manager");
        assert_eq!(m.configure, "^redpepper\\.manager(\\..+)?$");
        assert_eq!(m.write, "^amq\\.default$");
        let c = Perms::cluster_manager("redpepper", "redpepper.manager");
        assert_eq!(
            c.configure,
            "^(redpepper\\.manager(\\..+)?|redpepper\\.cluster|redpepper\\.node\\..+)$"
        );
        assert_eq!(
            c.write,
            "^(amq\\.default|redpepper\\.cluster|redpepper\\.node\\..+)$"
        );
        let a = Perms::agent("web-1");
        assert_eq!(a.read, "^redpepper\\.agent\\.web\\-1\\.[0-9a-f]+$");
        assert_eq!(encode_vhost("/"), "%2f");
        assert_eq!(encode_vhost("t-1"), "t-1");
    }
}
