//! Where the manager is, which token to send, which CAs to trust.
//!
//! | what    | first of                                                                     |
//! |---------|------------------------------------------------------------------------------|
//! | URL     | `--manager`, `$REDPEPPER_MANAGER`, `admin_bind` of the manager configuration |
//! | token   | `--token-file` / `$REDPEPPER_ADMIN_TOKEN_FILE`, `$REDPEPPER_ADMIN_TOKEN`, `admin_token_file` |
//! | trust   | `--ca-file` / `$REDPEPPER_ADMIN_CA_FILE`, `admin_tls_cert_file`, plus the system's roots |
//!
//! The configuration is `--config-file`, else `/etc/redpepper/manager.yml` when it
//! exists; it is read only when something above is still missing.

use std::path::{Path, PathBuf};

use redpepper_config::{ConfigFile, ManagerConfig, DEFAULT_MANAGER_CONFIG_FILE};

use crate::cli::Connection;
use crate::client::AdminClient;
use crate::error::CtlError;

/// Environment variable holding the token itself.
pub const TOKEN_ENV: &str = "REDPEPPER_ADMIN_TOKEN";

/// The URL of an `admin_bind` address: a wildcard host becomes loopback.
pub fn url_of_bind(bind: &str, https: bool) -> String {
    let (host, port) = bind.rsplit_once(':').unwrap_or((bind, "7050"));
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" | "::" => "[::1]",
        h => h,
    };
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}:{port}")
}

fn read_token(path: &Path) -> Result<String, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|e| CtlError::File {
        what: "token file",
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CtlError::File {
            what: "token file",
            path: path.to_owned(),
            reason: "is empty".into(),
        });
    }
    Ok(token.to_owned())
}

pub(crate) fn load_config(path: Option<&Path>) -> Result<Option<ManagerConfig>, CtlError> {
    let path: PathBuf = match path {
        Some(p) => p.to_owned(),
        None if Path::new(DEFAULT_MANAGER_CONFIG_FILE).is_file() => {
            PathBuf::from(DEFAULT_MANAGER_CONFIG_FILE)
        }
        None => return Ok(None),
    };
    ManagerConfig::load_with_report(Some(&path), &[])
        .map(|loaded| Some(loaded.config))
        .map_err(|e| CtlError::Config(e.to_string()))
}

/// Resolve the connection settings into a client.
pub fn client(c: &Connection) -> Result<AdminClient, CtlError> {
    let env_token = std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let need_config = c.manager.is_none() || (c.token_file.is_none() && env_token.is_none());
    let config = if need_config || c.config_file.is_some() {
        load_config(c.config_file.as_deref())?
    } else {
        None
    };
    let url = match (&c.manager, &config) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(cfg)) => match &cfg.admin_bind {
            Some(bind) => url_of_bind(bind, cfg.admin_tls.is_some()),
            None => return Err(CtlError::NoManager),
        },
        (None, None) => return Err(CtlError::NoManager),
    };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(CtlError::Usage(format!(
            "manager URL `{url}` must start with http:// or https://"
        )));
    }
    let token = match (&c.token_file, env_token) {
        (Some(path), _) => read_token(path)?,
        (None, Some(token)) => token,
        (None, None) => match config.as_ref().and_then(|c| c.admin_token_file.as_deref()) {
            Some(path) => read_token(path)?,
            None => return Err(CtlError::NoToken),
        },
    };
    let ca_file = c.ca_file.clone().or_else(|| {
        config
            .as_ref()
            .and_then(|c| c.admin_tls.as_ref())
            .and_then(|t| t.cert_file.clone())
    });
    AdminClient::new(url, token, ca_file.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_become_urls() {
        assert_eq!(url_of_bind("0.0.0.0:7050", false), "http://127.0.0.1:7050");
        assert_eq!(url_of_bind("[::]:7050", true), "https://[::1]:7050");
        assert_eq!(
            url_of_bind("admin.example:8443", true),
            "https://admin.example:8443"
        );
    }
}
