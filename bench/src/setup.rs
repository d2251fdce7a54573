//! The scratch world a run works in: certificates, `agents.yml`, and the
//! configuration text of our manager and agent, of the Python manager and agent.
//!
//! ```text
//! <work dir>/
//!   certs/   ca.pem, manager.pem (localhost, 127.0.0.1, ::1), agent.pem, keys (0600)
//!   data/    agents.yml: `bench` plus the fleet `fleet-00000`.. (one shared secret)
//!   py/      the Python manager's command log and scratch files
//!   nginx-PORT/ the configuration, logs and temporary files of one nginx
//! ```
//!
//! The certificates are the workspace's development ones (`redpepper-devcerts`,
//! through the test harness): ECDSA P-256, with the extensions strict verifiers
//! want, so our peers and RedPepper 0.3.4 use the very same files. `agents.yml`
//! and the YAML quoting are the harness' too.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use redpepper_config::{AgentConfig, ConfigFile, ManagerConfig};
use redpepper_tests::certs::names;
use redpepper_tests::{agents_yml_entries, sha256_hex, yaml_str, AgentEntry, TestCerts};
use serde::{Deserialize, Serialize};

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
        TestCerts::try_generate(&world.certs()).context("generating certificates")?;
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
        self.manager_config_with(transport, amqp_url, 0, "")
    }

    /// [`World::manager_config`] on `port` (0: any), with `extra` (more top-level
    /// YAML keys, e.g. a `cluster:` section) appended.
    pub fn manager_config_with(
        &self,
        transport: Transport,
        amqp_url: &str,
        port: u16,
        extra: &str,
    ) -> anyhow::Result<ManagerConfig> {
        let mut y = String::new();
        let _ = writeln!(y, "bind_host: 127.0.0.1\nbind_port: {port}");
        let _ = writeln!(y, "tls_cert_file: {}", self.cert(names::MANAGER_CERT));
        let _ = writeln!(y, "tls_key_file: {}", self.cert(names::MANAGER_KEY));
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
        let _ = writeln!(y, "amqp:\n  url: {}", amqp_url_yaml(amqp_url));
        y.push_str(extra);
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
        self.agent_config_to(transport, &[port], id, amqp_url)
    }

    /// [`World::agent_config`] for managers on loopback at `ports`: one port gives
    /// `manager_host: 127.0.0.1` and `manager_port`, several give the list
    /// `manager_host: ["127.0.0.1:P1", ...]` (a manager cluster's agents), tried as
    /// the agent tries its list.
    pub fn agent_config_to(
        &self,
        transport: Transport,
        ports: &[u16],
        id: &str,
        amqp_url: &str,
    ) -> anyhow::Result<AgentConfig> {
        let port = ports.first().copied().unwrap_or(0);
        let mut y = String::new();
        if ports.len() > 1 {
            let hosts: Vec<String> = ports
                .iter()
                .map(|p| yaml_str(&format!("127.0.0.1:{p}")))
                .collect();
            let _ = writeln!(y, "manager_host: [{}]", hosts.join(", "));
        } else {
            let _ = writeln!(y, "manager_host: 127.0.0.1");
        }
        let _ = writeln!(y, "manager_port: {port}");
        let _ = writeln!(
            y,
            "agent_id: {}\nagent_secret: {}",
            yaml_str(id),
            yaml_str(SECRET)
        );
        let _ = writeln!(y, "tls_ca_file: {}", self.cert(names::CA_CERT));
        let _ = writeln!(y, "tls_verify_mode: required");
        let _ = writeln!(y, "max_message_size: {MAX_MESSAGE}");
        let _ = writeln!(y, "transport: {}", transport.config_name());
        let _ = writeln!(y, "websocket:\n  url: \"wss://127.0.0.1:{port}/redpepper\"");
        let _ = writeln!(y, "amqp:\n  url: {}", amqp_url_yaml(amqp_url));
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

/// `amqp.url` in YAML: one URL as a string; several, separated by commas (the nodes of
/// one RabbitMQ cluster, as the broker-failover workload passes them), as a list.
pub fn amqp_url_yaml(url: &str) -> String {
    if url.contains(',') {
        let urls: Vec<String> = url.split(',').map(|u| yaml_str(u.trim())).collect();
        format!("[{}]", urls.join(", "))
    } else {
        yaml_str(url)
    }
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
    let hash = sha256_hex(SECRET);
    let ids: Vec<String> = std::iter::once(PAIR_AGENT.to_owned())
        .chain((0..fleet).map(fleet_id))
        .collect();
    agents_yml_entries(ids.iter().map(|id| AgentEntry {
        id,
        secret_hash: &hash,
        allowed_ips: &["127.0.0.0/8"],
        amqp_user: Some(amqp_user),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn comma_separated_broker_urls_become_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let world = World::at(dir.path());
        let urls = "amqp://u:p@127.0.0.1:1/v,amqp://u:p@127.0.0.1:2/v,amqp://u:p@127.0.0.1:3/v";
        let config = world.manager_config(Transport::Amqp, urls).unwrap();
        assert_eq!(config.amqp.urls.len(), 3);
        let agent = world
            .agent_config(Transport::Amqp, 0, "fleet-00000", urls)
            .unwrap();
        assert_eq!(agent.amqp.urls.len(), 3);
        let one = world
            .manager_config(Transport::Amqp, "amqp://u:p@127.0.0.1:1/v")
            .unwrap();
        assert_eq!(one.amqp.urls.len(), 1);
    }
}
