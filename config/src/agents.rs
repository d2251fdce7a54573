//! `agents.yml`: the agents a manager accepts, in RedPepper's format.
//!
//! ```yaml
//! webserver1:
//!   secret_hash: 50bb6166...      # hex sha256 of the agent's secret
//!   allowed_ips: 127.0.0.1/32     # a CIDR (or bare IP) or a list of them
//!   amqp_user: webserver1         # ours, optional: the agent's AMQP broker user
//!   data: {}                      # free-form agent data
//! ```
//!
//! [`AgentRegistry`] is one parsed file; [`CachedRegistry`] re-reads the file
//! when it changes.
//!
//! As in RedPepper, one bad entry does not take the others down: an entry that
//! cannot be parsed (bad id, `secret_hash`, `amqp_user`) is refused at
//! authentication with the reason in the manager's log, and an `allowed_ips` item
//! that is not a network (`10.0.0.0/33`, or host bits set as in `10.0.0.1/24`,
//! which Python's `ip_network` rejects too) is left out of that entry's list. Each
//! problem is logged once per load and listed in [`AgentRegistry::problems`]. Only a
//! file that is not YAML or not a mapping is an error of the whole file.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde_yaml::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ConfigError;
use crate::values::{is_valid_id, parse_net};

/// An `allowed_ips` item: a CIDR network or a bare address, refused with host bits
/// set (`10.0.0.1/24`) as Python's `ipaddress.ip_network` refuses it.
fn parse_net_strict(text: &str) -> Result<IpNet, String> {
    let net = parse_net(text)?;
    match IpNet::from_str(text.trim()) {
        Ok(given) if given != net => {
            Err(format!("`{text}` has host bits set (the network is {net})"))
        }
        _ => Ok(net),
    }
}

mod cache;

pub use cache::CachedRegistry;

/// The file name of the agents file inside the manager's `data_base_dir`.
pub const AGENTS_FILE_NAME: &str = "agents.yml";

/// One agent of `agents.yml`.
#[derive(Clone)]
pub struct AgentEntry {
    /// The agent id (`[A-Za-z0-9_-]+`).
    pub id: String,
    /// SHA-256 of the agent's secret (`secret_hash`, 64 hex digits). `None` if the
    /// entry has none: such an agent cannot authenticate.
    pub secret_hash: Option<[u8; 32]>,
    /// `allowed_ips`: networks the agent may connect from. Missing or empty means
    /// no address is allowed (as in RedPepper); `0.0.0.0/0` / `::/0` allow any.
    pub allowed_ips: Vec<IpNet>,
    /// `amqp_user` (ours): the broker user the agent must use on the AMQP
    /// transport. Default none.
    pub amqp_user: Option<String>,
    /// `data`: free-form data for the agent. Default null.
    pub data: Value,
}

impl fmt::Debug for AgentEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentEntry")
            .field("id", &self.id)
            .field("secret_hash", &self.secret_hash.map(|_| "<set>"))
            .field("allowed_ips", &self.allowed_ips)
            .field("amqp_user", &self.amqp_user)
            .field("data", &self.data)
            .finish()
    }
}

impl AgentEntry {
    /// Whether `ip` is inside one of `allowed_ips` (IPv4-mapped IPv6 addresses
    /// are compared as IPv4).
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed_ips.iter().any(|net| net.contains(&ip))
    }

    /// Whether `allowed_ips` places no restriction (contains `0.0.0.0/0` or `::/0`).
    pub fn allows_any_ip(&self) -> bool {
        self.allowed_ips.iter().any(|net| net.prefix_len() == 0)
    }
}

/// Why an authentication failed. For the manager's log only: the agent is
/// only ever told "authentication failed".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No entry with this id.
    #[error("unknown agent")]
    UnknownAgent,
    /// The secret's hash does not match `secret_hash` (or the entry has none).
    #[error("wrong secret")]
    BadSecret,
    /// The peer address is not in `allowed_ips`.
    #[error("address {ip} is not in allowed_ips")]
    IpNotAllowed {
        /// The peer address.
        ip: IpAddr,
    },
    /// The transport knows no peer address, the entry restricts addresses and
    /// names no `amqp_user` that could stand in for the address check.
    #[error("no peer address to check against allowed_ips, and no amqp_user")]
    NoAddressToCheck,
    /// The AMQP user does not match the entry's `amqp_user`.
    #[error("AMQP user does not match amqp_user")]
    AmqpUserMismatch,
    /// The agent's entry in `agents.yml` is invalid.
    #[error("its agents.yml entry is invalid: {problem}")]
    InvalidEntry {
        /// What is wrong with the entry.
        problem: String,
    },
}

/// The parsed contents of one `agents.yml`.
#[derive(Clone, Debug, Default)]
pub struct AgentRegistry {
    agents: HashMap<String, AgentEntry>,
    /// Entries that could not be parsed, by id, with what is wrong.
    invalid: HashMap<String, String>,
    /// Every problem found in the file, one line each.
    problems: Vec<String>,
}

impl AgentRegistry {
    /// Reads `path`. A missing or empty file means no agents (with a warning).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_yaml_str(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("{} does not exist: no agents can connect", path.display());
                Ok(Self::default())
            }
            Err(source) => Err(ConfigError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses `agents.yml` text; `path` is used in messages.
    pub fn from_yaml_str(yaml: &str, path: &Path) -> Result<Self, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            origin: path.display().to_string(),
            message,
        };
        let doc: Value = serde_yaml::from_str(yaml).map_err(|e| parse_err(e.to_string()))?;
        let map = match doc {
            Value::Null => {
                tracing::warn!("{} is empty: no agents can connect", path.display());
                return Ok(Self::default());
            }
            Value::Mapping(map) => map,
            _ => return Err(parse_err("expected a mapping of agent ids".to_owned())),
        };
        let mut registry = AgentRegistry {
            agents: HashMap::with_capacity(map.len()),
            ..Self::default()
        };
        let mut without_secret = 0usize;
        for (key, value) in map {
            match parse_entry(key, value, path, &mut registry.problems) {
                Ok(entry) => {
                    if entry.secret_hash.is_none() {
                        without_secret += 1;
                    }
                    registry.invalid.remove(&entry.id);
                    registry.agents.insert(entry.id.clone(), entry);
                }
                Err((id, e)) => {
                    tracing::error!("{e}: this agent cannot authenticate until it is fixed");
                    registry.problems.push(e.to_string());
                    if let (Some(id), ConfigError::InvalidAgent { message, .. }) = (id, e) {
                        registry.agents.remove(&id);
                        registry.invalid.insert(id, message);
                    }
                }
            }
        }
        if without_secret > 0 {
            tracing::warn!(
                "{without_secret} agent(s) in {} have no secret_hash and cannot authenticate",
                path.display()
            );
        }
        Ok(registry)
    }

    /// The problems found in the file (invalid entries, `allowed_ips` items left
    /// out), one line each; empty for a clean file.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The entry of agent `id`.
    pub fn get(&self, id: &str) -> Option<&AgentEntry> {
        self.agents.get(id)
    }

    /// The number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether there are no agents.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// All agent ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }

    /// Checks an agent's hello: the entry must exist, SHA-256 of `secret` must
    /// equal its `secret_hash` (compared in constant time), and
    /// - with a peer address `ip`: it must be in `allowed_ips` (and an
    ///   `amqp_user` given must match the entry's, if it names one);
    /// - without one (AMQP): `amqp_user` must equal the entry's `amqp_user`; an
    ///   entry naming none passes only if it allows any address.
    pub fn authenticate(
        &self,
        id: &str,
        secret: &str,
        ip: Option<IpAddr>,
        amqp_user: Option<&str>,
    ) -> Result<&AgentEntry, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        self.authenticate_digest(id, &digest, ip, amqp_user)
    }

    /// [`AgentRegistry::authenticate`] with the SHA-256 of the secret rather than the
    /// secret: the manager re-checks connected agents with it when agents.yml changes
    /// (revocation), without keeping their secrets.
    pub fn authenticate_digest(
        &self,
        id: &str,
        digest: &[u8; 32],
        ip: Option<IpAddr>,
        amqp_user: Option<&str>,
    ) -> Result<&AgentEntry, AuthFailure> {
        if let Some(problem) = self.invalid.get(id) {
            return Err(AuthFailure::InvalidEntry {
                problem: problem.clone(),
            });
        }
        let entry = self.agents.get(id).ok_or(AuthFailure::UnknownAgent)?;
        let secret_ok = entry
            .secret_hash
            .is_some_and(|hash| bool::from(hash.ct_eq(digest)));
        if !secret_ok {
            return Err(AuthFailure::BadSecret);
        }
        let expected_user = entry.amqp_user.as_deref();
        match (ip, amqp_user) {
            (Some(ip), user) => {
                if user.is_some() && expected_user.is_some() && user != expected_user {
                    return Err(AuthFailure::AmqpUserMismatch);
                }
                if !entry.ip_allowed(ip) {
                    return Err(AuthFailure::IpNotAllowed { ip });
                }
            }
            (None, user) => match expected_user {
                Some(expected) if user != Some(expected) => {
                    return Err(AuthFailure::AmqpUserMismatch)
                }
                Some(_) => {}
                None if !entry.allows_any_ip() => return Err(AuthFailure::NoAddressToCheck),
                None => {}
            },
        }
        Ok(entry)
    }
}

/// One entry. An error carries the entry's id when it is a string (so that agent
/// is refused with the reason rather than as unknown).
fn parse_entry(
    key: Value,
    value: Value,
    path: &Path,
    problems: &mut Vec<String>,
) -> Result<AgentEntry, (Option<String>, ConfigError)> {
    let id = match key {
        Value::String(s) => s,
        other => {
            return Err((
                None,
                ConfigError::InvalidAgent {
                    path: path.to_owned(),
                    agent: format!("{other:?}"),
                    message: "agent ids must be strings".to_owned(),
                },
            ))
        }
    };
    let err = |message: String| {
        (
            Some(id.clone()),
            ConfigError::InvalidAgent {
                path: path.to_owned(),
                agent: id.clone(),
                message,
            },
        )
    };
    if !is_valid_id(&id) {
        // Such an id can never say hello: nothing to refuse it by.
        return Err((
            None,
            ConfigError::InvalidAgent {
                path: path.to_owned(),
                agent: id.clone(),
                message: "invalid agent id: expected [A-Za-z0-9_-]+".to_owned(),
            },
        ));
    }
    let mut map = match value {
        Value::Mapping(map) => map,
        Value::Null => serde_yaml::Mapping::new(),
        _ => return Err(err("expected a mapping".to_owned())),
    };
    let secret_hash = match map.remove("secret_hash") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(s.trim(), &mut hash)
                .map_err(|_| err("secret_hash: expected 64 hex digits (a SHA-256)".to_owned()))?;
            Some(hash)
        }
        Some(_) => {
            return Err(err(
                "secret_hash: expected 64 hex digits (a SHA-256)".to_owned()
            ))
        }
    };
    let nets: Vec<Value> = match map.remove("allowed_ips") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(one) => vec![one],
    };
    let mut allowed_ips = Vec::with_capacity(nets.len());
    for net in nets {
        let parsed = match net.as_str() {
            Some(text) => parse_net_strict(text),
            None => Err(format!("{net:?} is not a CIDR string")),
        };
        match parsed {
            Ok(net) => allowed_ips.push(net),
            Err(m) => {
                let (_, e) = err(format!("allowed_ips: {m}; this item is left out"));
                tracing::error!("{e}");
                problems.push(e.to_string());
            }
        }
    }
    let amqp_user = match map.remove("amqp_user") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(err("amqp_user: expected a string".to_owned())),
    };
    let data = map.remove("data").unwrap_or(Value::Null);
    Ok(AgentEntry {
        id,
        secret_hash,
        allowed_ips,
        amqp_user,
        data,
    })
}

/// The `agents.yml` path for a data directory.
pub fn agents_file(data_base_dir: &Path) -> PathBuf {
    data_base_dir.join(AGENTS_FILE_NAME)
}
