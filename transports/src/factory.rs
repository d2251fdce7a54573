//! Build the configured transport: the one place that maps configuration to concrete
//! transport types. The manager and agent only see [`Dialer`] and [`BoxListener`].
//!
//! | setting                          | builds                                      |
//! |----------------------------------|---------------------------------------------|
//! | agent `transport: tls` (default) | [`TlsDialer`] to `manager_host:manager_port`, through `proxy` if set; a [`MultiDialer`] over one per entry when `manager_host` is a list |
//! | manager `transports: [tls]`      | one [`TlsListener`] per address `bind_host` resolves to, on `bind_port`, handshake limit `admission.handshake_timeout` |
//! | agent `transport: websocket`     | [`WsDialer`] to `websocket.url`, through `websocket.proxy` or the proxy environment; a [`MultiDialer`] over one per URL when `websocket.url` is a list |
//! | manager `transports: [websocket]` | one [`WsListener`] per address `websocket.bind` resolves to (wss with the `tls_*` keys when `websocket.tls`), handshake limit `admission.handshake_timeout` |
//! | agent `transport: amqp`          | [`AmqpDialer`] to `amqp.url`, hello on `amqp.queue` (`amqps://`: the `tls_*` settings verify the broker) |
//! | manager `transports: [amqp]`     | one [`AmqpListener`] on `amqp.url`, hello queue `amqp.queue` (shared by the cluster's managers when `cluster` is set), accept backlog `admission.max_pending_amqp` (`amqps://`: broker verified with `tls_ca_*` or the system roots) |
//! | manager `cluster`                | [`cluster_link`]: an [`AmqpClusterLink`] on `cluster.url` (`amqps://` verified as for the AMQP listener) |
//!
//! An agent `transport` list (`[tls, websocket, amqp]`) gets one dialer per entry from
//! [`dialers`], each built as its single-value row above says; the agent walks them.
//!
//! A list of several managers becomes a [`MultiDialer`] (each dial starts from a
//! random entry and tries each once); a single entry is its dialer alone, as before.
//!
//! The TLS dialer uses a proxy only when the `proxy` key names one; it does not read
//! `HTTPS_PROXY` (RedPepper never did, and a proxy set for web traffic usually refuses
//! `CONNECT` to port 7051). The environment rules in [`crate::proxy`] are for
//! transports that speak HTTP themselves: the WebSocket dialer follows them when
//! `websocket.proxy` is not set (see [`crate::ws::proxy_for`]).

use std::net::SocketAddr;
use std::sync::Arc;

use redpepper_cluster::ClusterLink;
use redpepper_config::{AgentConfig, ManagerConfig, TransportKind};
use redpepper_core::transport::{BoxListener, Dialer};

use crate::amqp::cluster::{AmqpClusterLink, LinkOptions, LinkSettings};
use crate::amqp::{
    AmqpDialer, AmqpListener, AmqpOptions, BrokerUrl, BrokerUrls, DEFAULT_HELLO_TTL,
};
use crate::error::TransportsError;
use crate::multi::MultiDialer;
use crate::proxy::{host_port, ProxyUrl};
use crate::tls::{client_config, server_config, TlsDialer, TlsListener};
use crate::ws::{proxy_for, WsDialer, WsListener, WsServerOptions, WsUrl};

/// The agent's dialer for its configured `transport` (the first entry of a list): for
/// `tls` and `websocket` with several managers, a [`MultiDialer`] over them.
pub fn dialer(cfg: &AgentConfig) -> Result<Box<dyn Dialer>, TransportsError> {
    dialer_for(cfg, cfg.transport)
}

/// A `transport` entry: its kind and its dialer.
pub type KindDialer = (TransportKind, Box<dyn Dialer>);

/// One dialer per `transport` entry, in the order they are tried (the agent's
/// fallback list; one entry for a single value), each with its own settings.
pub fn dialers(cfg: &AgentConfig) -> Result<Vec<KindDialer>, TransportsError> {
    cfg.transports()
        .into_iter()
        .map(|kind| Ok((kind, dialer_for(cfg, kind)?)))
        .collect()
}

/// The agent's dialer for transport `kind`, whatever its `transport` says: `tls` to the
/// `manager_host` entries, `websocket` to the `websocket.url` entries (a
/// [`MultiDialer`] when there are several), `amqp` to `amqp.url`.
pub fn dialer_for(
    cfg: &AgentConfig,
    kind: TransportKind,
) -> Result<Box<dyn Dialer>, TransportsError> {
    match kind {
        TransportKind::Tls => Ok(one_or_multi(tls_dialers(cfg)?)),
        TransportKind::WebSocket => Ok(one_or_multi(ws_dialers(cfg)?)),
        TransportKind::Amqp => Ok(Box::new(amqp_dialer(cfg)?)),
        other => Err(not_configurable("transport", other)),
    }
}

/// One dialer as it is; several in a [`MultiDialer`].
fn one_or_multi<D: Dialer>(mut dialers: Vec<D>) -> Box<dyn Dialer> {
    if dialers.len() == 1 {
        if let Some(one) = dialers.pop() {
            return Box::new(one);
        }
    }
    let entries = dialers
        .into_iter()
        .map(|d| Box::new(d) as Box<dyn Dialer>)
        .collect();
    Box::new(MultiDialer::new(entries))
}

/// A transport kind the factory cannot build (the in-memory pair; the configuration
/// does not accept it either).
fn not_configurable(key: &'static str, kind: TransportKind) -> TransportsError {
    TransportsError::setting(key, format!("the `{kind}` transport cannot be configured"))
}

/// The TLS dialers of an agent configuration (whatever its `transport` says), one per
/// `manager_host` entry, in order, each through `proxy` when set.
pub fn tls_dialers(cfg: &AgentConfig) -> Result<Vec<TlsDialer>, TransportsError> {
    let proxy = cfg
        .proxy
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(ProxyUrl::parse)
        .transpose()
        .map_err(|e| TransportsError::setting("proxy", e.to_string()))?;
    if cfg.manager_hosts.is_empty() {
        return Err(TransportsError::setting(
            "manager_host",
            "no manager: expected a host name or IP address",
        ));
    }
    let config = client_config(&cfg.tls)?;
    cfg.manager_hosts
        .iter()
        .map(|entry| {
            Ok(TlsDialer::new(
                entry.host.as_str(),
                entry.port,
                std::sync::Arc::clone(&config),
                cfg.session.max_message_size,
            )?
            .with_proxy(proxy.clone()))
        })
        .collect()
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
            TransportKind::WebSocket => {
                for listener in ws_listeners(cfg).await? {
                    out.push(Box::new(listener));
                }
            }
            TransportKind::Amqp => out.push(Box::new(amqp_listener(cfg).await?)),
            other => return Err(not_configurable("transports", *other)),
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
        let listener = TlsListener::bind(
            addr,
            std::sync::Arc::clone(&config),
            cfg.session.max_message_size,
        )
        .await?
        .with_handshake_timeout(cfg.admission.handshake_timeout);
        tracing::info!(addr = %addr, "TLS listener bound");
        out.push(listener);
    }
    Ok(out)
}

/// The WebSocket dialers of an agent configuration (whatever its `transport` says),
/// one per `websocket.url` entry, in order: `websocket.headers`, the proxy from
/// `websocket.proxy` or the environment (per URL: `NO_PROXY` may exempt some hosts),
/// and for `wss://` the `tls_*` settings.
pub fn ws_dialers(cfg: &AgentConfig) -> Result<Vec<WsDialer>, TransportsError> {
    let urls = &cfg.websocket.urls;
    if urls.is_empty() {
        return Err(TransportsError::setting(
            "websocket.url",
            "no URL: expected ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH",
        ));
    }
    let mut tls = None;
    let mut out = Vec::with_capacity(urls.len());
    for (i, text) in urls.iter().enumerate() {
        let url = WsUrl::parse(text).map_err(|e| entry_error(e, i, urls.len()))?;
        let proxy = proxy_for(
            &url,
            cfg.websocket.proxy.as_deref(),
            crate::proxy::process_env,
        )?;
        let client = if url.is_secure() {
            match &tls {
                Some(config) => Some(std::sync::Arc::clone(config)),
                None => {
                    let config = client_config(&cfg.tls)?;
                    tls = Some(std::sync::Arc::clone(&config));
                    Some(config)
                }
            }
        } else {
            None
        };
        let dialer = WsDialer::new(url, client, cfg.session.max_message_size)
            .map_err(|e| entry_error(e, i, urls.len()))?
            .with_proxy(proxy)
            .with_headers(&cfg.websocket.headers)?;
        out.push(dialer);
    }
    Ok(out)
}

/// `e` about entry `i` of a list of `len`: the entry's place added to the reason when
/// there are several.
fn entry_error(e: TransportsError, i: usize, len: usize) -> TransportsError {
    match e {
        TransportsError::Setting { key, reason } if len > 1 => TransportsError::Setting {
            key,
            reason: format!("entry {} of {len}: {reason}", i + 1),
        },
        other => other,
    }
}

/// WebSocket listeners on every address `websocket.bind` (`HOST:PORT`) resolves to.
pub async fn ws_listeners(cfg: &ManagerConfig) -> Result<Vec<WsListener>, TransportsError> {
    let ws = &cfg.websocket;
    let tls = if ws.tls {
        Some(server_config(&cfg.tls)?)
    } else {
        None
    };
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(ws.bind.as_str())
        .await
        .map_err(|source| TransportsError::Bind {
            addr: ws.bind.clone(),
            source,
        })?
        .collect();
    addrs.sort();
    addrs.dedup();
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let options = WsServerOptions {
            path: ws.path.clone(),
            tls: tls.clone(),
            trusted_proxies: ws.trusted_proxies.clone(),
            max_message_size: cfg.session.max_message_size,
        };
        let listener = WsListener::bind(addr, options)
            .await?
            .with_handshake_timeout(cfg.admission.handshake_timeout);
        tracing::info!(url = %listener.url(), "WebSocket listener bound");
        out.push(listener);
    }
    Ok(out)
}

/// The AMQP dialer of an agent configuration (whatever its `transport` says):
/// `amqp.url`, hello queue `amqp.queue`, the hello's TTL from `hello_timeout`, and for
/// `amqps://` the `tls_*` settings (they verify the broker's certificate).
pub fn amqp_dialer(cfg: &AgentConfig) -> Result<AmqpDialer, TransportsError> {
    let url = BrokerUrls::parse("amqp.url", &cfg.amqp.urls)?;
    let tls = if url.is_tls() {
        Some(client_config(&cfg.tls)?)
    } else {
        None
    };
    let options = AmqpOptions {
        hello_ttl: match cfg.session.hello_timeout {
            t if t.is_zero() => DEFAULT_HELLO_TTL,
            t => t,
        },
        ..AmqpOptions::default()
    };
    Ok(AmqpDialer::new(
        url,
        &cfg.amqp.queue,
        &cfg.agent_id,
        tls,
        cfg.session.max_message_size,
    )?
    .with_options(options)
    .with_manager_user(cfg.amqp.manager_user.clone()))
}

/// The manager's AMQP listener: connected to `amqp.url`, consuming `amqp.queue`.
///
/// For `amqps://` the broker's certificate is verified (always, whatever
/// `tls_verify_mode` says: that setting is about agents' client certificates) against
/// the `tls_ca_*` CAs, or the system's when none is set, and its name against the
/// URL's host unless `tls_check_hostname` is false. No client certificate is sent.
///
/// With `cluster` set the hello queue is shared by the cluster's managers (durable,
/// competing consumers; see [`AmqpOptions::shared_hello_queue`]).
pub async fn amqp_listener(cfg: &ManagerConfig) -> Result<AmqpListener, TransportsError> {
    let url = BrokerUrls::parse("amqp.url", &cfg.amqp.urls)?;
    let tls = if url.is_tls() {
        Some(manager_broker_tls(cfg)?)
    } else {
        None
    };
    AmqpListener::bind(
        url,
        &cfg.amqp.queue,
        tls,
        cfg.session.max_message_size,
        AmqpOptions {
            accept_backlog: cfg.admission.max_pending_amqp,
            shared_hello_queue: cfg.cluster.is_some(),
            quorum_hello_queue: cfg.amqp.queue_type == redpepper_config::AmqpQueueType::Quorum,
            ..AmqpOptions::default()
        },
    )
    .await
}

/// The rustls settings with which the manager verifies a broker (`amqps://`): always
/// verified, whatever `tls_verify_mode` says (that setting is about agents' client
/// certificates), against the `tls_ca_*` CAs or the system's, name checked unless
/// `tls_check_hostname` is false; no client certificate.
fn manager_broker_tls(cfg: &ManagerConfig) -> Result<Arc<rustls::ClientConfig>, TransportsError> {
    let broker_tls = redpepper_config::TlsConfig {
        cert_file: None,
        key_file: None,
        key_password: None,
        verify_mode: redpepper_config::VerifyMode::Required,
        ..cfg.tls.clone()
    };
    client_config(&broker_tls)
}

/// The manager's link to the other managers of its cluster (`cluster` section):
/// connected to one of `cluster.url` (from a random one, then the others; `amqps://`
/// verified as for the AMQP listener), the exchange and this node's queue declared.
///
/// Fails when `cluster` is not set, when a URL is not usable, when no broker can be
/// reached or refuses us (the error names the URL without password and why), and when
/// `cluster.node` is already in use in the cluster.
pub async fn cluster_link(cfg: &ManagerConfig) -> Result<Arc<dyn ClusterLink>, TransportsError> {
    let Some(cluster) = &cfg.cluster else {
        return Err(TransportsError::setting(
            "cluster",
            "no cluster is configured",
        ));
    };
    let urls = cluster
        .urls
        .iter()
        .map(|u| BrokerUrl::parse("cluster.url", u))
        .collect::<Result<Vec<_>, _>>()?;
    let tls = if urls.iter().any(BrokerUrl::is_tls) {
        Some(manager_broker_tls(cfg)?)
    } else {
        None
    };
    let link = AmqpClusterLink::connect(LinkSettings {
        urls,
        tls,
        cluster: cluster.name.clone(),
        node: cluster.node.clone(),
        manager_users: cluster.manager_users.clone(),
        options: LinkOptions::default(),
    })
    .await?;
    Ok(link)
}
