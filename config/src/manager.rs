//! The manager's configuration (`/etc/redpepper/manager.yml`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use ipnet::IpNet;
use serde::Deserialize;

use crate::admission::AdmissionConfig;
use crate::cluster::ClusterConfig;
use crate::commands::ManagerCommandsConfig;
use crate::common::SessionSettings;
use crate::console::ConsoleConfig;
use crate::error::ConfigError;
use crate::jobs::CommandLogConfig;
use crate::loader::sealed::FileKind;
use crate::loader::{from_figment, invalid};
use crate::schema::{Schema, MANAGER_SCHEMA};
use crate::tls::{from_figment_tls, Role, TlsConfig, VerifyMode};
use crate::values::{check_url, redact_url, Net, OneOrMany, Str};
use redpepper_core::TransportKind;

/// RedPepper's default manager configuration file.
pub const DEFAULT_MANAGER_CONFIG_FILE: &str = "/etc/redpepper/manager.yml";

/// The manager's configuration. Keys and meanings are RedPepper's; keys marked
/// "ours" are extensions. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// `bind_host`: address the TLS agent listener binds to. Default `0.0.0.0`.
    pub bind_host: String,
    /// `bind_port`: port of the TLS agent listener. Default `7051`.
    pub bind_port: u16,
    /// `tls_*`: TLS settings. Defaults: cert `/etc/redpepper/manager-cert.pem`,
    /// key `/etc/redpepper/manager-key.pem`, verify mode `none`; see [`TlsConfig`].
    pub tls: TlsConfig,
    /// `ping_interval`, `ping_timeout`, `max_message_size`, `hello_timeout`
    /// (top-level keys): the session settings. Defaults:
    /// [`SessionSettings::manager_default`] (10 s, 5 s, 1048576, 10 s).
    pub session: SessionSettings,
    /// `data_base_dir`: directory holding `agents.yml` and agent data. Default
    /// `/var/lib/redpepper/data`.
    pub data_base_dir: PathBuf,
    /// `transports` (ours): listeners to run. Default `[tls]`.
    pub transports: Vec<TransportKind>,
    /// `websocket` (ours): the WebSocket listener.
    pub websocket: ManagerWebsocketConfig,
    /// `amqp` (ours): the AMQP transport.
    pub amqp: ManagerAmqpConfig,
    /// `admission` (ours): limits on connections not yet authenticated. Defaults:
    /// [`AdmissionConfig::default`].
    pub admission: AdmissionConfig,
    /// `commands` (ours): how long a command waits for its agent to come back.
    /// Defaults: [`ManagerCommandsConfig::default`].
    pub commands: ManagerCommandsConfig,
    /// `cluster` (ours): join a manager cluster through RabbitMQ. Default none: a lone
    /// manager. See [`ClusterConfig`].
    pub cluster: Option<ClusterConfig>,
    /// `admin_bind` (ours): `HOST:PORT` of the admin HTTP API (`127.0.0.1:7050`).
    /// Default none: no admin API. Needs `admin_token_file`.
    pub admin_bind: Option<String>,
    /// `admin_token_file` (ours): file holding the admin API's bearer token (must
    /// not be readable by group or others). Default none.
    pub admin_token_file: Option<PathBuf>,
    /// `admin_tls_cert_file`, `admin_tls_key_file`, `admin_tls_key_file_allow_insecure`
    /// (ours): serve the admin API over HTTPS with this certificate and key. Default
    /// none: plain HTTP (bind it to loopback). Only `cert_file`, `key_file` and
    /// `key_file_allow_insecure` are used.
    pub admin_tls: Option<TlsConfig>,
    /// `log_level` (ours): TRACE, DEBUG, INFO, WARN or ERROR; `-l` wins at start,
    /// `RUST_LOG` always. Re-read at SIGHUP. Default none: `-l`, else INFO.
    pub log_level: Option<String>,
    /// `command_log_*`: the log of runs' outcomes (see [`CommandLogConfig`]).
    pub command_log: CommandLogConfig,
    /// `api_logins`, `api_session_max_age` (RedPepper's): who may log in to the web
    /// console besides the admin token. Defaults: [`ConsoleConfig::default`].
    pub console: ConsoleConfig,
}

/// The manager's `websocket:` section.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagerWebsocketConfig {
    /// `websocket.bind`: `HOST:PORT` to listen on. Default `0.0.0.0:7052`.
    pub bind: String,
    /// `websocket.path`: HTTP path of the endpoint. Default `/redpepper`.
    pub path: String,
    /// `websocket.tls`: serve `wss://` with the manager's `tls_*` certificate;
    /// `false` serves plain `ws://` (behind a TLS-terminating proxy). Default `true`.
    pub tls: bool,
    /// `websocket.trusted_proxies`: networks (CIDR or bare IP) of reverse proxies
    /// whose `X-Forwarded-For` is believed for the agent's address. Default empty.
    pub trusted_proxies: Vec<IpNet>,
}

/// The manager's `amqp:` section.
#[derive(Clone, PartialEq)]
pub struct ManagerAmqpConfig {
    /// `amqp.url`: the first broker URL of [`urls`](Self::urls) (what a single URL
    /// configured before lists existed reads). Default `amqp://127.0.0.1:5672/%2f`.
    pub url: String,
    /// `amqp.url` as a list: the nodes of one RabbitMQ cluster, tried from a random
    /// one; a single URL is a list of one. Never empty once loaded.
    pub urls: Vec<String>,
    /// `amqp.queue`: the manager's queue. Default `redpepper.manager`.
    pub queue: String,
    /// `amqp.queue_type`: type of the hello queue, `classic` (default) or `quorum`
    /// (replicated over the broker cluster's nodes, survives the loss of one; always
    /// shared and durable, see docs/AMQP.md).
    pub queue_type: AmqpQueueType,
}

/// `amqp.queue_type`: the RabbitMQ queue type of the queues that must outlive a broker
/// node (the manager's hello queue). Per-connection queues stay exclusive classic queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmqpQueueType {
    /// A classic queue (RabbitMQ's default), living on one broker node.
    #[default]
    Classic,
    /// A quorum queue (`x-queue-type: quorum`), replicated over the broker cluster.
    Quorum,
}

impl fmt::Debug for ManagerAmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerAmqpConfig")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("queue", &self.queue)
            .field("queue_type", &self.queue_type)
            .finish()
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            bind_host: "0.0.0.0".to_owned(),
            bind_port: 7051,
            tls: TlsConfig::manager_default(),
            session: SessionSettings::manager_default(),
            data_base_dir: PathBuf::from("/var/lib/redpepper/data"),
            transports: vec![TransportKind::Tls],
            websocket: ManagerWebsocketConfig {
                bind: "0.0.0.0:7052".to_owned(),
                path: "/redpepper".to_owned(),
                tls: true,
                trusted_proxies: Vec::new(),
            },
            amqp: ManagerAmqpConfig {
                url: "amqp://127.0.0.1:5672/%2f".to_owned(),
                urls: vec!["amqp://127.0.0.1:5672/%2f".to_owned()],
                queue: "redpepper.manager".to_owned(),
                queue_type: AmqpQueueType::Classic,
            },
            admission: AdmissionConfig::default(),
            commands: ManagerCommandsConfig::default(),
            cluster: None,
            admin_bind: None,
            admin_token_file: None,
            admin_tls: None,
            log_level: None,
            command_log: CommandLogConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawManager {
    bind_host: Option<Str>,
    bind_port: Option<u16>,
    data_base_dir: Option<Str>,
    transports: Option<OneOrMany<TransportKind>>,
    websocket: Option<RawWebsocket>,
    amqp: Option<RawAmqp>,
    admin_bind: Option<Str>,
    admin_token_file: Option<Str>,
    admin_tls_cert_file: Option<Str>,
    admin_tls_key_file: Option<Str>,
    admin_tls_key_file_allow_insecure: Option<bool>,
    log_level: Option<Str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawWebsocket {
    bind: Option<Str>,
    path: Option<Str>,
    tls: Option<bool>,
    trusted_proxies: Option<OneOrMany<Net>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAmqp {
    url: Option<OneOrMany<Str>>,
    queue: Option<Str>,
    queue_type: Option<AmqpQueueType>,
}

/// Whether `s` is `HOST:PORT` (`0.0.0.0:7052`, `[::]:7052`, `localhost:7052`).
fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains([':', '/', ' ', '[', ']']) && port.parse::<u16>().is_ok()
    })
}

impl FileKind for ManagerConfig {
    const SCHEMA: &'static Schema = &MANAGER_SCHEMA;
    const DEFAULT_FILE: &'static str = DEFAULT_MANAGER_CONFIG_FILE;

    fn check(&self) -> Result<(), ConfigError> {
        self.validate()
    }

    fn from_figment(fig: &Figment) -> Result<Self, ConfigError> {
        let raw: RawManager = fig.extract_lossy().map_err(from_figment)?;
        let mut c = ManagerConfig::default();
        c.session = c.session.read(fig)?;
        c.admission = c.admission.read(fig)?;
        c.commands = c.commands.read(fig)?;
        c.command_log = c.command_log.read(fig)?;
        c.cluster = crate::cluster::read(fig)?;
        c.console = crate::console::read(fig)?;
        if let Some(v) = raw.bind_host {
            c.bind_host = v.0;
        }
        if let Some(v) = raw.bind_port {
            c.bind_port = v;
        }
        if let Some(v) = raw.data_base_dir {
            c.data_base_dir = PathBuf::from(v.0);
        }
        if let Some(v) = raw.transports {
            c.transports.clear();
            for t in v.0 {
                if !c.transports.contains(&t) {
                    c.transports.push(t);
                }
            }
            if c.transports.is_empty() {
                return Err(invalid(
                    fig,
                    "transports",
                    "expected at least one of tls, websocket, amqp",
                ));
            }
        }
        let ws_on = c.transports.contains(&TransportKind::WebSocket);
        let ws = raw.websocket.unwrap_or_default();
        match ws.bind {
            Some(bind) if ws_on && !is_host_port(&bind.0) => {
                let msg = format!("expected HOST:PORT, found `{}`", bind.0);
                return Err(invalid(fig, "websocket.bind", msg));
            }
            Some(bind) => c.websocket.bind = bind.0,
            None if ws_on && fig.contains("websocket.bind") => {
                return Err(invalid(
                    fig,
                    "websocket.bind",
                    "expected HOST:PORT, found nothing",
                ));
            }
            None => {}
        }
        if let Some(p) = ws.path {
            if ws_on && !p.0.starts_with('/') {
                return Err(invalid(
                    fig,
                    "websocket.path",
                    "expected a path starting with `/`",
                ));
            }
            c.websocket.path = p.0;
        }
        if let Some(v) = ws.tls {
            c.websocket.tls = v;
        }
        if let Some(v) = ws.trusted_proxies {
            c.websocket.trusted_proxies = v.0.into_iter().map(|n| n.0).collect();
        }
        let amqp = raw.amqp.unwrap_or_default();
        if let Some(urls) = amqp.url {
            let urls: Vec<String> = urls.0.into_iter().map(|u| u.0).collect();
            if c.transports.contains(&TransportKind::Amqp) {
                if urls.is_empty() {
                    return Err(invalid(fig, "amqp.url", "expected a broker URL or a list"));
                }
                for url in &urls {
                    check_url(url, &["amqp", "amqps"]).map_err(|m| invalid(fig, "amqp.url", m))?;
                }
            }
            if let Some(first) = urls.first() {
                c.amqp.url.clone_from(first);
                c.amqp.urls = urls;
            }
        }
        if let Some(t) = amqp.queue_type {
            c.amqp.queue_type = t;
        }
        if let Some(q) = amqp.queue {
            if q.0.is_empty() {
                return Err(invalid(fig, "amqp.queue", "expected a queue name"));
            }
            c.amqp.queue = q.0;
        }
        c.log_level = raw.log_level.map(|s| s.0).filter(|s| !s.is_empty());
        if let Some(level) = &c.log_level {
            if crate::logging::level_directive(level).is_err() {
                let msg = format!("`{level}`: expected one of TRACE, DEBUG, INFO, WARN, ERROR");
                return Err(invalid(fig, "log_level", msg));
            }
        }
        c.admin_bind = raw.admin_bind.map(|s| s.0).filter(|s| !s.is_empty());
        c.admin_token_file = raw
            .admin_token_file
            .filter(|s| !s.0.is_empty())
            .map(|s| PathBuf::from(s.0));
        if let Some(bind) = &c.admin_bind {
            if !is_host_port(bind) {
                let msg = format!("expected HOST:PORT, found `{bind}`");
                return Err(invalid(fig, "admin_bind", msg));
            }
            if c.admin_token_file.is_none() {
                return Err(invalid(
                    fig,
                    "admin_bind",
                    "the admin API needs a bearer token: set admin_token_file",
                ));
            }
        }
        let admin_path = |s: Option<Str>| s.filter(|s| !s.0.is_empty()).map(|s| PathBuf::from(s.0));
        c.admin_tls = match (
            admin_path(raw.admin_tls_cert_file),
            admin_path(raw.admin_tls_key_file),
        ) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    fig,
                    "admin_tls_cert_file",
                    "a certificate needs a private key: set admin_tls_key_file",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    fig,
                    "admin_tls_key_file",
                    "a private key needs its certificate: set admin_tls_cert_file",
                ))
            }
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert_file: Some(cert),
                key_file: Some(key),
                key_password: None,
                key_file_allow_insecure: raw.admin_tls_key_file_allow_insecure.unwrap_or(false),
                ca_file: None,
                ca_path: None,
                ca_data: None,
                check_hostname: false,
                verify_mode: VerifyMode::None,
            }),
        };

        c.tls = from_figment_tls(fig, Role::Manager)?;
        if c.needs_certificate() {
            if c.tls.cert_file.is_none() {
                return Err(invalid(
                    fig,
                    "tls_cert_file",
                    "the manager's TLS listener needs a certificate",
                ));
            }
            if c.tls.key_file.is_none() {
                return Err(invalid(
                    fig,
                    "tls_key_file",
                    "the manager's TLS listener needs a private key",
                ));
            }
        } else if !fig.contains("tls_cert_file") {
            c.tls.cert_file = None;
            c.tls.key_file = None;
        }
        Ok(c)
    }
}

impl ManagerConfig {
    /// Whether a transport that needs the manager's certificate is enabled (`tls`,
    /// or `websocket` with `websocket.tls`).
    pub fn needs_certificate(&self) -> bool {
        self.transports.contains(&TransportKind::Tls)
            || (self.transports.contains(&TransportKind::WebSocket) && self.websocket.tls)
    }

    /// Checks that the files the configuration names exist: the certificate and
    /// key when [`ManagerConfig::needs_certificate`], `tls_ca_file`,
    /// `tls_ca_path`. Reading them is the TLS transport's job.
    /// When the admin API is on (`admin_bind`), also that `admin_token_file` and the
    /// admin certificate and key exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tls.validate(self.needs_certificate())?;
        if self.admin_bind.is_none() {
            return Ok(());
        }
        let files = [
            ("admin_token_file", self.admin_token_file.as_deref()),
            (
                "admin_tls_cert_file",
                self.admin_tls.as_ref().and_then(|t| t.cert_file.as_deref()),
            ),
            (
                "admin_tls_key_file",
                self.admin_tls.as_ref().and_then(|t| t.key_file.as_deref()),
            ),
        ];
        for (key, path) in files {
            if let Some(path) = path.filter(|p| !p.is_file()) {
                return Err(ConfigError::MissingFile {
                    key,
                    path: path.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// `DATA_BASE_DIR/agents.yml`.
    pub fn agents_file(&self) -> PathBuf {
        self.data_base_dir.join("agents.yml")
    }
}

#[cfg(test)]
mod amqp_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{AgentConfig, ConfigFile};

    #[test]
    fn amqp_url_is_one_or_a_list_and_queue_type_defaults_to_classic() {
        let one = "transports: [amqp]\namqp:\n  url: amqp://m:p@rmq1:5672/rp\n";
        let c = ManagerConfig::from_yaml_str(one).unwrap();
        assert_eq!(c.amqp.url, "amqp://m:p@rmq1:5672/rp");
        assert_eq!(c.amqp.urls, ["amqp://m:p@rmq1:5672/rp"]);
        assert_eq!(c.amqp.queue_type, AmqpQueueType::Classic);
        let list = "transports: [amqp]\namqp:\n  url: [amqp://m:p@rmq1/rp, amqps://m:p@rmq2/rp]\n  queue_type: quorum\n";
        let c = ManagerConfig::from_yaml_str(list).unwrap();
        assert_eq!(c.amqp.urls.len(), 2);
        assert_eq!(c.amqp.url, "amqp://m:p@rmq1/rp");
        assert_eq!(c.amqp.queue_type, AmqpQueueType::Quorum);
        assert!(!format!("{c:?}").contains(":p@"));
        let bad = "transports: [amqp]\namqp:\n  url: [amqp://m:p@rmq1/rp, http://x/]\n";
        assert!(ManagerConfig::from_yaml_str(bad).is_err());
        let bad = "amqp:\n  queue_type: stream\n";
        assert!(ManagerConfig::from_yaml_str(bad).is_err());
        let d = ManagerConfig::default();
        assert_eq!(d.amqp.urls, std::slice::from_ref(&d.amqp.url));

        let a = AgentConfig::from_yaml_str(
            "transport: amqp\namqp:\n  url:\n    - amqp://a:p@rmq1/rp\n    - amqp://a:p@rmq2/rp\n",
        )
        .unwrap();
        assert_eq!(a.amqp.urls, ["amqp://a:p@rmq1/rp", "amqp://a:p@rmq2/rp"]);
        assert_eq!(a.amqp.url, "amqp://a:p@rmq1/rp");
        let a = AgentConfig::from_yaml_str("manager_host: mgr\n").unwrap();
        assert_eq!(a.amqp.urls, ["amqp://mgr:5672/%2f"]);
    }
}
