//! `redpepper-manager --check-config` (as `nginx -t`): load everything the manager
//! would at start (the file, its includes, `REDPEPPER_*` environment, `-c`
//! overrides, certificates and keys, agents.yml, the admin token), bind nothing, and
//! print the effective configuration with secrets redacted. Any error names the key
//! and the file.

use std::path::Path;

use redpepper_config::{AgentRegistry, CheckReport, ConfigFile, ManagerConfig, TransportKind};

use crate::admin::AdminSettings;
use crate::error::ManagerError;

/// Check the configuration loaded from `config_file` and `overrides`; the text to
/// print on success, or the first error.
pub fn check_config(
    config_file: Option<&Path>,
    overrides: &[String],
) -> Result<String, ManagerError> {
    let config = ManagerConfig::load(config_file, overrides)?;
    let loaded = ManagerConfig::load_with_report(config_file, overrides)?;
    let mut report = CheckReport::new();
    let tls_needed = config.transports.contains(&TransportKind::Tls)
        || (config.transports.contains(&TransportKind::WebSocket) && config.websocket.tls);
    if tls_needed {
        redpepper_transports::tls::server_config(&config.tls)?;
        report.ok(
            "tls_cert_file / tls_key_file",
            format!(
                "{} and {}: certificate and key load and match",
                display(config.tls.cert_file.as_deref()),
                display(config.tls.key_file.as_deref())
            ),
        );
    }
    let agents_file = redpepper_config::agents::agents_file(&config.data_base_dir);
    let registry = AgentRegistry::load(&agents_file)?;
    report.ok(
        "agents.yml",
        format!("{}: {} agent(s)", agents_file.display(), registry.len()),
    );
    for problem in registry.problems() {
        report.ok(
            "agents.yml",
            format!(
                "WARNING {}: {problem} (this agent will be refused)",
                agents_file.display()
            ),
        );
    }
    if let Some(settings) = AdminSettings::from_config(&config)? {
        report.ok(
            "admin_token_file",
            format!(
                "{}: token read",
                display(config.admin_token_file.as_deref())
            ),
        );
        if let Some(tls) = &settings.tls {
            redpepper_transports::admin_tls::AdminTlsAcceptor::new(tls)?;
            report.ok(
                "admin_tls_cert_file / admin_tls_key_file",
                format!(
                    "{} and {}: certificate and key load and match",
                    display(tls.cert_file.as_deref()),
                    display(tls.key_file.as_deref())
                ),
            );
        }
    }
    Ok(report.render("redpepper-manager", &loaded))
}

fn display(path: Option<&Path>) -> String {
    path.map_or_else(|| "(none)".to_owned(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_bad_value_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("manager.yml");
        std::fs::write(&file, "bind_port: not-a-port\n").unwrap();
        let e = check_config(Some(&file), &[]).unwrap_err().to_string();
        assert!(e.contains("bind_port"), "{e}");
        assert!(e.contains(&file.display().to_string()), "{e}");
    }
}
