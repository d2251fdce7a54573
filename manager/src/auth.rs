//! Authentication of agents against `DATA_BASE_DIR/agents.yml`.

use futures::future::BoxFuture;
use futures::FutureExt;
use redpepper_config::CachedRegistry;
use redpepper_core::codec::AgentHello;
use redpepper_core::{Authenticator, PeerInfo};

/// Checks an agent's hello against the (cached, re-read on change) `agents.yml`: the
/// id must exist, the SHA-256 of the credentials must match `secret_hash` (compared in
/// constant time), and the peer must be inside `allowed_ips` (or, over a broker, be the
/// entry's `amqp_user`). The reason returned on failure names the failed check, for
/// the manager's log only.
#[derive(Debug)]
pub struct RegistryAuthenticator {
    registry: CachedRegistry,
}

impl RegistryAuthenticator {
    /// Authenticate against this registry.
    pub fn new(registry: CachedRegistry) -> Self {
        Self { registry }
    }
}

impl Authenticator for RegistryAuthenticator {
    fn authenticate<'a>(
        &'a self,
        hello: &'a AgentHello,
        peer: &'a PeerInfo,
    ) -> BoxFuture<'a, Result<(), String>> {
        let registry = self.registry.get();
        let verdict = registry
            .authenticate(
                &hello.id,
                &hello.credentials,
                peer.remote_addr.map(|a| a.ip()),
                peer.broker_user.as_deref(),
            )
            .map(|_| ())
            .map_err(|failure| failure.to_string());
        async move { verdict }.boxed()
    }
}
