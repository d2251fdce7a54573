//! The manager program's life: start, serve until `shutdown`, stop in order.

use std::path::PathBuf;

use redpepper_config::ManagerConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminServer, AdminSettings};
use crate::error::ManagerError;
use crate::reload::Reloader;
use crate::server::Manager;

/// Runs the manager `config` describes until `shutdown` is cancelled: binds every
/// configured transport, starts the admin API when `admin_bind` is set, then on
/// shutdown stops the admin API and says Bye to every agent.
///
/// Fails at start (bad admin settings, a listener or the admin API that cannot bind);
/// what has started by then is shut down first.
pub async fn run(config: &ManagerConfig, shutdown: CancellationToken) -> Result<(), ManagerError> {
    run_reloadable(config, shutdown, None).await
}

/// How [`run_reloadable`] reloads: what the configuration was loaded from, and the
/// channel of reload requests (the SIGHUP channel of
/// [`redpepper_config::signals::on_signals`]).
#[derive(Debug)]
pub struct ReloadOptions {
    /// `--config-file`.
    pub config_file: Option<PathBuf>,
    /// `-c KEY=VALUE` overrides.
    pub overrides: Vec<String>,
    /// `-l` was given: the log level stays what it says.
    pub level_fixed: bool,
    /// One `()` per reload asked for.
    pub requests: mpsc::Receiver<()>,
}

/// [`run`], also reloading at each request of `reload` (see [`crate::reload`]) and
/// watching agents.yml to revoke agents it no longer admits ([`crate::revoke`]).
pub async fn run_reloadable(
    config: &ManagerConfig,
    shutdown: CancellationToken,
    reload: Option<ReloadOptions>,
) -> Result<(), ManagerError> {
    warn_unsafe_settings(config);
    let admin_settings = AdminSettings::from_config(config)?;
    let admin_token = admin_settings.as_ref().map(|s| s.token.clone());
    let manager = Manager::start(config).await?;
    let admin = match admin_settings {
        Some(settings) => match AdminServer::start(settings, manager.clone()).await {
            Ok(admin) => Some(admin),
            Err(e) => {
                manager.shutdown().await;
                return Err(e.into());
            }
        },
        None => None,
    };
    manager.watch_agents_file();
    let reloader = reload.map(|options| {
        Reloader::new(
            manager.clone(),
            config.clone(),
            (options.config_file, options.overrides),
            admin_token,
            options.level_fixed,
        )
        .spawn(options.requests)
    });
    redpepper_config::service::notify::ready();
    shutdown.cancelled().await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    if let Some(admin) = admin {
        admin.shutdown().await;
    }
    manager.shutdown().await;
    tracing::info!("manager stopped");
    Ok(())
}

/// Say at start, naming the key, where the configuration sends secrets in clear over
/// the network: `amqp.url` as `amqp://` to a broker that is not on this host, and an
/// admin API bound beyond loopback without `admin_tls`.
pub fn warn_unsafe_settings(config: &ManagerConfig) {
    if config
        .transports
        .contains(&redpepper_config::TransportKind::Amqp)
    {
        if let Some(host) = redpepper_config::plain_amqp_remote_host(&config.amqp.url) {
            tracing::warn!(key = "amqp.url", %host, "amqp.url is amqp:// (no TLS) to a broker on another host: broker credentials and every message cross the network in clear; use amqps://");
        }
    }
    if let Some(bind) = &config.admin_bind {
        if config.admin_tls.is_none() && redpepper_config::is_non_loopback_bind(bind) {
            tracing::warn!(key = "admin_bind", %bind, "admin_bind listens beyond loopback without admin_tls: admin tokens and commands cross the network in clear; set admin_tls_cert_file and admin_tls_key_file");
        }
    }
}
