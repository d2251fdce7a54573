//! Connected agents: one session per agent id, the newest authenticated one wins.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use redpepper_core::{Session, TransportKind};

/// What an operator sees about one connected agent.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    /// Agent id.
    pub id: String,
    /// The cluster node holding its session (this manager's node name when it is not
    /// in a cluster: `cluster.node`'s default, the host name).
    pub node: String,
    /// Transport it came in over.
    pub transport: TransportKind,
    /// Remote address, where the transport has one.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// Verified client certificate subject, if any.
    pub client_cert_subject: Option<String>,
    /// Broker-validated user, if any.
    pub broker_user: Option<String>,
    /// The version the agent announced.
    pub version: String,
    /// When its session was established.
    pub connected_since: SystemTime,
    /// Last ping round trip.
    pub last_rtt: Option<Duration>,
    /// Our calls to it waiting for an answer.
    pub calls_in_flight: usize,
}

impl AgentInfo {
    fn of(node: &str, id: &str, s: &Session) -> Self {
        let peer = s.peer();
        Self {
            id: id.to_owned(),
            node: node.to_owned(),
            transport: peer.kind,
            remote_addr: peer.remote_addr,
            client_cert_subject: peer.client_cert_subject.clone(),
            broker_user: peer.broker_user.clone(),
            version: s.peer_version().to_owned(),
            connected_since: s.established_at(),
            last_rtt: s.last_rtt(),
            calls_in_flight: s.calls_in_flight(),
        }
    }
}

/// The table of connected agents. Locked only on connect, disconnect and lookups,
/// never per message.
#[derive(Debug, Default)]
pub(crate) struct AgentTable {
    map: Mutex<HashMap<String, Session>>,
}

impl AgentTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a new session; returns the one it replaces.
    pub(crate) fn insert(&self, id: &str, session: Session) -> Option<Session> {
        self.lock().insert(id.to_owned(), session)
    }

    /// Remove `session` if it is still the one registered for `id`.
    pub(crate) fn remove_if_current(&self, id: &str, session: &Session) -> bool {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.same_session(session) => {
                map.remove(id);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.lock().get(id).cloned()
    }

    pub(crate) fn sessions(&self) -> Vec<(String, Session)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn infos(&self, node: &str) -> Vec<AgentInfo> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, s)| AgentInfo::of(node, id, s))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
