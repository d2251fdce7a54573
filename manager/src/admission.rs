//! Admission control: the connections between accept and the end of their hello
//! ("pending": not yet authenticated, made by anyone who can reach the port).
//!
//! Socket listeners (TLS, WebSocket) share one [`Gate`]:
//!
//! - at most [`Limits::per_address`] pending connections from one IP address and
//!   [`Limits::per_network`] from one network (/24 for IPv4, /64 for IPv6); a new
//!   connection over either is closed at once ([`Refusal`]), so one host or one
//!   subnet cannot take the budget of everyone else;
//! - at most [`Limits::max_pending`] in total; when full, the **oldest** pending
//!   connection is closed to make room for the new one, taken from the first
//!   non-empty of three groups, oldest first: connections whose task has not run yet
//!   (nothing read, no work done), connections in their transport handshake (TLS, HTTP
//!   upgrade), connections waiting for their hello ([`Ticket::started`] and
//!   [`Ticket::handshake_done`] move a connection along). The manager's expensive work
//!   on a TLS connection (key exchange, signature) is done when its task first reads
//!   the ClientHello; closing it after that throws the work away, and in a connect
//!   storm of real agents (all pending connections legitimate, thousands of tasks
//!   queued) evicting the oldest regardless cost a quarter to a third of the manager's
//!   handshake CPU. Silent connections never finish their handshake, so they go before
//!   any connection waiting for its hello. Accepting never stops, so new
//!   connections never wait in the kernel's backlog behind silent ones: a legitimate
//!   agent is evicted only if the whole budget turns over while its own handshake and
//!   hello run (milliseconds), which per-source caps make a many-network effort.
//!   Closing the new one instead would leave the budget to whoever filled it first
//!   for as long as the handshake timeout, again and again.
//!
//! Connections from the networks in [`Limits::exempt`] count only in the total: by
//! default loopback (local clients, a reverse proxy on the same host, benchmarks), and
//! always the trusted reverse proxies, behind which every agent has the proxy's
//! address.
//!
//! Listeners without a socket of their own (AMQP, and the in-memory one of tests) have
//! a plain budget of their own,
//! [`Limits::max_pending_amqp`]: when it is full their accept loop waits, and the AMQP
//! listener's own bounded accept backlog answers further hellos with a "busy" Bye.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use redpepper_config::ManagerConfig;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Limits on connections not yet authenticated (`admission.*` in `manager.yml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Pending connections on the socket listeners together
    /// (`admission.max_pending`).
    pub max_pending: usize,
    /// Pending connections from one IP address (`admission.max_pending_per_address`).
    pub per_address: usize,
    /// Pending connections from one /24 or /64 (`admission.max_pending_per_network`).
    pub per_network: usize,
    /// Sources counted in the total only (`admission.exempt` and
    /// `websocket.trusted_proxies`).
    pub exempt: Vec<IpNet>,
    /// Pending AMQP sessions being authenticated (`admission.max_pending_amqp`), per
    /// listener without a socket.
    pub max_pending_amqp: usize,
}

impl Default for Limits {
    /// The defaults of `manager.yml`.
    fn default() -> Self {
        Self::from_config(&ManagerConfig::default())
    }
}

impl Limits {
    /// The limits a manager configuration sets.
    pub fn from_config(config: &ManagerConfig) -> Self {
        let a = &config.admission;
        Self {
            max_pending: a.max_pending,
            per_address: a.max_pending_per_address,
            per_network: a.max_pending_per_network,
            exempt: a
                .exempt
                .iter()
                .chain(&config.websocket.trusted_proxies)
                .copied()
                .collect(),
            max_pending_amqp: a.max_pending_amqp,
        }
    }

    /// Only a total (per-source caps as large as it): [`Manager::start_limited`]'s
    /// meaning of its number.
    ///
    /// [`Manager::start_limited`]: crate::Manager::start_limited
    pub fn total(max_pending: usize) -> Self {
        Self {
            max_pending,
            per_address: max_pending,
            per_network: max_pending,
            exempt: Vec::new(),
            max_pending_amqp: max_pending,
        }
    }
}

/// Why a new connection was closed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already has `limit` pending connections.
    Address {
        /// The source address.
        addr: IpAddr,
        /// The cap it is at.
        limit: usize,
    },
    /// Its network (/24, /64) already has `limit` pending connections.
    Network {
        /// The network, as `a.b.c.0/24` or `x:x:x:x::/64`.
        network: String,
        /// The cap it is at.
        limit: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Address { addr, limit } => write!(
                f,
                "{addr} already has {limit} connections not yet authenticated \
                 (admission.max_pending_per_address)"
            ),
            Refusal::Network { network, limit } => write!(
                f,
                "{network} already has {limit} connections not yet authenticated \
                 (admission.max_pending_per_network)"
            ),
        }
    }
}

/// A new connection let in.
#[derive(Debug)]
pub struct Admitted {
    /// Its place among the pending connections, given back when dropped.
    pub ticket: Ticket,
    /// Whether the oldest pending connection was closed to make room.
    pub evicted: bool,
}

/// Where a pending connection came from, as counted.
#[derive(Debug, Clone, Copy)]
struct Source {
    addr: IpAddr,
    network: IpAddr,
}

#[derive(Debug)]
struct Entry {
    source: Option<Source>,
    evict: CancellationToken,
}

/// A step of a pending connection (see [`Table::advance`]).
#[derive(Debug, Clone, Copy)]
enum Stage {
    Started,
    HandshakeDone,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// Pending connections whose task has not started (nothing read yet), oldest
    /// first.
    queued: BTreeMap<u64, Entry>,
    /// Pending connections in their transport handshake, oldest first.
    handshaking: BTreeMap<u64, Entry>,
    /// Pending connections past their transport handshake (waiting for or in their
    /// hello), oldest first.
    greeting: BTreeMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    per_network: HashMap<IpAddr, usize>,
}

impl Table {
    fn len(&self) -> usize {
        self.queued.len() + self.handshaking.len() + self.greeting.len()
    }

    /// Takes the connection to evict: the oldest not started, else the oldest in its
    /// handshake, else the oldest waiting for its hello.
    fn pop_oldest(&mut self) -> Option<Entry> {
        let (_, entry) = self
            .queued
            .pop_first()
            .or_else(|| self.handshaking.pop_first())
            .or_else(|| self.greeting.pop_first())?;
        Some(entry)
    }

    /// Moves pending connection `id` from `from` to `to` (if it is still in `from`).
    fn advance(&mut self, id: u64, stage: Stage) {
        let (from, to) = match stage {
            Stage::Started => (&mut self.queued, &mut self.handshaking),
            Stage::HandshakeDone => (&mut self.handshaking, &mut self.greeting),
        };
        if let Some(entry) = from.remove(&id) {
            to.insert(id, entry);
        }
    }

    /// Removes pending connection `id`, wherever it is.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        self.queued
            .remove(&id)
            .or_else(|| self.handshaking.remove(&id))
            .or_else(|| self.greeting.remove(&id))
    }

    fn forget(&mut self, entry: &Entry) {
        let Some(source) = entry.source else { return };
        for (map, key) in [
            (&mut self.per_address, source.addr),
            (&mut self.per_network, source.network),
        ] {
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

/// The pending connections of the socket listeners (see the module docs).
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    table: Mutex<Table>,
}

impl Gate {
    /// An empty gate (caps of 0 count as 1).
    pub fn new(mut limits: Limits) -> Arc<Gate> {
        limits.max_pending = limits.max_pending.max(1);
        limits.per_address = limits.per_address.max(1);
        limits.per_network = limits.per_network.max(1);
        Arc::new(Gate {
            limits,
            table: Mutex::new(Table::default()),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // The table's counts stay consistent even if a holder panicked mid-way: no
        // code between lock and unlock can panic half-way through an update.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pending connections now.
    pub fn pending(&self) -> usize {
        self.table().len()
    }

    /// Let a new connection from `remote` in, evicting the oldest when the total is
    /// full, or refuse it when its address or network is at its cap.
    pub fn admit(self: &Arc<Self>, remote: Option<SocketAddr>) -> Result<Admitted, Refusal> {
        let source = remote
            .map(|r| r.ip().to_canonical())
            .filter(|ip| !self.limits.exempt.iter().any(|n| n.contains(ip)))
            .map(|addr| Source {
                addr,
                network: network_of(addr),
            });
        let mut table = self.table();
        if let Some(s) = source {
            if table.per_address.get(&s.addr).copied().unwrap_or(0) >= self.limits.per_address {
                return Err(Refusal::Address {
                    addr: s.addr,
                    limit: self.limits.per_address,
                });
            }
            if table.per_network.get(&s.network).copied().unwrap_or(0) >= self.limits.per_network {
                let bits = if s.network.is_ipv4() { 24 } else { 64 };
                return Err(Refusal::Network {
                    network: format!("{}/{bits}", s.network),
                    limit: self.limits.per_network,
                });
            }
        }
        let mut evicted = false;
        while table.len() >= self.limits.max_pending {
            let Some(oldest) = table.pop_oldest() else {
                break;
            };
            table.forget(&oldest);
            oldest.evict.cancel();
            evicted = true;
        }
        if let Some(s) = source {
            *table.per_address.entry(s.addr).or_default() += 1;
            *table.per_network.entry(s.network).or_default() += 1;
        }
        let id = table.next_id;
        table.next_id += 1;
        let evict = CancellationToken::new();
        table.queued.insert(
            id,
            Entry {
                source,
                evict: evict.clone(),
            },
        );
        Ok(Admitted {
            ticket: Ticket {
                gate: Arc::clone(self),
                id,
                evict,
            },
            evicted,
        })
    }
}

/// The /24 (IPv4) or /64 (IPv6) network of `addr`, as its first address.
fn network_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(a.to_bits() & !0xff)),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(a.to_bits() & !u128::from(u64::MAX))),
    }
}

/// A pending connection's place in a [`Gate`]; dropping it gives the place back.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    id: u64,
    evict: CancellationToken,
}

impl Ticket {
    /// Resolves when the connection was evicted to make room for a newer one.
    pub fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.evict.clone().cancelled_owned()
    }

    /// The connection's task started (its transport handshake is about to read).
    pub fn started(&self) {
        self.gate.table().advance(self.id, Stage::Started);
    }

    /// The connection finished its transport handshake: from now on it is evicted only
    /// when no pending connection is before it.
    pub fn handshake_done(&self) {
        self.gate.table().advance(self.id, Stage::HandshakeDone);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut table = self.gate.table();
        if let Some(entry) = table.remove(self.id) {
            table.forget(&entry);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn from(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    fn limits(total: usize, per_address: usize, per_network: usize) -> Limits {
        Limits {
            max_pending: total,
            per_address,
            per_network,
            exempt: Vec::new(),
            max_pending_amqp: 1,
        }
    }

    fn is_evicted(t: &Ticket) -> bool {
        t.evict.is_cancelled()
    }

    #[test]
    fn an_address_over_its_cap_is_refused_and_others_still_get_in() {
        let gate = Gate::new(limits(100, 2, 100));
        let _a = gate.admit(from("10.0.0.1")).unwrap();
        let _b = gate.admit(from("10.0.0.1")).unwrap();
        assert_eq!(
            gate.admit(from("10.0.0.1")).unwrap_err(),
            Refusal::Address {
                addr: "10.0.0.1".parse().unwrap(),
                limit: 2
            }
        );
        // Same /24, other address: let in.
        let c = gate.admit(from("10.0.0.2")).unwrap();
        assert!(!c.evicted);
        assert_eq!(gate.pending(), 3);
    }

    #[test]
    fn a_network_over_its_cap_is_refused_ipv4_by_24_and_ipv6_by_64() {
        let gate = Gate::new(limits(100, 100, 2));
        let _a = gate.admit(from("192.0.2.1")).unwrap();
        let _b = gate.admit(from("192.0.2.200")).unwrap();
        let e = gate.admit(from("192.0.2.7")).unwrap_err();
        assert_eq!(
            e,
            Refusal::Network {
                network: "192.0.2.0/24".into(),
                limit: 2
            }
        );
        assert!(
            e.to_string().contains("admission.max_pending_per_network"),
            "{e}"
        );
        assert!(gate.admit(from("192.0.3.1")).is_ok());
        let _c = gate.admit(from("2001:db8:1:2::1")).unwrap();
        let _d = gate.admit(from("2001:db8:1:2:ffff::9")).unwrap();
        let e = gate.admit(from("2001:db8:1:2::3")).unwrap_err();
        assert_eq!(e.to_string().split(' ').next(), Some("2001:db8:1:2::/64"));
        assert!(gate.admit(from("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_the_ipv4_address() {
        let gate = Gate::new(limits(100, 1, 100));
        let _a = gate.admit(from("192.0.2.1")).unwrap();
        assert!(matches!(
            gate.admit(from("::ffff:192.0.2.1")),
            Err(Refusal::Address { .. })
        ));
    }

    #[test]
    fn a_full_total_evicts_the_oldest_and_lets_the_new_one_in() {
        let gate = Gate::new(limits(3, 10, 10));
        let first = gate.admit(from("10.0.0.1")).unwrap();
        let second = gate.admit(from("10.0.1.1")).unwrap();
        let third = gate.admit(None).unwrap();
        assert!(!first.evicted && !second.evicted && !third.evicted);
        let fourth = gate.admit(from("10.0.2.1")).unwrap();
        assert!(fourth.evicted);
        assert!(is_evicted(&first.ticket));
        assert!(!is_evicted(&second.ticket) && !is_evicted(&third.ticket));
        assert_eq!(gate.pending(), 3);
        // The evicted one's source no longer counts, and dropping its ticket later
        // does not free anyone else's place.
        let again = gate.admit(from("10.0.0.1")).unwrap();
        assert!(again.evicted && is_evicted(&second.ticket));
        drop(first);
        assert_eq!(gate.pending(), 3);
        assert!(!is_evicted(&third.ticket));
    }

    #[test]
    fn a_dropped_ticket_gives_its_place_and_its_source_count_back() {
        let gate = Gate::new(limits(2, 1, 1));
        let a = gate.admit(from("10.0.0.1")).unwrap();
        assert!(gate.admit(from("10.0.0.2")).is_err());
        drop(a);
        assert_eq!(gate.pending(), 0);
        let b = gate.admit(from("10.0.0.2")).unwrap();
        assert!(!b.evicted);
        let c = gate.admit(None).unwrap();
        assert!(!c.evicted);
        assert!(!is_evicted(&b.ticket));
    }

    #[test]
    fn trusted_proxies_count_in_the_total_only() {
        let gate = Gate::new(Limits {
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
            ..limits(3, 1, 1)
        });
        let tickets: Vec<_> = (0..3)
            .map(|_| gate.admit(from("10.9.0.5")).unwrap())
            .collect();
        assert!(tickets.iter().all(|t| !t.evicted));
        // The total still applies.
        assert!(gate.admit(from("10.9.0.5")).unwrap().evicted);
    }

    #[test]
    fn connections_past_their_handshake_are_evicted_last() {
        let gate = Gate::new(limits(3, 10, 10));
        let first = gate.admit(None).unwrap();
        let second = gate.admit(None).unwrap();
        let third = gate.admit(None).unwrap();
        for t in [&first, &second, &third] {
            t.ticket.started();
        }
        first.ticket.handshake_done();
        // The oldest still in its handshake goes first, not the oldest overall.
        let fourth = gate.admit(None).unwrap();
        assert!(fourth.evicted);
        assert!(is_evicted(&second.ticket));
        assert!(!is_evicted(&first.ticket) && !is_evicted(&third.ticket));
        fourth.ticket.started();
        third.ticket.handshake_done();
        fourth.ticket.handshake_done();
        // All past their handshake: the oldest of them.
        let fifth = gate.admit(None).unwrap();
        assert!(fifth.evicted && is_evicted(&first.ticket));
        assert!(!is_evicted(&third.ticket) && !is_evicted(&fourth.ticket));
        // A ticket dropped after its handshake gives its place back.
        drop(third);
        assert_eq!(gate.pending(), 2);
    }

    #[test]
    fn connections_not_started_are_evicted_first() {
        let gate = Gate::new(limits(3, 10, 10));
        let first = gate.admit(None).unwrap();
        let second = gate.admit(None).unwrap();
        let third = gate.admit(None).unwrap();
        first.ticket.started();
        // The oldest whose task has not run goes, not the older one in its handshake.
        let fourth = gate.admit(None).unwrap();
        assert!(fourth.evicted && is_evicted(&second.ticket));
        assert!(!is_evicted(&first.ticket) && !is_evicted(&third.ticket));
    }

    #[tokio::test]
    async fn the_evicted_future_resolves_on_eviction() {
        let gate = Gate::new(limits(1, 10, 10));
        let first = gate.admit(None).unwrap();
        let evicted = first.ticket.evicted();
        let _second = gate.admit(None).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(20), evicted)
            .await
            .unwrap();
    }

    #[test]
    fn limits_follow_the_configuration() {
        let config = redpepper_config::ManagerConfig::default();
        let l = Limits::default();
        assert_eq!(l.max_pending, config.admission.max_pending);
        assert_eq!(l.per_address, config.admission.max_pending_per_address);
        assert_eq!(l.per_network, config.admission.max_pending_per_network);
        assert_eq!(l.max_pending_amqp, config.admission.max_pending_amqp);
        assert!(l.per_address < l.per_network && l.per_network < l.max_pending);
        // Loopback is exempt by default; trusted proxies are added.
        let gate = Gate::new(Limits {
            per_address: 1,
            ..l.clone()
        });
        let _a = gate.admit(from("127.0.0.1")).unwrap();
        let _b = gate.admit(from("127.0.0.1")).unwrap();
        let _c = gate.admit(from("::1")).unwrap();
        let _d = gate.admit(from("::1")).unwrap();
        let mut config = config;
        config.websocket.trusted_proxies = vec!["10.1.0.0/16".parse().unwrap()];
        assert!(Limits::from_config(&config)
            .exempt
            .contains(&"10.1.0.0/16".parse().unwrap()));
    }
}
