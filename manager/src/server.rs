//! The manager: accept loops over the configured listeners, the agent table, the
//! handler of agents' requests and notifications, and an orderly shutdown. Calls and
//! commands to agents (routed through the cluster) are in [`crate::cluster`]'s `api`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use redpepper_config::{CachedRegistry, ManagerConfig};
use redpepper_core::metrics::Metrics;
use redpepper_core::{
    echo_reply, Authenticator, BoxListener, Event, Handler, HandlerError, Notification, Request,
    Session, SessionConfig, TransportKind, Value,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept;
use crate::admission::{Gate, Limits};
use crate::agents::AgentTable;
use crate::auth::RegistryAuthenticator;
use crate::cluster::{Cluster, ClusterSettings};
use crate::commands::CommandTracker;
use crate::data::{CustomRequests, DataManager};
use crate::error::ManagerError;

/// Events the broadcast ring keeps for slow subscribers (they miss older ones and are
/// told how many with `Lagged`).
const EVENT_RING: usize = 1024;

/// Largest notification data (MessagePack bytes, about) an event carries; above it the
/// event keeps only the small top-level fields plus `$truncated` (the size). With
/// [`EVENT_RING`] that bounds the ring to about 64 MiB whatever agents send. Commands
/// (`/v1/runs`, [`Manager::run_command`]) always see the whole notification.
pub const EVENT_DATA_LIMIT: usize = 64 * 1024;

/// What happened, for whoever watches the manager (logs, the admin event stream).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ManagerEvent {
    /// A transport connection was accepted (TLS handshake done, no hello yet).
    Accepted {
        /// Transport and address.
        peer: String,
    },
    /// An agent authenticated and its session is up.
    Connected {
        /// Agent id.
        agent: String,
        /// Transport and address.
        peer: String,
    },
    /// An agent failed to authenticate.
    AuthFailed {
        /// The id it claimed.
        agent: String,
        /// Transport and address.
        peer: String,
    },
    /// An agent's session ended.
    Disconnected {
        /// Agent id.
        agent: String,
        /// Why.
        reason: String,
    },
    /// An agent sent a notification.
    Notification {
        /// Agent id.
        agent: String,
        /// The notification.
        notification: Notification,
    },
    /// An event on another node of the cluster (agents connecting to and leaving it
    /// always; the others while someone here watches events).
    Remote {
        /// The node it happened on.
        node: String,
        /// What happened there (never itself `Remote`).
        event: Box<ManagerEvent>,
    },
}

pub(crate) struct Inner {
    /// This node's name (see [`Manager::node_name`]).
    pub(crate) node: String,
    pub(crate) session_config: SessionConfig,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) agents: AgentTable,
    pub(crate) commands: Arc<CommandTracker>,
    pub(crate) events: broadcast::Sender<ManagerEvent>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) listening: Vec<(TransportKind, String, Option<SocketAddr>)>,
    /// The links listeners depend on (AMQP: the broker connection), for `/readyz`.
    pub(crate) links: Vec<(TransportKind, tokio::sync::watch::Receiver<bool>)>,
    pub(crate) metrics: Arc<Metrics>,
    /// Connections between accept and the end of their hello (see [`accept`]).
    pub(crate) admission: Arc<Gate>,
    /// Answers agents' `custom` requests (none: "Method custom not found").
    pub(crate) data: Option<Arc<DataManager>>,
    /// The cluster this manager joined, if any.
    pub(crate) cluster: OnceLock<Arc<Cluster>>,
    /// Live [`crate::cluster::EventWatch`] guards.
    pub(crate) watchers: Arc<AtomicUsize>,
    /// The agents.yml authenticator, when started from a configuration (revocation:
    /// [`crate::revoke`]).
    pub(crate) registry: OnceLock<Arc<RegistryAuthenticator>>,
}

impl Inner {
    /// Publish a local event, and send it to the nodes of the cluster watching events.
    pub(crate) fn send_event(&self, event: ManagerEvent) {
        if let Some(cluster) = self.cluster.get() {
            cluster.local_event(&event);
        }
        let _ = self.events.send(event);
    }
}

/// A running manager. Cheap to clone.
#[derive(Clone)]
pub struct Manager {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("listening", &self.inner.listening)
            .field("agents", &self.inner.agents.len())
            .finish_non_exhaustive()
    }
}

/// Session settings from the manager's configuration: the shared keys
/// ([`SessionSettings::session_config`](redpepper_config::SessionSettings::session_config)),
/// and handler errors are not sent to agents (RedPepper's manager does not expose them).
pub fn session_config(config: &ManagerConfig) -> SessionConfig {
    SessionConfig {
        expose_errors: false,
        ..config.session.session_config()
    }
}

impl Manager {
    /// Bind every configured transport and start serving agents from
    /// `DATA_BASE_DIR/agents.yml`.
    pub async fn start(config: &ManagerConfig) -> Result<Manager, ManagerError> {
        Self::start_with_requests(config, CustomRequests::new()).await
    }

    /// [`Manager::start`], also answering agents' `custom` requests named in
    /// `requests` (the Rust counterpart of RedPepper's site request modules).
    pub async fn start_with_requests(
        config: &ManagerConfig,
        requests: CustomRequests,
    ) -> Result<Manager, ManagerError> {
        let data = DataManager::new(&config.data_base_dir).with_requests(requests);
        let agents_file = redpepper_config::agents::agents_file(&config.data_base_dir);
        let registry = CachedRegistry::open(&agents_file)?;
        let listeners = redpepper_transports::listeners(config).await?;
        let session_config = session_config(config);
        let data = data.with_max_message_size(session_config.max_message_size);
        let authenticator = Arc::new(RegistryAuthenticator::new(registry));
        let manager = Self::start_inner(
            session_config,
            listeners,
            authenticator.clone(),
            Limits::from_config(config),
            Some(Arc::new(data)),
        );
        let _ = manager.inner.registry.set(authenticator);
        manager.set_command_grace(config.commands.grace);
        if let Some(cluster) = &config.cluster {
            let link = match redpepper_transports::cluster_link(config).await {
                Ok(link) => link,
                Err(e) => {
                    manager.shutdown().await;
                    return Err(e.into());
                }
            };
            if let Err(e) = manager.join_cluster(link, ClusterSettings::from_config(cluster)) {
                manager.shutdown().await;
                return Err(e);
            }
        }
        Ok(manager)
    }

    /// How long a command stays pending after its agent's session ended, waiting for
    /// the agent to come back with the result (`commands.grace`; see
    /// [`crate::commands`]). [`Manager::start`] sets it from the configuration; the
    /// other constructors start with zero: lost when the session ends.
    pub fn set_command_grace(&self, grace: Duration) {
        self.inner.commands.set_grace(grace);
    }

    /// [`Manager::start_with`], answering agents' `custom` requests from `data` (its
    /// answers capped to `session_config.max_message_size`).
    pub fn start_with_data(
        session_config: SessionConfig,
        listeners: Vec<BoxListener>,
        authenticator: Arc<dyn Authenticator>,
        data: DataManager,
    ) -> Manager {
        let data = data.with_max_message_size(session_config.max_message_size);
        Self::start_inner(
            session_config,
            listeners,
            authenticator,
            Limits::default(),
            Some(Arc::new(data)),
        )
    }

    /// Serve agents on the given listeners with the given authenticator (library use
    /// and tests).
    ///
    /// Sessions count into `session_config.metrics`, or into a new [`Metrics`] when it
    /// is `None`; either way [`Manager::metrics`] returns it.
    pub fn start_with(
        session_config: SessionConfig,
        listeners: Vec<BoxListener>,
        authenticator: Arc<dyn Authenticator>,
    ) -> Manager {
        Self::start_admitting(session_config, listeners, authenticator, Limits::default())
    }

    /// [`Manager::start_with`], with at most `max_unauthenticated` connections between
    /// accept and the end of their hello (default `admission.max_pending`; see
    /// [`accept`]) and no per-source caps ([`Limits::total`]).
    pub fn start_limited(
        session_config: SessionConfig,
        listeners: Vec<BoxListener>,
        authenticator: Arc<dyn Authenticator>,
        max_unauthenticated: usize,
    ) -> Manager {
        let limits = Limits::total(max_unauthenticated);
        Self::start_admitting(session_config, listeners, authenticator, limits)
    }

    /// [`Manager::start_with`], with these limits on connections not yet
    /// authenticated (see [`crate::admission`]).
    pub fn start_admitting(
        session_config: SessionConfig,
        listeners: Vec<BoxListener>,
        authenticator: Arc<dyn Authenticator>,
        limits: Limits,
    ) -> Manager {
        Self::start_inner(session_config, listeners, authenticator, limits, None)
    }

    fn start_inner(
        mut session_config: SessionConfig,
        listeners: Vec<BoxListener>,
        authenticator: Arc<dyn Authenticator>,
        limits: Limits,
        data: Option<Arc<DataManager>>,
    ) -> Manager {
        let metrics = session_config
            .metrics
            .get_or_insert_with(|| Arc::new(Metrics::default()))
            .clone();
        let listening = listeners
            .iter()
            .map(|l| (l.kind(), l.describe(), l.local_addr()))
            .collect();
        let links = listeners
            .iter()
            .filter_map(|l| l.link_state().map(|state| (l.kind(), state)))
            .collect();
        let (events, _) = broadcast::channel(EVENT_RING);
        let inner = Arc::new(Inner {
            node: redpepper_config::default_node_name(),
            session_config,
            authenticator,
            agents: AgentTable::default(),
            commands: Arc::default(),
            events,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            listening,
            links,
            metrics,
            admission: Gate::new(limits),
            data,
            cluster: OnceLock::new(),
            watchers: Arc::default(),
            registry: OnceLock::new(),
        });
        for listener in listeners {
            tracing::info!(transport = %listener.kind(), address = %listener.describe(), "listening for agents");
            inner.tasks.spawn(accept::accept_loop(
                Arc::downgrade(&inner),
                listener,
                inner.shutdown.clone(),
            ));
        }
        Manager { inner }
    }

    /// What we listen on: transport, description, bound address.
    pub fn listening(&self) -> &[(TransportKind, String, Option<SocketAddr>)] {
        &self.inner.listening
    }

    /// The bound address of the first listener of `kind`.
    pub fn local_addr(&self, kind: TransportKind) -> Option<SocketAddr> {
        self.inner
            .listening
            .iter()
            .find(|(k, _, _)| *k == kind)
            .and_then(|(_, _, a)| *a)
    }

    /// The counters every session of this manager updates.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// Connected agents per transport, for the `redpepper_connected_agents` gauge.
    pub fn connected_per_transport(&self) -> Vec<(TransportKind, usize)> {
        let mut counts: Vec<(TransportKind, usize)> = Vec::new();
        for (_, session) in self.inner.agents.sessions() {
            let kind = session.peer().kind;
            match counts.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((kind, 1)),
            }
        }
        counts
    }

    /// Subscribe to manager events.
    pub fn events(&self) -> broadcast::Receiver<ManagerEvent> {
        self.inner.events.subscribe()
    }

    /// The session of a connected agent.
    pub fn session(&self, agent: &str) -> Option<Session> {
        self.inner.agents.get(agent)
    }

    /// Wait until `agent` is connected to this node (or `timeout` passes).
    pub async fn wait_for_agent(&self, agent: &str, timeout: Duration) -> Option<Session> {
        let mut events = self.events();
        let wait = async {
            loop {
                if let Some(s) = self.session(agent) {
                    return Some(s);
                }
                match events.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// Whether command `id` of `session` is still followed (tests).
    #[cfg(test)]
    pub(crate) fn command_followed(&self, session: &Session, id: &str) -> bool {
        // A progress update for the id finds it only while it is followed.
        let probe = Notification {
            r#type: "command_progress".to_owned(),
            data: Value::Map(vec![(Value::from("command_id"), Value::from(id))]),
        };
        self.inner
            .commands
            .on_notification(session.agent_id().unwrap_or_default(), &probe)
    }

    /// Stop accepting, say Bye "server shutting down" to every agent (their pending
    /// calls fail), and wait for the accept loops to end.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.commands.shutdown();
        // The other nodes forget our agents now, rather than after the heartbeat timeout.
        if let Some(cluster) = self.cluster() {
            cluster.leave().await;
        }
        let sessions = self.inner.agents.sessions();
        tracing::info!(agents = sessions.len(), "shutting down");
        join_all(
            sessions
                .iter()
                .map(|(_, s)| s.close("server shutting down")),
        )
        .await;
        self.inner.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.inner.tasks.wait()).await;
    }
}

/// Serves agents' requests and routes their notifications.
pub(crate) struct ManagerHandler {
    pub(crate) inner: Weak<Inner>,
}

impl Handler for ManagerHandler {
    fn request(
        &self,
        session: &Session,
        request: Request,
    ) -> BoxFuture<'static, Result<Value, HandlerError>> {
        let result = match request.method.as_str() {
            "echo" => Ok(echo_reply(request.args, request.kwargs)),
            "custom" => {
                let data = self.inner.upgrade().and_then(|inner| inner.data.clone());
                if let (Some(data), Some(agent)) = (data, session.agent_id()) {
                    let agent = agent.to_owned();
                    return async move {
                        data.custom(&agent, request.args, request.kwargs)
                            .await
                            .map_err(|e| HandlerError::Refused(e.to_string()))
                    }
                    .boxed();
                }
                Err(HandlerError::MethodNotFound(request.method))
            }
            _ => Err(HandlerError::MethodNotFound(request.method)),
        };
        async move { result }.boxed()
    }

    fn notification(&self, session: &Session, notification: Notification) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let agent = session.agent_id().unwrap_or_default().to_owned();
        let cluster = inner.cluster.get();
        // A command another node started goes there; ours to our tracker.
        if !cluster.is_some_and(|c| c.route_command_update(&agent, &notification)) {
            inner.commands.on_notification(&agent, &notification);
        }
        let event = ManagerEvent::Notification {
            agent,
            notification: crate::admin::capped_notification(notification, EVENT_DATA_LIMIT),
        };
        if let Some(cluster) = cluster {
            cluster.local_event(&event);
        }
        let _ = inner.events.send(event);
    }

    fn event(&self, session: &Session, event: &Event) {
        let Event::Closed(reason) = event else { return };
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let Some(agent) = session.agent_id() else {
            return;
        };
        let reason = reason.to_string();
        inner.commands.session_gone(session, &reason);
        if inner.agents.remove_if_current(agent, session) {
            if let Some(cluster) = inner.cluster.get() {
                cluster.local_down(agent, session, &reason);
            }
            tracing::info!(agent, %reason, "agent disconnected");
            let _ = inner.events.send(ManagerEvent::Disconnected {
                agent: agent.to_owned(),
                reason,
            });
        }
    }
}
