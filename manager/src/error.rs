//! Manager errors.

use redpepper_core::{CallError, SessionError, TransportError};

/// What went wrong in the manager, or in a request made through it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] redpepper_config::ConfigError),
    /// The transports could not be set up.
    #[error(transparent)]
    Transports(#[from] redpepper_transports::TransportsError),
    /// The admin API could not be set up or started.
    #[error("admin API: {0}")]
    Admin(#[from] crate::admin::AdminError),
    /// A transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The agent is not connected.
    #[error("agent {0} is not connected")]
    NotConnected(String),
    /// A call to an agent failed.
    #[error("agent {agent}: {source}")]
    Call {
        /// The agent.
        agent: String,
        /// Why.
        #[source]
        source: CallError,
    },
    /// A command's result did not arrive.
    #[error("command {id} on agent {agent}: {reason}")]
    Command {
        /// Command id.
        id: String,
        /// The agent.
        agent: String,
        /// What happened instead.
        reason: String,
    },
    /// The node holding the agent's session died or left while the request was on
    /// its way (or before).
    #[error("node {node} holding agent {agent} is gone")]
    NodeGone {
        /// The node.
        node: String,
        /// The agent.
        agent: String,
    },
    /// The link to the other nodes of the cluster is down: requests for agents on
    /// other nodes cannot be forwarded (this node's own agents are served as usual).
    #[error("cluster link is down: {0}")]
    ClusterDown(String),
    /// A request forwarded to the node holding the agent failed there.
    #[error("agent {agent} on node {node}: {reason}")]
    Forwarded {
        /// The node.
        node: String,
        /// The agent.
        agent: String,
        /// What failed.
        reason: String,
    },
    /// Joining the cluster failed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Anything else (I/O on local files ...).
    #[error("{0}")]
    Other(String),
}
