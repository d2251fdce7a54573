//! Revocation: connected agents that agents.yml no longer admits are disconnected
//! with Bye [`REVOKED`], and an operator can disconnect one agent now
//! ([`Manager::disconnect`], `DELETE /v1/agents/{id}`).
//!
//! The re-check ([`Manager::revoke_unadmitted`]) runs at every reload (SIGHUP) and
//! whenever the agents.yml watcher ([`Manager::watch_agents_file`]) sees the file
//! change. An agent is revoked when its entry is gone or invalid, when its
//! `secret_hash` no longer matches the secret it authenticated with, or when its
//! address (`allowed_ips`) or broker user (`amqp_user`) is no longer allowed; its next
//! hello fails authentication like any other.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use redpepper_config::AgentRegistry;

use crate::error::ManagerError;
use crate::server::Manager;

/// The Bye reason sent to a revoked agent.
pub const REVOKED: &str = "revoked";

/// The Bye reason of [`Manager::disconnect`].
pub const DISCONNECTED: &str = "disconnected by an operator";

/// The internal method a node forwards to the node holding an agent's session to
/// disconnect it (never sent to an agent).
pub(crate) const DISCONNECT_METHOD: &str = "$redpepper.disconnect";

/// How often the agents.yml watcher looks at the file.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

impl Manager {
    /// Re-check every agent connected to this node against `registry`, and
    /// disconnect with Bye [`REVOKED`] those it no longer admits. Returns the agents
    /// disconnected with why (for the log). A manager not started from a
    /// configuration (no agents.yml) revokes nothing.
    pub async fn revoke_unadmitted(&self, registry: &AgentRegistry) -> Vec<(String, String)> {
        let Some(auth) = self.inner.registry.get() else {
            return Vec::new();
        };
        let revoked: Vec<_> = self
            .inner
            .agents
            .sessions()
            .into_iter()
            .filter_map(|(id, session)| {
                let why = auth.recheck(registry, &id, session.peer())?;
                Some((id, why, session))
            })
            .collect();
        join_all(revoked.iter().map(|(id, why, session)| async move {
            tracing::warn!(agent = %id, reason = %why, "agent revoked: agents.yml no longer admits it; disconnecting");
            session.close(REVOKED).await;
        }))
        .await;
        revoked.into_iter().map(|(id, why, _)| (id, why)).collect()
    }

    /// Re-read agents.yml now and revoke what it no longer admits. On a file that
    /// fails to load the previous agents are kept (nobody is revoked) and the error
    /// returned.
    pub async fn reload_agents(&self) -> Result<Vec<(String, String)>, ManagerError> {
        let Some(auth) = self.inner.registry.get().cloned() else {
            return Ok(Vec::new());
        };
        let registry = auth.registry().reload()?;
        Ok(self.revoke_unadmitted(&registry).await)
    }

    /// Start the agents.yml watcher: every 2 s the file is looked at (modification
    /// time and length); when it changed and parses, connected agents are re-checked.
    /// Ends at shutdown.
    pub fn watch_agents_file(&self) {
        let Some(auth) = self.inner.registry.get().cloned() else {
            return;
        };
        let manager = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            let mut last = auth.registry().get();
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = auth.registry().get();
                if !Arc::ptr_eq(&now, &last) {
                    manager.revoke_unadmitted(&now).await;
                    last = now;
                }
            }
        });
    }
}
