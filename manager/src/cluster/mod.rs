//! The manager's side of a cluster (docs/CLUSTER.md): membership, the fleet directory,
//! routing calls, notifications and commands to the node holding an agent, one session
//! per agent id cluster-wide. It sees the broker only through
//! [`redpepper_cluster::ClusterLink`].

use std::time::SystemTime;

/// What this node knows about one node of its cluster (itself included).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Its state as seen from here.
    pub state: NodeState,
    /// Agents connected to it.
    pub agents: usize,
    /// When its last heartbeat arrived (`None` for this node).
    pub last_heartbeat: Option<SystemTime>,
    /// Its program version.
    pub version: String,
    /// When it started.
    pub started: Option<SystemTime>,
}

/// A node's state as seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// This node.
    Local,
    /// Heard from within `cluster.heartbeat` × `cluster.dead_after`.
    Alive,
    /// Silent for longer, or left; kept in the list for a while.
    Dead,
}

impl NodeState {
    /// `local`, `alive`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Alive => "alive",
            Self::Dead => "dead",
        }
    }
}

/// Held while someone on this node watches the event stream
/// ([`Manager::watch_events`](crate::Manager::watch_events)).
#[derive(Debug, Default)]
pub struct EventWatch {
    _private: (),
}
