//! Config writers of the Python peers: [`PyManagerConfig`] (`manager.yml` and its
//! data directory) and [`PyAgentConfig`] (`agent.yml`).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::agents::{write_agents_yml, yaml_str};
use crate::certs::TestCerts;

fn yaml_path(p: &Path) -> String {
    yaml_str(&p.to_string_lossy())
}

/// Settings of a Python manager; [`PyManagerConfig::write`] makes `manager.yml`.
///
/// The API server, which RedPepper 0.3.4 cannot turn off, is parked on
/// `127.0.0.1:0` with no logins, reusing the manager certificate.
#[derive(Debug, Clone)]
pub struct PyManagerConfig {
    /// Directory for `manager.yml`, the command log and the data directory.
    pub dir: PathBuf,
    /// `bind_host`; default `127.0.0.1`.
    pub bind_host: String,
    /// `bind_port`; default 0 (the driver reports the real port).
    pub bind_port: u16,
    /// `tls_cert_file`.
    pub tls_cert_file: PathBuf,
    /// `tls_key_file` (mode 0600).
    pub tls_key_file: PathBuf,
    /// `tls_ca_file`, to verify agent certificates; default none.
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_verify_mode`: `none` (default), `optional` or `required`.
    /// With `none`, `tls_check_hostname` is written as false (Python's ssl
    /// refuses `CERT_NONE` with hostname checking on).
    pub tls_verify_mode: String,
    /// `ping_interval` in seconds; `None` keeps RedPepper's default (30).
    pub ping_interval: Option<u64>,
    /// `ping_timeout` in seconds; `None` keeps RedPepper's default (5).
    pub ping_timeout: Option<u64>,
    /// `max_message_size` in bytes; `None` keeps RedPepper's default (1 MiB).
    pub max_message_size: Option<u64>,
    /// `data_base_dir` (holds `agents.yml`); default `<dir>/data`.
    pub data_dir: PathBuf,
    /// `command_log_file`; default `<dir>/commands.sqlite`.
    pub command_log_file: PathBuf,
    /// Further `key: value` YAML lines, written as given.
    pub extra: Vec<String>,
}

impl PyManagerConfig {
    /// Defaults for a manager in `dir` using the manager certificate of `certs`.
    pub fn new(dir: &Path, certs: &TestCerts) -> Self {
        PyManagerConfig {
            dir: dir.to_path_buf(),
            bind_host: "127.0.0.1".to_string(),
            bind_port: 0,
            tls_cert_file: certs.manager_cert.clone(),
            tls_key_file: certs.manager_key.clone(),
            tls_ca_file: None,
            tls_verify_mode: "none".to_string(),
            ping_interval: None,
            ping_timeout: None,
            max_message_size: None,
            data_dir: dir.join("data"),
            command_log_file: dir.join("commands.sqlite"),
            extra: Vec::new(),
        }
    }

    /// The `manager.yml` text.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(y, "{k}: {v}");
        };
        line("bind_host", yaml_str(&self.bind_host));
        line("bind_port", self.bind_port.to_string());
        line("tls_cert_file", yaml_path(&self.tls_cert_file));
        line("tls_key_file", yaml_path(&self.tls_key_file));
        if let Some(ca) = &self.tls_ca_file {
            line("tls_ca_file", yaml_path(ca));
        }
        line("tls_verify_mode", yaml_str(&self.tls_verify_mode));
        line("tls_check_hostname", "false".to_string());
        if let Some(v) = self.ping_interval {
            line("ping_interval", v.to_string());
        }
        if let Some(v) = self.ping_timeout {
            line("ping_timeout", v.to_string());
        }
        if let Some(v) = self.max_message_size {
            line("max_message_size", v.to_string());
        }
        line("data_base_dir", yaml_path(&self.data_dir));
        line("command_log_file", yaml_path(&self.command_log_file));
        line("api_bind_host", yaml_str("127.0.0.1"));
        line("api_bind_port", "0".to_string());
        line("api_logins", "[]".to_string());
        line("api_tls_cert_file", yaml_path(&self.tls_cert_file));
        line("api_tls_key_file", yaml_path(&self.tls_key_file));
        line(
            "api_session_secret_key",
            yaml_str("redpepper-tests-session-secret"),
        );
        for extra in &self.extra {
            let _ = writeln!(y, "{extra}");
        }
        y
    }

    /// Creates the directories and writes `<dir>/manager.yml`; writes an empty
    /// `agents.yml` unless one exists. Returns the config file's path.
    ///
    /// # Panics
    ///
    /// On I/O errors.
    pub fn write(&self) -> PathBuf {
        fs::create_dir_all(&self.data_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.data_dir.display()));
        let agents = self.data_dir.join("agents.yml");
        if !agents.exists() {
            write_agents_yml(&agents, &[]);
        }
        let path = self.dir.join("manager.yml");
        fs::write(&path, self.to_yaml())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Writes `<data_dir>/agents.yml` with the given entries.
    ///
    /// # Panics
    ///
    /// On I/O errors.
    pub fn write_agents(&self, entries: &[(&str, &str, &[&str])]) {
        fs::create_dir_all(&self.data_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.data_dir.display()));
        write_agents_yml(&self.data_dir.join("agents.yml"), entries);
    }
}

/// Settings of a Python agent; [`PyAgentConfig::write`] makes `agent.yml`.
#[derive(Debug, Clone)]
pub struct PyAgentConfig {
    /// Directory for `agent.yml` and the operation module cache.
    pub dir: PathBuf,
    /// `manager_host`; default `localhost` (the manager certificate's name).
    pub manager_host: String,
    /// `manager_port`.
    pub manager_port: u16,
    /// `agent_id`.
    pub agent_id: String,
    /// `agent_secret`.
    pub agent_secret: String,
    /// `tls_ca_file`: the CA the manager certificate is checked against.
    pub tls_ca_file: PathBuf,
    /// `tls_cert_file`: the agent's client certificate.
    pub tls_cert_file: PathBuf,
    /// `tls_key_file` (mode 0600).
    pub tls_key_file: PathBuf,
    /// `tls_check_hostname`; default true.
    pub tls_check_hostname: bool,
    /// `tls_verify_mode`; default `required`.
    pub tls_verify_mode: String,
    /// `ping_interval` in seconds; `None` keeps RedPepper's default (30).
    pub ping_interval: Option<u64>,
    /// `ping_timeout` in seconds; `None` keeps RedPepper's default (5).
    pub ping_timeout: Option<u64>,
    /// `operation_modules_cache_dir`; default `<dir>/operations` (created by `write`).
    pub operation_modules_cache_dir: PathBuf,
    /// Further `key: value` YAML lines, written as given.
    pub extra: Vec<String>,
}

impl PyAgentConfig {
    /// Defaults for agent `agent_id` in `dir`, dialing `localhost:manager_port`,
    /// with the agent certificate of `certs` and its CA.
    pub fn new(
        dir: &Path,
        certs: &TestCerts,
        manager_port: u16,
        agent_id: &str,
        agent_secret: &str,
    ) -> Self {
        PyAgentConfig {
            dir: dir.to_path_buf(),
            manager_host: "localhost".to_string(),
            manager_port,
            agent_id: agent_id.to_string(),
            agent_secret: agent_secret.to_string(),
            tls_ca_file: certs.ca_cert.clone(),
            tls_cert_file: certs.agent_cert.clone(),
            tls_key_file: certs.agent_key.clone(),
            tls_check_hostname: true,
            tls_verify_mode: "required".to_string(),
            ping_interval: None,
            ping_timeout: None,
            operation_modules_cache_dir: dir.join("operations"),
            extra: Vec::new(),
        }
    }

    /// The `agent.yml` text.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(y, "{k}: {v}");
        };
        line("manager_host", yaml_str(&self.manager_host));
        line("manager_port", self.manager_port.to_string());
        line("agent_id", yaml_str(&self.agent_id));
        line("agent_secret", yaml_str(&self.agent_secret));
        line("tls_ca_file", yaml_path(&self.tls_ca_file));
        line("tls_cert_file", yaml_path(&self.tls_cert_file));
        line("tls_key_file", yaml_path(&self.tls_key_file));
        line("tls_check_hostname", self.tls_check_hostname.to_string());
        line("tls_verify_mode", yaml_str(&self.tls_verify_mode));
        if let Some(v) = self.ping_interval {
            line("ping_interval", v.to_string());
        }
        if let Some(v) = self.ping_timeout {
            line("ping_timeout", v.to_string());
        }
        line(
            "operation_modules_cache_dir",
            yaml_path(&self.operation_modules_cache_dir),
        );
        for extra in &self.extra {
            let _ = writeln!(y, "{extra}");
        }
        y
    }

    /// Creates the directories and writes `<dir>/agent.yml`; returns its path.
    ///
    /// # Panics
    ///
    /// On I/O errors.
    pub fn write(&self) -> PathBuf {
        let cache = &self.operation_modules_cache_dir;
        fs::create_dir_all(cache).unwrap_or_else(|e| panic!("create {}: {e}", cache.display()));
        let path = self.dir.join("agent.yml");
        fs::write(&path, self.to_yaml())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}
