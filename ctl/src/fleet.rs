//! `agents add ID`: a new agent's secret, its `agents.yml` entry and its `agent.yml`
//! lines; with `--write` the entry is appended to `agents.yml` (which the manager
//! re-reads on change). Local only: the manager is not asked.
//!
//! ```text
//! # agents.yml (the manager's data_base_dir)
//! web-7:
//!   secret_hash: "9f86d0…"
//!   allowed_ips: ["10.0.0.0/8"]
//!   data: {"role":"web"}
//!
//! # agent.yml (on the agent's host; keep it 0600)
//! agent_id: web-7
//! agent_secret: "3b1f…"
//! manager_host: mgr.example.net
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::cli::{AddArgs, Connection};
use crate::error::CtlError;
use crate::values::parse_value;
use crate::{output, EXIT_OK};

/// A new secret: 32 random bytes as hex.
fn new_secret() -> Result<String, CtlError> {
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")
        .map_err(|e| file_err("random source", Path::new("/dev/urandom"), e))?;
    std::io::Read::read_exact(&mut f, &mut bytes)
        .map_err(|e| file_err("random source", Path::new("/dev/urandom"), e))?;
    Ok(hex::encode(bytes))
}

fn file_err(what: &'static str, path: &Path, e: impl std::fmt::Display) -> CtlError {
    CtlError::File {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The `agents.yml` entry of `id` (YAML, flow values in JSON form).
pub fn entry_yaml(id: &str, secret: &str, allowed_ips: &[String], data: &Value) -> String {
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    format!(
        "{id}:\n  secret_hash: \"{hash}\"\n  allowed_ips: {}\n  data: {}\n",
        json!(allowed_ips),
        data
    )
}

/// `-d KEY=VALUE` items as the entry's data.
fn data_of(items: &[String]) -> Result<Value, CtlError> {
    let mut map = Map::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| CtlError::Usage(format!("--data {item}: expected KEY=VALUE")))?;
        map.insert(k.to_owned(), parse_value(v)?);
    }
    Ok(Value::Object(map))
}

/// The agents.yml `--write` appends to.
fn agents_file(a: &AddArgs, c: &Connection) -> Result<PathBuf, CtlError> {
    if let Some(p) = &a.agents_file {
        return Ok(p.clone());
    }
    match crate::connect::load_config(c.config_file.as_deref())? {
        Some(cfg) => Ok(redpepper_config::agents::agents_file(&cfg.data_base_dir)),
        None => Err(CtlError::Usage(
            "--write: no manager configuration found to take data_base_dir from; give --agents-file PATH or --config-file PATH".into(),
        )),
    }
}

/// `agents add`.
pub fn add(a: &AddArgs, c: &Connection) -> Result<i32, CtlError> {
    if !redpepper_config::is_valid_id(&a.id) {
        return Err(CtlError::Usage(format!(
            "`{}` is not an agent id: expected [A-Za-z0-9_-]+",
            a.id
        )));
    }
    for net in &a.allowed_ips {
        if net.parse::<ipnet::IpNet>().is_err() && net.parse::<std::net::IpAddr>().is_err() {
            return Err(CtlError::Usage(format!(
                "--allowed-ips {net}: expected a CIDR network"
            )));
        }
    }
    let data = data_of(&a.data)?;
    let secret = new_secret()?;
    let entry = entry_yaml(&a.id, &secret, &a.allowed_ips, &data);
    let host = a
        .manager_host
        .clone()
        .unwrap_or_else(redpepper_config::default_node_name);
    let agent_lines = format!(
        "agent_id: {}\nagent_secret: \"{secret}\"\nmanager_host: {host}\n",
        a.id
    );
    let written = if a.write {
        let path = agents_file(a, c)?;
        append(&path, &a.id, &entry)?;
        Some(path)
    } else {
        None
    };
    if output::structured() {
        crate::commands::print_json(&json!({
            "id": a.id, "agents_yml": entry, "agent_yml": agent_lines,
            "written_to": written.as_ref().map(|p| p.display().to_string()),
        }));
        return Ok(EXIT_OK);
    }
    match &written {
        Some(path) => println!("# appended to {}:\n{entry}", path.display()),
        None => println!("# agents.yml (the manager's data_base_dir):\n{entry}"),
    }
    println!("# agent.yml (on the agent's host; keep it mode 0600):\n{agent_lines}");
    eprintln!("the secret is shown only here: the manager keeps its hash");
    Ok(EXIT_OK)
}

/// Append `entry` to the agents file at `path`, refusing an id it has already.
fn append(path: &Path, id: &str, entry: &str) -> Result<(), CtlError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(file_err("agents file", path, e)),
    };
    let registry = redpepper_config::AgentRegistry::from_yaml_str(&existing, path)
        .map_err(|e| file_err("agents file", path, e))?;
    if registry.get(id).is_some() {
        return Err(CtlError::Usage(format!(
            "agent {id} is in {} already: remove its entry first to replace it",
            path.display()
        )));
    }
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(entry);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| file_err("agents file", path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| file_err("agents file", path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_entry_authenticates_its_secret() {
        let data = data_of(&["role=web".into(), "n=2".into()]).unwrap();
        let entry = entry_yaml("web-7", "s3cret", &["127.0.0.1/32".into()], &data);
        let path = Path::new("agents.yml");
        let r = redpepper_config::AgentRegistry::from_yaml_str(&entry, path).unwrap();
        let e = r.get("web-7").unwrap();
        assert_eq!(e.data["role"].as_str(), Some("web"));
        assert!(r
            .authenticate("web-7", "s3cret", "127.0.0.1".parse().ok(), None)
            .is_ok());
        assert!(r
            .authenticate("web-7", "other", "127.0.0.1".parse().ok(), None)
            .is_err());
    }
}
