//! The scratch world a run works in: certificates, `agents.yml`, and the
//! configuration text of our manager and agent, of the Python manager and agent.
//!
//! ```text
//! <work dir>/
//!   certs/   ca.pem, manager.pem (127.0.0.1, localhost), agent.pem, keys (0600)
//!   data/    agents.yml: `bench` plus the fleet `fleet-00000`.. (one shared secret)
//!   py/      the Python manager's command log and scratch files
//!   nginx-PORT/ the configuration, logs and temporary files of one nginx
//! ```
//!
//! All certificates are ECDSA P-256, with the extensions strict verifiers want, so
//! our peers and RedPepper 0.3.4 use the very same files.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use redpepper_config::{AgentConfig, ConfigFile, ManagerConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The agent id of the single agent of the two-process measurements.
pub const PAIR_AGENT: &str = "bench";
/// The secret every benchmark agent uses.
pub const SECRET: &str = "redpepper-bench-secret";
/// The largest payload we send plus room for the envelope: both sides allow it.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The transports a run can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// TLS over TCP with 4-byte length frames.
    Tls,
    /// WebSocket binary messages over TLS (direct).
    Websocket,
    /// WebSocket through nginx: TLS ends at nginx, which proxies plain `ws://` to
    /// the manager (or the raw echo server).
    WebsocketNginx,
    /// AMQP through a RabbitMQ broker.
    Amqp,
}

impl Transport {
    /// Configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tls => "tls",
            Transport::Websocket => "websocket",
            Transport::WebsocketNginx => "websocket-nginx",
            Transport::Amqp => "amqp",
        }
    }

    /// The `transport` / `transports` value in our configurations.
    pub fn config_name(self) -> &'static str {
        match self {
            Transport::WebsocketNginx => "websocket",
            other => other.as_str(),
        }
    }

    /// Parse a configuration name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tls" => Some(Transport::Tls),
            "websocket" | "ws" => Some(Transport::Websocket),
            "websocket-nginx" | "nginx" => Some(Transport::WebsocketNginx),
            "amqp" => Some(Transport::Amqp),
            _ => None,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Paths of the scratch world (passed to children as `--work DIR`).
#[derive(Debug, Clone)]
pub struct World {
    /// The work directory.
    pub dir: PathBuf,
}

impl World {
    /// The world in `dir` (already set up by [`World::create`]).
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Create certificates and an `agents.yml` with `fleet` fleet agents.
    pub fn create(dir: &Path, fleet: usize, amqp_url: &str) -> anyhow::Result<Self> {
        let world = Self::at(dir);
        write_certs(&world.certs()).context("generating certificates")?;
        fs::create_dir_all(world.data()).context("creating the data directory")?;
        fs::create_dir_all(world.dir.join("py")).context("creating py/")?;
        fs::write(
            world.data().join("agents.yml"),
            agents_yml(fleet, &amqp_user(amqp_url)),
        )
        .context("writing agents.yml")?;
        Ok(world)
    }

    /// The certificate directory.
    pub fn certs(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// The manager's data directory (holding `agents.yml`).
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn cert(&self, name: &str) -> String {
        yaml_str(&self.certs().join(name).to_string_lossy())
    }

    /// Our manager's configuration: `transport` only, on loopback, port 0.
    pub fn manager_config(
        &self,
        transport: Transport,
        amqp_url: &str,
    ) -> anyhow::Result<ManagerConfig> {
        let mut y = String::new();
        let _ = writeln!(y, "bind_host: 127.0.0.1\nbind_port: 0");
        let _ = writeln!(y, "tls_cert_file: {}", self.cert("manager.pem"));
        let _ = writeln!(y, "tls_key_file: {}", self.cert("manager-key.pem"));
        let _ = writeln!(y, "tls_verify_mode: none");
        let _ = writeln!(
            y,
            "data_base_dir: {}",
            yaml_str(&self.data().to_string_lossy())
        );
        let _ = writeln!(y, "max_message_size: {MAX_MESSAGE}");
        let _ = writeln!(y, "transports: [{}]", transport.config_name());
        let tls = transport != Transport::WebsocketNginx;
        let _ = writeln!(
            y,
            "websocket:\n  bind: \"127.0.0.1:0\"\n  path: /redpepper\n  tls: {tls}"
        );
        let _ = writeln!(y, "amqp:\n  url: {}", yaml_str(amqp_url));
        ManagerConfig::from_yaml_str(&y).with_context(|| format!("manager configuration:\n{y}"))
    }

    /// Our agent's configuration for agent `id`, dialing `port` on loopback.
    pub fn agent_config(
        &self,
        transport: Transport,
        port: u16,
        id: &str,
        amqp_url: &str,
    ) -> anyhow::Result<AgentConfig> {
        let mut y = String::new();
        let _ = writeln!(y, "manager_host: 127.0.0.1\nmanager_port: {port}");
        let _ = writeln!(
            y,
            "agent_id: {}\nagent_secret: {}",
            yaml_str(id),
            yaml_str(SECRET)
        );
        let _ = writeln!(y, "tls_ca_file: {}", self.cert("ca.pem"));
        let _ = writeln!(y, "tls_verify_mode: required");
        let _ = writeln!(y, "max_message_size: {MAX_MESSAGE}");
        let _ = writeln!(y, "transport: {}", transport.config_name());
        let _ = writeln!(y, "websocket:\n  url: \"wss://127.0.0.1:{port}/redpepper\"");
        let _ = writeln!(y, "amqp:\n  url: {}", yaml_str(amqp_url));
        AgentConfig::from_yaml_str(&y).with_context(|| format!("agent configuration:\n{y}"))
    }
}

/// A hello queue of its own for one of our manager processes over amqp (it names it
/// in its `ready` line; the orchestrator hands it to the agent side): a manager that
/// just exited may still hold the default `redpepper.manager` (exclusive queues go
/// when the broker has cleaned up after the connection, which lags when a whole fleet
/// disconnects at once), and a broker given by `--amqp-url` may serve a real manager.
pub fn hello_queue() -> String {
    format!("redpepper.bench.manager.{:016x}", rand::random::<u64>())
}

/// Id of fleet agent `i`.
pub fn fleet_id(i: usize) -> String {
    format!("fleet-{i:05}")
}

/// The user of an AMQP URL (`amqp://USER:PASS@HOST/...`), `guest` if none.
pub fn amqp_user(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(userinfo, _)| userinfo.split(':').next().unwrap_or("guest").to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "guest".to_owned())
}

/// `agents.yml` with [`PAIR_AGENT`] and `fleet` fleet agents, all with [`SECRET`],
/// allowed from 127.0.0.0/8, and over AMQP as broker user `amqp_user`.
pub fn agents_yml(fleet: usize, amqp_user: &str) -> String {
    let hash = hex::encode(Sha256::digest(SECRET.as_bytes()));
    let user = yaml_str(amqp_user);
    let mut out = String::with_capacity((fleet + 1) * 110);
    let mut entry = |id: &str| {
        let _ = writeln!(
            out,
            "{id}:\n  secret_hash: \"{hash}\"\n  allowed_ips: \"127.0.0.0/8\"\n  amqp_user: {user}\n  data: {{}}"
        );
    };
    entry(PAIR_AGENT);
    for i in 0..fleet {
        entry(&fleet_id(i));
    }
    out
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A CA, a manager certificate for `localhost`/`127.0.0.1` and an agent client
/// certificate, ECDSA P-256, keys at mode 0600 (RedPepper refuses others).
fn write_certs(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "RedPepper bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let leaf = |cn: &str, sans: Vec<String>, eku: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok::<_, rcgen::Error>((cert, key))
    };
    let (manager, manager_key) = leaf(
        "localhost",
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (agent, agent_key) = leaf(
        "agent",
        vec!["agent".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let files = [
        ("ca.pem", ca.pem(), 0o644),
        ("manager.pem", manager.pem(), 0o644),
        ("manager-key.pem", manager_key.serialize_pem(), 0o600),
        ("agent.pem", agent.pem(), 0o644),
        ("agent-key.pem", agent_key.serialize_pem(), 0o600),
    ];
    for (name, text, mode) in files {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// An nginx configuration: one process (no master), TLS with the manager's
/// certificate on `port`, every path proxied as WebSocket to plain
/// `127.0.0.1:backend`; `dir` holds its logs and temporary files.
pub fn nginx_conf(world: &World, dir: &Path, port: u16, backend: u16) -> String {
    let d = dir.display();
    let certs = world.certs();
    let c = certs.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nworker_rlimit_nofile 65536;\n\
         events {{ worker_connections 30000; }}\n\
         http {{\n  access_log off;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port} ssl;\n\
         ssl_certificate {c}/manager.pem;\n    ssl_certificate_key {c}/manager-key.pem;\n\
         location / {{\n      proxy_pass http://127.0.0.1:{backend};\n\
         proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n\
         proxy_set_header Connection \"upgrade\";\n      proxy_set_header Host $host;\n\
         proxy_set_header X-Forwarded-For $remote_addr;\n      proxy_buffering off;\n\
         proxy_read_timeout 3600s;\n      proxy_send_timeout 3600s;\n    }}\n  }}\n}}\n"
    )
}
