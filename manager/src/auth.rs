//! Authentication of agents against `DATA_BASE_DIR/agents.yml`, and the re-check of
//! connected agents when the file changes (revocation, see [`crate::revoke`]).

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;
use redpepper_config::{AgentRegistry, CachedRegistry};
use redpepper_core::codec::AgentHello;
use redpepper_core::{Authenticator, PeerInfo};
use sha2::{Digest, Sha256};

/// Checks an agent's hello against the (cached, re-read on change) `agents.yml`: the
/// id must exist, the SHA-256 of the credentials must match `secret_hash` (compared in
/// constant time), and the peer must be inside `allowed_ips` (or, over a broker, be the
/// entry's `amqp_user`). The reason returned on failure names the failed check, for
/// the manager's log only.
///
/// It remembers the SHA-256 of the secret each agent id last authenticated with (the
/// value agents.yml holds anyway, never the secret), so that [`Self::recheck`] can
/// tell whether a connected agent would still be admitted by a new agents.yml.
#[derive(Debug)]
pub struct RegistryAuthenticator {
    registry: CachedRegistry,
    /// Agent id -> SHA-256 of the secret of its last successful hello. At most one
    /// entry per agents.yml id.
    admitted: Mutex<HashMap<String, [u8; 32]>>,
}

impl RegistryAuthenticator {
    /// Authenticate against this registry.
    pub fn new(registry: CachedRegistry) -> Self {
        Self {
            registry,
            admitted: Mutex::default(),
        }
    }

    /// The agents.yml followed.
    pub fn registry(&self) -> &CachedRegistry {
        &self.registry
    }

    fn admitted(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u8; 32]>> {
        self.admitted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why agent `id`, connected with `peer`, is no longer admitted by `registry`
    /// (entry removed or invalid, secret hash changed, address or broker user no
    /// longer allowed); `None` when it still is. For the log only.
    pub fn recheck(&self, registry: &AgentRegistry, id: &str, peer: &PeerInfo) -> Option<String> {
        let digest = self.admitted().get(id).copied();
        let verdict = match digest {
            Some(digest) => registry
                .authenticate_digest(
                    id,
                    &digest,
                    peer.remote_addr.map(|a| a.ip()),
                    peer.broker_user.as_deref(),
                )
                .map(|_| ())
                .map_err(|f| f.to_string()),
            // Admitted before this authenticator knew it: only its entry can be checked.
            None if registry.get(id).is_none() => Err("agent not in agents.yml".to_owned()),
            None => Ok(()),
        };
        verdict.err()
    }
}

impl Authenticator for RegistryAuthenticator {
    fn authenticate<'a>(
        &'a self,
        hello: &'a AgentHello,
        peer: &'a PeerInfo,
    ) -> BoxFuture<'a, Result<(), String>> {
        let registry = self.registry.get();
        let digest: [u8; 32] = Sha256::digest(hello.credentials.as_bytes()).into();
        let verdict = registry
            .authenticate_digest(
                &hello.id,
                &digest,
                peer.remote_addr.map(|a| a.ip()),
                peer.broker_user.as_deref(),
            )
            .map(|_| ())
            .map_err(|failure| failure.to_string());
        if verdict.is_ok() {
            self.admitted().insert(hello.id.clone(), digest);
        }
        async move { verdict }.boxed()
    }
}
