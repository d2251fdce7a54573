//! Build the configured transport: the one place that maps configuration to concrete
//! transport types. The manager and agent only see [`Dialer`] and [`BoxListener`].
//!
//! | setting                          | builds                                      |
//! |----------------------------------|---------------------------------------------|
//! | agent `transport: tls` (default) | [`TlsDialer`] to `manager_host:manager_port`, through `proxy` if set |
//! | manager `transports: [tls]`      | one [`TlsListener`] per address `bind_host` resolves to, on `bind_port` |
//! | `websocket`, `amqp`              | [`TransportsError::Unavailable`] (not in this build yet) |
//!
//! The TLS dialer uses a proxy only when the `proxy` key names one; it does not read
//! `HTTPS_PROXY` (RedPepper never did, and a proxy set for web traffic usually refuses
//! `CONNECT` to port 7051). The environment rules in [`crate::proxy`] are for
//! transports that speak HTTP themselves.

use std::net::SocketAddr;

use redpepper_config::{AgentConfig, ManagerConfig, TransportKind};
use redpepper_core::transport::{BoxListener, Dialer};

use crate::error::TransportsError;
use crate::proxy::{host_port, ProxyUrl};
use crate::tls::{client_config, server_config, TlsDialer, TlsListener};

/// The agent's dialer for its configured `transport`.
pub fn dialer(cfg: &AgentConfig) -> Result<Box<dyn Dialer>, TransportsError> {
    match cfg.transport {
        TransportKind::Tls => Ok(Box::new(tls_dialer(cfg)?)),
        other => Err(TransportsError::Unavailable(other.to_string())),
    }
}

/// The TLS dialer of an agent configuration (whatever its `transport` says).
pub fn tls_dialer(cfg: &AgentConfig) -> Result<TlsDialer, TransportsError> {
    let proxy = cfg
        .proxy
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(ProxyUrl::parse)
        .transpose()
        .map_err(|e| TransportsError::setting("proxy", e.to_string()))?;
    let config = client_config(&cfg.tls)?;
    Ok(TlsDialer::new(
        cfg.manager_host.as_str(),
        cfg.manager_port,
        config,
        cfg.max_message_size,
    )?
    .with_proxy(proxy))
}

/// The manager's listeners for its configured `transports`, bound and ready.
pub async fn listeners(cfg: &ManagerConfig) -> Result<Vec<BoxListener>, TransportsError> {
    let mut out: Vec<BoxListener> = Vec::new();
    for kind in &cfg.transports {
        match kind {
            TransportKind::Tls => {
                for listener in tls_listeners(cfg).await? {
                    out.push(Box::new(listener));
                }
            }
            other => return Err(TransportsError::Unavailable(other.to_string())),
        }
    }
    Ok(out)
}

/// TLS listeners on every address `bind_host` resolves to (an empty `bind_host`
/// means `0.0.0.0`), port `bind_port`.
pub async fn tls_listeners(cfg: &ManagerConfig) -> Result<Vec<TlsListener>, TransportsError> {
    let config = server_config(&cfg.tls)?;
    let host = match cfg.bind_host.trim() {
        "" => "0.0.0.0",
        h => h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h),
    };
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, cfg.bind_port))
        .await
        .map_err(|source| TransportsError::Bind {
            addr: host_port(host, cfg.bind_port),
            source,
        })?
        .collect();
    addrs.sort();
    addrs.dedup();
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener =
            TlsListener::bind(addr, std::sync::Arc::clone(&config), cfg.max_message_size).await?;
        tracing::info!(addr = %addr, "TLS listener bound");
        out.push(listener);
    }
    Ok(out)
}
