//! The [`Manager`]'s operations on agents wherever they are in the cluster: the agent
//! list and the nodes, calls, notifications and commands routed to the node holding
//! the agent's session (this one, else the one the directory names, else
//! [`ManagerError::NotConnected`]), joining and watching events.

use std::sync::Arc;
use std::time::Duration;

use redpepper_core::{Kwargs, Session, Value};
use tokio::sync::broadcast;

use super::{Cluster, ClusterSettings};
use crate::agents::AgentInfo;
use crate::commands::CommandRun;
use crate::error::ManagerError;
use crate::server::Manager;

/// Where an agent's session is.
pub(crate) enum Route {
    Local(Session),
    Remote(Arc<Cluster>, String),
}

impl Manager {
    /// Join a cluster over `link` (the AMQP link [`Manager::start`] builds from
    /// `cluster:`, or an in-memory [`redpepper_cluster::MemoryHub`] link): this node
    /// takes the link's node name, announces its agents, and from then on sees and
    /// reaches every node's agents. Fails when it already joined one, or when the link's
    /// events were already taken.
    pub fn join_cluster(
        &self,
        link: Arc<dyn redpepper_cluster::ClusterLink>,
        settings: ClusterSettings,
    ) -> Result<(), ManagerError> {
        crate::cluster::start(&self.inner, link, settings)
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.get()
    }

    /// Connected agents, sorted by id: every node's in a cluster (for an id connected
    /// to several nodes at once, briefly, the session here, else the newest).
    pub fn agents(&self) -> Vec<AgentInfo> {
        let mut all = self.inner.agents.infos(self.node_name());
        if let Some(cluster) = self.cluster() {
            let local: std::collections::HashSet<String> =
                all.iter().map(|a| a.id.clone()).collect();
            all.extend(
                cluster
                    .remote_agents()
                    .into_iter()
                    .filter(|a| !local.contains(&a.id)),
            );
            all.sort_by(|a, b| a.id.cmp(&b.id));
        }
        all
    }

    /// This manager's node name (`cluster.node`; for a lone manager its default, the
    /// host name).
    pub fn node_name(&self) -> &str {
        match self.cluster() {
            Some(c) => &c.node,
            None => &self.inner.node,
        }
    }

    /// The nodes of the cluster, this one first, then the others by name (dead ones
    /// for a while); a lone manager lists itself.
    pub fn cluster_nodes(&self) -> Vec<crate::cluster::NodeInfo> {
        match self.cluster() {
            Some(c) => c.node_infos(self.inner.agents.len()),
            None => vec![crate::cluster::NodeInfo {
                name: self.inner.node.clone(),
                state: crate::cluster::NodeState::Local,
                agents: self.inner.agents.len(),
                last_heartbeat: None,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started: None,
            }],
        }
    }

    /// Where `agent`'s session is: here, on another node, nowhere.
    pub(crate) fn route(&self, agent: &str) -> Result<Route, ManagerError> {
        if let Some(session) = self.session(agent) {
            return Ok(Route::Local(session));
        }
        if let Some(cluster) = self.cluster() {
            if let Some(node) = cluster.locate(agent) {
                return Ok(Route::Remote(cluster.clone(), node));
            }
        }
        Err(ManagerError::NotConnected(agent.to_owned()))
    }

    /// Wait until `agent` is connected to any node of the cluster (this one included),
    /// or `timeout` passes; true when it is.
    pub async fn wait_for_agent_anywhere(&self, agent: &str, timeout: Duration) -> bool {
        let mut events = self.events();
        let wait = async {
            loop {
                if self.route(agent).is_ok() {
                    return true;
                }
                match events.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Call `method` on `agent` (through the node holding its session, in a cluster).
    pub async fn call(
        &self,
        agent: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
        timeout: Duration,
    ) -> Result<Value, ManagerError> {
        let session = match self.route(agent)? {
            Route::Local(session) => session,
            Route::Remote(cluster, node) => {
                return cluster
                    .forward_call(&node, agent, (method, args, kwargs), timeout)
                    .await
            }
        };
        session
            .call_with_timeout(method, args, kwargs, timeout)
            .await
            .map_err(|source| ManagerError::Call {
                agent: agent.to_owned(),
                source,
            })
    }

    /// Send notification `kind` with `data` to `agent` (through the node holding its
    /// session, in a cluster).
    pub async fn notify(&self, agent: &str, kind: &str, data: Value) -> Result<(), ManagerError> {
        let session = match self.route(agent)? {
            Route::Local(session) => session,
            Route::Remote(cluster, node) => {
                return cluster.forward_notify(&node, agent, kind, data).await
            }
        };
        session
            .notify(kind, data)
            .await
            .map_err(|source| ManagerError::Call {
                agent: agent.to_owned(),
                source,
            })
    }

    /// Say that someone here watches the event stream, until the guard is dropped: the
    /// other nodes of the cluster then send this node their events too (agents
    /// connecting and leaving come from every node regardless).
    pub fn watch_events(&self) -> crate::cluster::EventWatch {
        crate::cluster::EventWatch::new(&self.inner.watchers, || {
            // Tell the other nodes now rather than at the next heartbeat.
            if let Some(cluster) = self.cluster() {
                cluster.heartbeat();
            }
        })
    }

    /// Start RedPepper operation `cmdtype` (e.g. `echo.Echo`) on `agent` with the
    /// `command` request; follow it with the returned [`CommandRun`].
    pub async fn run_command(
        &self,
        agent: &str,
        cmdtype: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<CommandRun, ManagerError> {
        let route = self.route(agent)?;
        // Forgotten when dropped: on an error below, or when this future is dropped.
        let run = match &route {
            Route::Local(session) => self.inner.commands.register(agent, session),
            Route::Remote(_, node) => self.inner.commands.register_remote(agent, node),
        };
        let request_kwargs = vec![
            ("id".to_owned(), Value::from(run.id.as_str())),
            ("cmdtype".to_owned(), Value::from(cmdtype)),
            ("args".to_owned(), Value::Array(args)),
            (
                "kwargs".to_owned(),
                Value::Map(
                    kwargs
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), v))
                        .collect(),
                ),
            ),
        ];
        match route {
            Route::Local(session) => {
                if let Err(source) = session.call("command", vec![], request_kwargs).await {
                    return Err(ManagerError::Call {
                        agent: agent.to_owned(),
                        source,
                    });
                }
            }
            Route::Remote(cluster, node) => {
                let timeout = self.inner.session_config.call_timeout;
                cluster
                    .forward_call(&node, agent, ("command", vec![], request_kwargs), timeout)
                    .await?;
            }
        }
        Ok(run)
    }

    /// Ask `agent` to stop command `command_id` (our `cancel` request, kwargs `{id}`, on
    /// the agent's current session). `Ok(true)`: a running command was told to stop;
    /// `Ok(false)`: the agent knows no such running command, or cannot cancel at all
    /// (RedPepper 0.3.4 answers "Method cancel not found"). The command's result, if
    /// any, still comes as its `command_result`.
    pub async fn cancel_command(
        &self,
        agent: &str,
        command_id: &str,
    ) -> Result<bool, ManagerError> {
        let kwargs = vec![("id".to_owned(), Value::from(command_id))];
        let answer = match self.route(agent)? {
            Route::Local(session) => session.call("cancel", vec![], kwargs).await,
            Route::Remote(cluster, node) => {
                let timeout = self.inner.session_config.call_timeout;
                match cluster
                    .forward_call(&node, agent, ("cancel", vec![], kwargs), timeout)
                    .await
                {
                    Ok(v) => Ok(v),
                    Err(ManagerError::Call { source, .. }) => Err(source),
                    Err(e) => return Err(e),
                }
            }
        };
        match answer {
            Ok(answer) => Ok(answer.as_bool().unwrap_or(false)),
            Err(redpepper_core::CallError::Remote(text)) if text == "Method cancel not found" => {
                tracing::debug!(
                    agent,
                    command = command_id,
                    "agent cannot cancel commands (no cancel method)"
                );
                Ok(false)
            }
            Err(source) => Err(ManagerError::Call {
                agent: agent.to_owned(),
                source,
            }),
        }
    }

    /// Disconnect `agent` now with Bye [`DISCONNECTED`](crate::revoke::DISCONNECTED) (in a cluster, on the node
    /// holding its session). It may reconnect at once if agents.yml still admits it;
    /// remove its entry to keep it out.
    pub async fn disconnect(&self, agent: &str) -> Result<(), ManagerError> {
        match self.route(agent)? {
            Route::Local(session) => {
                tracing::info!(agent, "disconnecting agent (operator request)");
                session.close(crate::revoke::DISCONNECTED).await;
                Ok(())
            }
            Route::Remote(cluster, node) => {
                let timeout = self.inner.session_config.call_timeout;
                cluster
                    .forward_call(
                        &node,
                        agent,
                        (crate::revoke::DISCONNECT_METHOD, Vec::new(), Vec::new()),
                        timeout,
                    )
                    .await
                    .map(|_| ())
            }
        }
    }
}
