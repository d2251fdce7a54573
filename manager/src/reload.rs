//! SIGHUP: re-read what can change while the manager serves.
//!
//! | what                               | at reload |
//! |------------------------------------|-----------|
//! | agents.yml                         | re-read; agents it no longer admits are disconnected ([`crate::revoke`]) |
//! | `tls_cert_file` / `tls_key_file`   | re-read (agent TLS and `wss://`): new handshakes use them |
//! | `admin_tls_cert_file` / `_key_file`| re-read: new admin connections use them |
//! | `admin_token_file`                 | re-read: the old token is refused from now on |
//! | `log_level`                        | applied (unless `-l` or `RUST_LOG` fixes the level) |
//! | anything else                      | needs a restart: the log names each key that changed |
//!
//! A file that fails to load keeps what was in force and the log says why; the
//! manager stays up whatever the files hold. The configuration file itself is loaded
//! again the way it was at start (same `--config-file` and `-c` overrides); when it
//! fails to load, the files named by the running configuration are re-read.

use std::path::PathBuf;
use std::sync::Mutex;

use redpepper_config::logging::{self, LevelChange};
use redpepper_config::{ConfigFile, ManagerConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::admin::Token;
use crate::server::Manager;

/// What one reload did.
#[derive(Debug, Default, Clone)]
pub struct ReloadReport {
    /// What was reloaded (`agents.yml`, `tls_cert_file /path`, `admin_token_file`,
    /// `log_level`).
    pub reloaded: Vec<String>,
    /// What failed to load (the old one is kept), with why.
    pub failed: Vec<String>,
    /// Keys whose new value needs a restart.
    pub restart_needed: Vec<String>,
    /// Agents disconnected because agents.yml no longer admits them, with why.
    pub revoked: Vec<(String, String)>,
}

/// Reloads a running manager (see the module docs).
#[derive(Debug)]
pub struct Reloader {
    manager: Manager,
    config_file: Option<PathBuf>,
    overrides: Vec<String>,
    /// The configuration in force (the one started with, then each loaded one).
    current: Mutex<ManagerConfig>,
    /// The admin API's token (a clone sharing its cell), when the API is on.
    admin_token: Option<Token>,
    /// `-l` was given: the level stays.
    level_fixed: bool,
}

impl Reloader {
    /// A reloader for `manager`, started with `config` loaded from `config_file` and
    /// `overrides`; `admin_token` is the admin API's token when it is on;
    /// `level_fixed` when `-l` set the log level.
    pub fn new(
        manager: Manager,
        config: ManagerConfig,
        (config_file, overrides): (Option<PathBuf>, Vec<String>),
        admin_token: Option<Token>,
        level_fixed: bool,
    ) -> Self {
        Self {
            manager,
            config_file,
            overrides,
            current: Mutex::new(config),
            admin_token,
            level_fixed,
        }
    }

    fn current(&self) -> ManagerConfig {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reload once, log the outcome (one line for what was reloaded, one per
    /// failure, one for what needs a restart) and return it.
    pub async fn reload(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let old = self.current();
        let new = match ManagerConfig::load(self.config_file.as_deref(), &self.overrides) {
            Ok(new) => Some(new),
            Err(e) => {
                report.failed.push(format!(
                    "configuration: {e} (keeping the running configuration)"
                ));
                None
            }
        };
        let config = new.as_ref().unwrap_or(&old);

        match self.manager.reload_agents().await {
            Ok(revoked) => {
                report.reloaded.push("agents.yml".to_owned());
                report.revoked = revoked;
            }
            Err(e) => report
                .failed
                .push(format!("agents.yml: {e} (keeping the previous agents)")),
        }
        for cert in redpepper_transports::tls::reload_server_certs() {
            let file = cert.cert_file.display();
            match cert.result {
                Ok(subject) => report
                    .reloaded
                    .push(format!("certificate {file} ({subject})")),
                Err(e) => report.failed.push(format!(
                    "certificate {file}: {e} (keeping the previous certificate)"
                )),
            }
        }
        if let (Some(token), Some(path)) = (&self.admin_token, &config.admin_token_file) {
            match Token::load(path) {
                Ok(new_token) => {
                    token.replace(&new_token);
                    report.reloaded.push("admin_token_file".to_owned());
                }
                Err(e) => report
                    .failed
                    .push(format!("{e} (keeping the previous token)")),
            }
        }
        if let Some(new) = &new {
            self.reload_level(new, &mut report);
            report.restart_needed = restart_needed(&old, new);
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = new.clone();
        }
        log(&report);
        report
    }

    fn reload_level(&self, new: &ManagerConfig, report: &mut ReloadReport) {
        if self.level_fixed {
            return;
        }
        let level = new.log_level.as_deref().unwrap_or("INFO");
        match logging::set_level(level, "log_level") {
            Ok(LevelChange::Applied) => report.reloaded.push(format!("log_level {level}")),
            Ok(_) => {}
            Err(e) => report.failed.push(e.to_string()),
        }
    }

    /// Reload at each `()` received on `requests` (the SIGHUP channel), until it
    /// closes.
    pub fn spawn(self, mut requests: mpsc::Receiver<()>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while requests.recv().await.is_some() {
                self.reload().await;
            }
        })
    }
}

fn log(report: &ReloadReport) {
    for failure in &report.failed {
        tracing::error!("reload: {failure}");
    }
    let restart = if report.restart_needed.is_empty() {
        "nothing".to_owned()
    } else {
        report.restart_needed.join(", ")
    };
    tracing::info!(
        reloaded = %report.reloaded.join(", "),
        revoked = report.revoked.len(),
        failed = report.failed.len(),
        needs_restart = %restart,
        "reload done"
    );
}

/// The keys that changed between `old` and `new` and only take effect at a restart.
fn restart_needed(old: &ManagerConfig, new: &ManagerConfig) -> Vec<String> {
    let mut keys = Vec::new();
    let mut check = |key: &str, a: String, b: String| {
        if a != b {
            keys.push(key.to_owned());
        }
    };
    check("bind_host", old.bind_host.clone(), new.bind_host.clone());
    check(
        "bind_port",
        old.bind_port.to_string(),
        new.bind_port.to_string(),
    );
    check(
        "data_base_dir",
        format!("{:?}", old.data_base_dir),
        format!("{:?}", new.data_base_dir),
    );
    check(
        "transports",
        format!("{:?}", old.transports),
        format!("{:?}", new.transports),
    );
    check(
        "tls_cert_file",
        format!("{:?}", old.tls.cert_file),
        format!("{:?}", new.tls.cert_file),
    );
    check(
        "tls_key_file",
        format!("{:?}", old.tls.key_file),
        format!("{:?}", new.tls.key_file),
    );
    let tls_rest = |c: &ManagerConfig| {
        let mut t = c.tls.clone();
        t.cert_file = None;
        t.key_file = None;
        format!("{t:?}")
    };
    check("tls_* (verify mode, CAs)", tls_rest(old), tls_rest(new));
    check(
        "ping_* / max_message_size / hello_timeout",
        format!("{:?}", old.session),
        format!("{:?}", new.session),
    );
    check(
        "websocket",
        format!("{:?}", old.websocket),
        format!("{:?}", new.websocket),
    );
    check("amqp", format!("{:?}", old.amqp), format!("{:?}", new.amqp));
    check(
        "admission",
        format!("{:?}", old.admission),
        format!("{:?}", new.admission),
    );
    check(
        "commands",
        format!("{:?}", old.commands),
        format!("{:?}", new.commands),
    );
    check(
        "cluster",
        format!("{:?}", old.cluster),
        format!("{:?}", new.cluster),
    );
    check(
        "admin_bind",
        format!("{:?}", old.admin_bind),
        format!("{:?}", new.admin_bind),
    );
    check(
        "admin_tls_*",
        format!("{:?}", old.admin_tls),
        format!("{:?}", new.admin_tls),
    );
    if old.admin_token_file.is_some() != new.admin_token_file.is_some() {
        keys.push("admin_token_file".to_owned());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_needed_names_the_changed_keys_only() {
        let old = ManagerConfig::default();
        let mut new = old.clone();
        assert!(restart_needed(&old, &new).is_empty());
        new.bind_port = 7999;
        new.log_level = Some("DEBUG".into());
        new.websocket.path = "/other".into();
        assert_eq!(restart_needed(&old, &new), vec!["bind_port", "websocket"]);
    }
}
