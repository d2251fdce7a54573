//! The manager's side of a cluster (docs/CLUSTER.md): membership, the fleet directory,
//! routing calls, notifications and commands to the node holding an agent, one session
//! per agent id cluster-wide. It sees the broker only through
//! [`redpepper_cluster::ClusterLink`].
//!
//! # Layout
//!
//! - this file: [`NodeInfo`], [`EventWatch`], [`ClusterSettings`], and `Cluster`, the
//!   state a joined manager keeps: its own directory (generation, entries), the other
//!   nodes (`directory`), forwarded requests waiting for replies (`pending`).
//! - `api`: the [`Manager`](crate::Manager) methods that reach agents wherever they
//!   are (call, notify, commands, the agent and node lists, joining).
//! - `directory`: the other nodes and their agents, as pure state.
//! - `pending`: forwarded requests by correlation id.
//! - `driver`: the task reading the link and sending heartbeats; serving requests
//!   forwarded by other nodes.
//! - `routing`: calls, notifications and events leaving this node.

mod api;
mod directory;
mod driver;
mod pending;
mod routing;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redpepper_cluster::{AgentEntry, ClusterLink, ClusterMessage, Heartbeat, To, DIRECTORY_CHUNK};
use redpepper_core::quiet::LogLimit;
use redpepper_core::Session;
use tokio::sync::Semaphore;

use directory::Nodes;
pub(crate) use driver::start;
use pending::Pending;

/// Requests from other nodes served at once, at most; over it they are answered with
/// an error at once.
const MAX_SERVING: usize = 4096;

/// "Cannot send to the cluster" lines (other than the link being down): one per 10 s.
static SEND_FAILED: LogLimit = LogLimit::new(Duration::from_secs(10), 1);

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
/// ([`Manager::watch_events`](crate::Manager::watch_events)): while any is alive, this
/// node's heartbeats ask the other nodes for their events.
#[derive(Debug)]
pub struct EventWatch {
    count: Arc<AtomicUsize>,
}

impl EventWatch {
    /// A new guard counted in `count`; `first` runs when it is the only one.
    pub(crate) fn new(count: &Arc<AtomicUsize>, first: impl FnOnce()) -> EventWatch {
        if count.fetch_add(1, Ordering::AcqRel) == 0 {
            first();
        }
        EventWatch {
            count: count.clone(),
        }
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a node takes part in its cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// Time between heartbeats (`cluster.heartbeat`).
    pub heartbeat: Duration,
    /// Heartbeats a node may miss before it counts as dead (`cluster.dead_after`).
    pub dead_after: u32,
    /// How long a dead node stays listed in [`Manager::cluster_nodes`](crate::Manager::cluster_nodes).
    pub forget_after: Duration,
}

impl ClusterSettings {
    /// The settings of `cluster:`.
    pub fn from_config(c: &redpepper_config::ClusterConfig) -> ClusterSettings {
        ClusterSettings {
            heartbeat: c.heartbeat,
            dead_after: c.dead_after,
            ..ClusterSettings::default()
        }
    }

    /// How long a node may stay silent.
    pub fn dead_timeout(&self) -> Duration {
        self.heartbeat * self.dead_after.max(1)
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            heartbeat: Duration::from_secs(1),
            dead_after: 3,
            forget_after: Duration::from_secs(600),
        }
    }
}

/// µs since the Unix epoch.
pub(crate) fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// This node's own agents as the cluster sees them.
#[derive(Default)]
struct LocalDir {
    gen: u64,
    agents: HashMap<String, AgentEntry>,
}

/// A manager's membership of its cluster.
pub(crate) struct Cluster {
    pub(crate) node: String,
    pub(crate) tag: String,
    pub(crate) link: Arc<dyn ClusterLink>,
    pub(crate) settings: ClusterSettings,
    started: SystemTime,
    local: Mutex<LocalDir>,
    nodes: Mutex<Nodes>,
    pending: Pending,
    watchers: Arc<AtomicUsize>,
    /// Some live node watches events (checked before building one to send).
    remote_watching: AtomicBool,
    serving: Arc<Semaphore>,
    link_down: AtomicBool,
    /// Shutting down: nothing more is announced.
    left: AtomicBool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub(crate) fn new(
        link: Arc<dyn ClusterLink>,
        settings: ClusterSettings,
        watchers: Arc<AtomicUsize>,
    ) -> Cluster {
        let node = link.node().to_owned();
        Cluster {
            tag: redpepper_cluster::node_tag(&node),
            node,
            link,
            settings,
            started: SystemTime::now(),
            local: Mutex::default(),
            nodes: Mutex::default(),
            pending: Pending::default(),
            watchers,
            remote_watching: AtomicBool::new(false),
            serving: Arc::new(Semaphore::new(MAX_SERVING)),
            link_down: AtomicBool::new(false),
            left: AtomicBool::new(false),
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, LocalDir> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send, never waiting; a failure is logged (once while the link is down).
    fn send(&self, to: To<'_>, message: &ClusterMessage) -> bool {
        match self.link.send(to, message) {
            Ok(()) => true,
            Err(redpepper_cluster::ClusterError::LinkDown(reason)) => {
                self.note_down(&reason);
                false
            }
            Err(e) => {
                if let Some(others) = SEND_FAILED.admit() {
                    tracing::warn!(kind = message.kind(), error = %e, others_since_last_report = others, "cluster message not sent");
                }
                false
            }
        }
    }

    /// The link is down: say so once, fail forwarded requests.
    fn note_down(&self, reason: &str) {
        if !self.link_down.swap(true, Ordering::AcqRel) {
            tracing::warn!(link = %self.link.describe(), %reason, "cluster link down: agents on other nodes cannot be reached until it is back; this node's agents are served as usual");
        }
        self.pending
            .fail_all(|_, _| crate::ManagerError::ClusterDown(reason.to_owned()));
    }

    fn note_up(&self) {
        if self.link_down.swap(false, Ordering::AcqRel) {
            tracing::info!(link = %self.link.describe(), "cluster link up again");
        }
    }

    /// The entry announcing `session` of agent `id`.
    fn entry(id: &str, session: &Session) -> AgentEntry {
        let peer = session.peer();
        AgentEntry {
            id: id.to_owned(),
            transport: peer.kind.as_str().to_owned(),
            remote_addr: peer.remote_addr.map(|a| a.to_string()),
            version: session.peer_version().to_owned(),
            since_us: micros(session.established_at()),
            last_rtt_us: session
                .last_rtt()
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        }
    }

    /// Agent `id`'s `session` came up here (it replaces any older one of the id).
    pub(crate) fn local_up(&self, id: &str, session: &Session) {
        let agent = Self::entry(id, session);
        let mut local = self.local();
        local.gen += 1;
        local.agents.insert(id.to_owned(), agent.clone());
        if !self.left.load(Ordering::Acquire) {
            let gen = local.gen;
            self.send(To::All, &ClusterMessage::AgentUp { gen, agent });
        }
    }

    /// Agent `id`'s `session` ended here (nothing when a newer one replaced it).
    pub(crate) fn local_down(&self, id: &str, session: &Session, reason: &str) {
        let since_us = micros(session.established_at());
        let mut local = self.local();
        if local.agents.get(id).is_none_or(|e| e.since_us != since_us) {
            return;
        }
        local.agents.remove(id);
        local.gen += 1;
        if !self.left.load(Ordering::Acquire) {
            let message = ClusterMessage::AgentDown {
                gen: local.gen,
                id: id.to_owned(),
                since_us,
                reason: reason.to_owned(),
            };
            self.send(To::All, &message);
        }
    }

    /// Send this node's heartbeat (under the directory's lock: every change up to its
    /// generation was sent before it).
    pub(crate) fn heartbeat(&self) {
        if self.left.load(Ordering::Acquire) {
            return;
        }
        let local = self.local();
        let hb = Heartbeat {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_us: micros(self.started),
            agents: local.agents.len() as u64,
            gen: local.gen,
            interval_ms: u64::try_from(self.settings.heartbeat.as_millis()).unwrap_or(u64::MAX),
            watching_events: self.watchers.load(Ordering::Acquire) > 0,
        };
        self.send(To::All, &ClusterMessage::Heartbeat(hb));
    }

    /// Send `to` a whole copy of this node's directory, in parts.
    fn answer_directory(&self, to: &str) {
        let local = self.local();
        let gen = local.gen;
        let all: Vec<&AgentEntry> = local.agents.values().collect();
        let parts = all.len().div_ceil(DIRECTORY_CHUNK).max(1);
        for i in 0..parts {
            let chunk = all
                .iter()
                .skip(i * DIRECTORY_CHUNK)
                .take(DIRECTORY_CHUNK)
                .map(|e| (*e).clone())
                .collect();
            let message = ClusterMessage::Directory {
                gen,
                first: i == 0,
                last: i + 1 == parts,
                agents: chunk,
            };
            if !self.send(To::Node(to), &message) {
                return;
            }
        }
    }

    /// Leave: `Leaving` to all, then nothing more is announced; the link closes.
    pub(crate) async fn leave(&self) {
        if self.left.swap(true, Ordering::AcqRel) {
            return;
        }
        self.send(To::All, &ClusterMessage::Leaving);
        self.pending
            .fail_all(|_, _| crate::ManagerError::ClusterDown("this node is leaving".to_owned()));
        self.link.close().await;
    }

    /// The node holding `agent`'s newest session elsewhere.
    pub(crate) fn locate(&self, agent: &str) -> Option<String> {
        self.nodes().locate(agent).map(|(n, _)| n.to_owned())
    }

    /// The agents of the other nodes (the newest session of each id).
    pub(crate) fn remote_agents(&self) -> Vec<crate::AgentInfo> {
        let nodes = self.nodes();
        let mut best: HashMap<&str, (&str, &directory::RemoteAgent)> = HashMap::new();
        for (name, view) in nodes.map.iter().filter(|(_, v)| v.alive) {
            for (id, a) in &view.agents {
                match best.get(&**id) {
                    Some((n, b)) if (b.since_us, *n) >= (a.since_us, name.as_str()) => {}
                    _ => {
                        best.insert(id, (name, a));
                    }
                }
            }
        }
        best.into_iter()
            .map(|(id, (node, a))| crate::AgentInfo {
                id: id.to_owned(),
                node: node.to_owned(),
                transport: a.transport,
                remote_addr: a.remote_addr,
                client_cert_subject: None,
                broker_user: None,
                version: a.version.to_string(),
                connected_since: UNIX_EPOCH + Duration::from_micros(a.since_us),
                last_rtt: a.rtt_us.map(|r| Duration::from_micros(u64::from(r))),
                calls_in_flight: 0,
            })
            .collect()
    }

    /// The nodes, this one first, then the others by name.
    pub(crate) fn node_infos(&self, local_agents: usize) -> Vec<NodeInfo> {
        let mut out = vec![NodeInfo {
            name: self.node.clone(),
            state: NodeState::Local,
            agents: local_agents,
            last_heartbeat: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: Some(self.started),
        }];
        let nodes = self.nodes();
        let mut others: Vec<NodeInfo> = nodes
            .map
            .iter()
            .map(|(name, v)| NodeInfo {
                name: name.clone(),
                state: if v.alive {
                    NodeState::Alive
                } else {
                    NodeState::Dead
                },
                agents: v.agents.len(),
                last_heartbeat: v.heard_at,
                version: v.version.clone(),
                started: (v.started_us != 0)
                    .then(|| UNIX_EPOCH + Duration::from_micros(v.started_us)),
            })
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(others);
        out
    }
}
