//! What this node knows about the other nodes: their heartbeats and their agents. Pure
//! state: time is passed in, the changes it makes are returned for the caller to act on
//! (events, commands, identity), nothing here sends or logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use redpepper_cluster::{node_tag, AgentEntry, Heartbeat};
use redpepper_core::TransportKind;

/// One agent of another node, kept small: the id is the map key, the version is shared
/// between the agents of a node that announce the same one.
#[derive(Debug, Clone)]
pub(crate) struct RemoteAgent {
    pub(crate) transport: TransportKind,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) version: Arc<str>,
    pub(crate) since_us: u64,
    pub(crate) rtt_us: Option<u32>,
}

/// A change to the directory, for the caller to turn into events and actions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Agent `id` is (now) on `node`, its session established at `since_us`.
    Up {
        node: String,
        id: String,
        since_us: u64,
        peer: String,
    },
    /// Agent `id` left `node`.
    Down {
        node: String,
        id: String,
        reason: String,
    },
}

/// One other node.
#[derive(Debug)]
pub(crate) struct NodeView {
    pub(crate) alive: bool,
    /// When its last heartbeat arrived (monotonic; wall clock for display).
    pub(crate) heard: Instant,
    pub(crate) heard_at: Option<SystemTime>,
    pub(crate) version: String,
    /// Its incarnation (0: not heard from by heartbeat yet).
    pub(crate) started_us: u64,
    pub(crate) interval: Duration,
    pub(crate) watching: bool,
    /// Its directory generation applied here (`None`: not known, a copy is needed).
    gen: Option<u64>,
    /// When a copy of its directory was last asked for.
    requested: Option<Instant>,
    /// The copy being received, part by part.
    building: Option<HashMap<Box<str>, RemoteAgent>>,
    pub(crate) agents: HashMap<Box<str>, RemoteAgent>,
    /// Its command-id tag.
    pub(crate) tag: String,
    /// When it went dead (forgotten some time later).
    dead_since: Option<Instant>,
}

impl NodeView {
    fn new(name: &str, now: Instant) -> NodeView {
        NodeView {
            alive: true,
            heard: now,
            heard_at: None,
            version: String::new(),
            started_us: 0,
            interval: Duration::from_secs(1),
            watching: false,
            gen: None,
            requested: None,
            building: None,
            agents: HashMap::new(),
            tag: node_tag(name),
            dead_since: None,
        }
    }

    /// Whether a copy of its directory may be asked for now (one outstanding request
    /// per `patience`).
    fn may_request(&mut self, now: Instant, patience: Duration) -> bool {
        if self
            .requested
            .is_some_and(|at| now.duration_since(at) < patience)
        {
            return false;
        }
        self.requested = Some(now);
        true
    }

    fn clear(&mut self, name: &str, reason: &str) -> Vec<Change> {
        self.building = None;
        self.gen = None;
        self.agents
            .drain()
            .map(|(id, _)| Change::Down {
                node: name.to_owned(),
                id: id.into(),
                reason: reason.to_owned(),
            })
            .collect()
    }

    fn convert(&self, e: &AgentEntry) -> RemoteAgent {
        // Share the version text with an agent of this node announcing the same.
        let version = self
            .agents
            .values()
            .next()
            .filter(|a| *a.version == *e.version)
            .map_or_else(|| Arc::from(e.version.as_str()), |a| a.version.clone());
        RemoteAgent {
            transport: match e.transport.as_str() {
                "tls" => TransportKind::Tls,
                "websocket" => TransportKind::WebSocket,
                "amqp" => TransportKind::Amqp,
                _ => TransportKind::Memory,
            },
            remote_addr: e.remote_addr.as_deref().and_then(|a| a.parse().ok()),
            version,
            since_us: e.since_us,
            rtt_us: e.last_rtt_us.map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
        }
    }
}

/// `transport://address` of a remote agent, as local events show peers.
pub(crate) fn peer_text(a: &RemoteAgent) -> String {
    match a.remote_addr {
        Some(addr) => format!("{}://{addr}", a.transport),
        None => format!("{}://?", a.transport),
    }
}

fn up(node: &str, id: &str, a: &RemoteAgent) -> Change {
    Change::Up {
        node: node.to_owned(),
        id: id.to_owned(),
        since_us: a.since_us,
        peer: peer_text(a),
    }
}

/// The other nodes, by name.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    pub(crate) map: HashMap<String, NodeView>,
}

/// What a message asks of the caller besides the changes.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) changes: Vec<Change>,
    /// Ask the sender for a copy of its directory.
    pub(crate) request_directory: bool,
}

impl Nodes {
    fn view(&mut self, name: &str, now: Instant) -> &mut NodeView {
        self.map
            .entry(name.to_owned())
            .or_insert_with(|| NodeView::new(name, now))
    }

    /// A heartbeat from `from`.
    pub(crate) fn on_heartbeat(
        &mut self,
        from: &str,
        hb: &Heartbeat,
        now: Instant,
        patience: Duration,
    ) -> Outcome {
        let mut out = Outcome::default();
        let view = self.view(from, now);
        if view.started_us != 0 && view.started_us != hb.started_us {
            // A new incarnation: its old sessions are gone.
            out.changes = view.clear(from, "node restarted");
            view.requested = None;
        }
        if !view.alive {
            view.alive = true;
            view.dead_since = None;
            view.gen = None;
            view.requested = None;
        }
        view.started_us = hb.started_us;
        view.heard = now;
        view.heard_at = Some(SystemTime::now());
        view.version.clone_from(&hb.version);
        view.interval = Duration::from_millis(hb.interval_ms.max(1));
        view.watching = hb.watching_events;
        if view.gen.is_none() && hb.gen == 0 && view.agents.is_empty() {
            // Nothing ever changed there.
            view.gen = Some(0);
        }
        out.request_directory = view.gen != Some(hb.gen) && view.may_request(now, patience);
        out
    }

    /// `AgentUp` from `from`.
    pub(crate) fn on_agent_up(
        &mut self,
        from: &str,
        gen: u64,
        entry: &AgentEntry,
        now: Instant,
        patience: Duration,
    ) -> Outcome {
        let mut out = Outcome::default();
        let view = self.view(from, now);
        if !view.alive {
            return out;
        }
        let agent = view.convert(entry);
        out.changes.push(up(from, &entry.id, &agent));
        view.agents.insert(entry.id.as_str().into(), agent);
        out.request_directory = view.step(gen) && view.may_request(now, patience);
        out
    }

    /// `AgentDown` from `from`.
    pub(crate) fn on_agent_down(
        &mut self,
        from: &str,
        gen: u64,
        (id, since_us, reason): (&str, u64, &str),
        now: Instant,
        patience: Duration,
    ) -> Outcome {
        let mut out = Outcome::default();
        let view = self.view(from, now);
        if !view.alive {
            return out;
        }
        if view.agents.get(id).is_some_and(|a| a.since_us == since_us) {
            view.agents.remove(id);
            out.changes.push(Change::Down {
                node: from.to_owned(),
                id: id.to_owned(),
                reason: reason.to_owned(),
            });
        }
        out.request_directory = view.step(gen) && view.may_request(now, patience);
        out
    }

    /// A part of `from`'s directory copy.
    pub(crate) fn on_directory(
        &mut self,
        from: &str,
        gen: u64,
        (first, last): (bool, bool),
        agents: &[AgentEntry],
        now: Instant,
    ) -> Vec<Change> {
        let view = self.view(from, now);
        if !view.alive {
            return Vec::new();
        }
        if first {
            view.building = Some(HashMap::with_capacity(agents.len()));
        }
        let converted: Vec<_> = agents.iter().map(|e| (e, view.convert(e))).collect();
        let Some(building) = view.building.as_mut() else {
            // A part whose first part was lost: wait for the next copy.
            return Vec::new();
        };
        for (e, a) in converted {
            building.insert(e.id.as_str().into(), a);
        }
        if !last {
            return Vec::new();
        }
        let new = view.building.take().unwrap_or_default();
        let mut changes = Vec::new();
        for (id, a) in &new {
            match view.agents.get(id) {
                Some(old) if old.since_us == a.since_us => {}
                _ => changes.push(up(from, id, a)),
            }
        }
        for id in view.agents.keys() {
            if !new.contains_key(id) {
                changes.push(Change::Down {
                    node: from.to_owned(),
                    id: id.to_string(),
                    reason: "left the node's directory".to_owned(),
                });
            }
        }
        view.agents = new;
        view.gen = Some(gen);
        view.requested = None;
        changes
    }

    /// `node` is dead (silent, left, or a message to it came back): its agents leave.
    pub(crate) fn mark_dead(&mut self, node: &str, reason: &str, now: Instant) -> Vec<Change> {
        match self.map.get_mut(node) {
            Some(view) if view.alive => {
                view.alive = false;
                view.dead_since = Some(now);
                view.watching = false;
                view.clear(node, reason)
            }
            _ => Vec::new(),
        }
    }

    /// Nodes silent for `dead_after` of their heartbeat intervals (at least `min`), and
    /// dead nodes to forget.
    pub(crate) fn expired(
        &mut self,
        now: Instant,
        dead_after: u32,
        min: Duration,
        forget_after: Duration,
    ) -> Vec<String> {
        self.map.retain(|_, v| {
            v.dead_since
                .is_none_or(|at| now.duration_since(at) < forget_after)
        });
        self.map
            .iter()
            .filter(|(_, v)| {
                v.alive && now.duration_since(v.heard) > (v.interval * dead_after).max(min)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The live node holding `agent`'s newest session.
    pub(crate) fn locate(&self, agent: &str) -> Option<(&str, &RemoteAgent)> {
        self.map
            .iter()
            .filter(|(_, v)| v.alive)
            .filter_map(|(n, v)| v.agents.get(agent).map(|a| (n.as_str(), a)))
            .max_by(|x, y| (x.1.since_us, x.0).cmp(&(y.1.since_us, y.0)))
    }

    /// The live node whose command-id tag is `tag`.
    pub(crate) fn by_tag(&self, tag: &str) -> Option<&str> {
        self.map
            .iter()
            .find(|(_, v)| v.alive && v.tag == tag)
            .map(|(n, _)| n.as_str())
    }

    /// Live nodes watching events.
    pub(crate) fn watching(&self) -> impl Iterator<Item = &str> {
        self.map
            .iter()
            .filter(|(_, v)| v.alive && v.watching)
            .map(|(n, _)| n.as_str())
    }
}

impl NodeView {
    /// Apply generation `gen`; true when one was missed (a copy is needed).
    fn step(&mut self, gen: u64) -> bool {
        match self.gen {
            Some(g) if gen == g + 1 => {
                self.gen = Some(gen);
                false
            }
            Some(g) if gen <= g => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(id: &str, since_us: u64) -> AgentEntry {
        AgentEntry {
            id: id.into(),
            transport: "tls".into(),
            remote_addr: Some("10.0.0.1:4000".into()),
            version: "0.4.0".into(),
            since_us,
            last_rtt_us: None,
        }
    }

    fn hb(started_us: u64, gen: u64) -> Heartbeat {
        Heartbeat {
            version: "0.4.0".into(),
            started_us,
            agents: 0,
            gen,
            interval_ms: 100,
            watching_events: false,
        }
    }

    const P: Duration = Duration::from_secs(1);

    #[test]
    fn a_missed_change_asks_for_a_copy_which_replaces_the_view() {
        let now = Instant::now();
        let mut n = Nodes::default();
        assert!(!n.on_heartbeat("b", &hb(1, 0), now, P).request_directory);
        assert!(
            !n.on_agent_up("b", 1, &entry("x", 5), now, P)
                .request_directory
        );
        // Generation 2 was lost: 3 shows it.
        let out = n.on_agent_up("b", 3, &entry("y", 6), now, P);
        assert!(out.request_directory);
        // Only one request per patience.
        assert!(!n.on_heartbeat("b", &hb(1, 4), now, P).request_directory);
        let changes = n.on_directory("b", 4, (true, true), &[entry("y", 6), entry("z", 7)], now);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Up { id, .. } if id == "z")));
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Down { id, .. } if id == "x")));
        assert!(!n.on_heartbeat("b", &hb(1, 4), now, P).request_directory);
        assert_eq!(n.locate("z").map(|(node, _)| node), Some("b"));
    }

    #[test]
    fn a_restart_clears_the_node_and_death_removes_its_agents() {
        let now = Instant::now();
        let mut n = Nodes::default();
        n.on_heartbeat("b", &hb(1, 0), now, P);
        n.on_agent_up("b", 1, &entry("x", 5), now, P);
        let out = n.on_heartbeat("b", &hb(2, 0), now, P);
        assert_eq!(out.changes.len(), 1);
        assert!(n.locate("x").is_none());
        n.on_agent_up("b", 1, &entry("x", 9), now, P);
        let later = now + Duration::from_secs(10);
        assert_eq!(n.expired(later, 3, Duration::ZERO, P * 600), vec!["b"]);
        assert_eq!(n.mark_dead("b", "silent", later).len(), 1);
        assert!(n.locate("x").is_none());
        // Forgotten after a while.
        n.expired(later + P * 601, 3, Duration::ZERO, P * 600);
        assert!(n.map.is_empty());
    }

    #[test]
    fn a_remote_agent_entry_stays_small() {
        // The directory's per-agent cost (docs/PERFORMANCE.md: under 1 KiB with the map
        // and the id): the entry itself, without its id, fits in a cache line or two.
        assert!(std::mem::size_of::<RemoteAgent>() <= 96);
    }

    #[test]
    fn the_newest_session_is_located() {
        let now = Instant::now();
        let mut n = Nodes::default();
        n.on_agent_up("b", 1, &entry("x", 5), now, P);
        n.on_agent_up("c", 1, &entry("x", 6), now, P);
        assert_eq!(n.locate("x").map(|(node, _)| node), Some("c"));
    }
}
