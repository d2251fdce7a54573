//! The manager program's life: start, serve until `shutdown`, stop in order.

use redpepper_config::ManagerConfig;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminServer, AdminSettings};
use crate::error::ManagerError;
use crate::server::Manager;

/// Runs the manager `config` describes until `shutdown` is cancelled: binds every
/// configured transport, starts the admin API when `admin_bind` is set, then on
/// shutdown stops the admin API and says Bye to every agent.
///
/// Fails at start (bad admin settings, a listener or the admin API that cannot bind);
/// what has started by then is shut down first.
pub async fn run(config: &ManagerConfig, shutdown: CancellationToken) -> Result<(), ManagerError> {
    let admin_settings = AdminSettings::from_config(config)?;
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
    shutdown.cancelled().await;
    if let Some(admin) = admin {
        admin.shutdown().await;
    }
    manager.shutdown().await;
    tracing::info!("manager stopped");
    Ok(())
}
