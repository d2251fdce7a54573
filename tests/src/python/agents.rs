//! RedPepper's `agents.yml`: who may connect, with which secret, from where, as
//! which broker user; and [`yaml_str`], the quoting every config writer uses.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of `secret`: an `agents.yml` `secret_hash`.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// One agent of an `agents.yml`.
#[derive(Debug, Clone, Copy)]
pub struct AgentEntry<'a> {
    /// The agent id.
    pub id: &'a str,
    /// Hex SHA-256 of its secret ([`sha256_hex`]).
    pub secret_hash: &'a str,
    /// IP ranges it may connect from.
    pub allowed_ips: &'a [&'a str],
    /// Its broker user over AMQP, if any.
    pub amqp_user: Option<&'a str>,
}

/// RedPepper `agents.yml` text for `entries` (`{}` for none).
pub fn agents_yml_entries<'a>(entries: impl IntoIterator<Item = AgentEntry<'a>>) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(out, "{}:", yaml_str(e.id));
        let _ = writeln!(out, "  secret_hash: {}", yaml_str(e.secret_hash));
        let _ = writeln!(out, "  allowed_ips:");
        for range in e.allowed_ips {
            let _ = writeln!(out, "    - {}", yaml_str(range));
        }
        if let Some(user) = e.amqp_user {
            let _ = writeln!(out, "  amqp_user: {}", yaml_str(user));
        }
        let _ = writeln!(out, "  data: {{}}");
    }
    if out.is_empty() {
        out.push_str("{}\n");
    }
    out
}

/// RedPepper `agents.yml` text for `(agent id, secret, allowed IP ranges)` entries.
pub fn agents_yml(entries: &[(&str, &str, &[&str])]) -> String {
    let hashes: Vec<String> = entries.iter().map(|(_, s, _)| sha256_hex(s)).collect();
    agents_yml_entries(
        entries
            .iter()
            .zip(&hashes)
            .map(|((id, _, allowed_ips), hash)| AgentEntry {
                id,
                secret_hash: hash,
                allowed_ips,
                amqp_user: None,
            }),
    )
}

/// Writes [`agents_yml`] to `path`.
///
/// # Panics
///
/// On I/O errors.
pub fn write_agents_yml(path: &Path, entries: &[(&str, &str, &[&str])]) {
    fs::write(path, agents_yml(entries))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}
