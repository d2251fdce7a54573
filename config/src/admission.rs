//! The manager's `admission:` section (ours): how many connections may be between
//! accept and the end of their hello, in total and per source, and how long their
//! transport handshake may take. Its meaning is the manager's `accept` module's.

use std::time::Duration;

use figment::Figment;
use ipnet::IpNet;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::{Net, OneOrMany, Seconds};

/// Longest `admission.handshake_timeout` accepted (an hour: longer is a mistake,
/// and far longer would overflow a deadline).
const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The manager's `admission:` section. Defaults: [`AdmissionConfig::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// `admission.handshake_timeout`: seconds an accepted TLS or WebSocket connection
    /// has for its transport handshake (TLS, HTTP upgrade). Default 5.
    pub handshake_timeout: Duration,
    /// `admission.max_pending`: connections between accept and the end of their hello
    /// on the TLS and WebSocket listeners together; when full, the oldest is closed to
    /// make room. Default 4096.
    pub max_pending: usize,
    /// `admission.max_pending_per_address`: of those, from one IP address; beyond, a
    /// new connection is closed at once. Default 64.
    pub max_pending_per_address: usize,
    /// `admission.max_pending_per_network`: of those, from one /24 (IPv4) or /64
    /// (IPv6); beyond, a new connection is closed at once. Default 512.
    pub max_pending_per_network: usize,
    /// `admission.max_pending_amqp`: AMQP sessions between their hello and its
    /// answer, waiting to be accepted and being authenticated (each stage at most
    /// this many); a hello beyond is answered at once with a "busy" Bye. Default 1024.
    pub max_pending_amqp: usize,
    /// `admission.exempt`: networks (CIDR or bare IP) whose connections count in
    /// `max_pending` only, not in the per-address and per-network caps (the
    /// `websocket.trusted_proxies` are exempt too). Default loopback: `127.0.0.0/8`
    /// and `::1` (local clients, a reverse proxy on the same host, benchmarks).
    pub exempt: Vec<IpNet>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            max_pending: 4096,
            max_pending_per_address: 64,
            max_pending_per_network: 512,
            max_pending_amqp: 1024,
            exempt: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAdmission {
    handshake_timeout: Option<Seconds>,
    max_pending: Option<u64>,
    max_pending_per_address: Option<u64>,
    max_pending_per_network: Option<u64>,
    max_pending_amqp: Option<u64>,
    exempt: Option<OneOrMany<Net>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTop {
    admission: Option<RawAdmission>,
}

impl AdmissionConfig {
    /// Overwrites the defaults in `self` with the `admission.*` keys in `fig`,
    /// checking them.
    pub(crate) fn read(mut self, fig: &Figment) -> Result<Self, ConfigError> {
        let raw = fig
            .extract_lossy::<RawTop>()
            .map_err(from_figment)?
            .admission
            .unwrap_or_default();
        if let Some(Seconds(t)) = raw.handshake_timeout {
            if t.is_zero() || t > MAX_HANDSHAKE_TIMEOUT {
                return Err(invalid(
                    fig,
                    "admission.handshake_timeout",
                    format!(
                        "expected seconds above 0 and at most {}, found {}",
                        MAX_HANDSHAKE_TIMEOUT.as_secs(),
                        t.as_secs_f64()
                    ),
                ));
            }
            self.handshake_timeout = t;
        }
        let count = |key: &str, v: Option<u64>, current: usize| match v {
            None => Ok(current),
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| invalid(fig, key, format!("expected a count above 0, found {n}"))),
        };
        self.max_pending = count("admission.max_pending", raw.max_pending, self.max_pending)?;
        self.max_pending_per_address = count(
            "admission.max_pending_per_address",
            raw.max_pending_per_address,
            self.max_pending_per_address,
        )?;
        self.max_pending_per_network = count(
            "admission.max_pending_per_network",
            raw.max_pending_per_network,
            self.max_pending_per_network,
        )?;
        self.max_pending_amqp = count(
            "admission.max_pending_amqp",
            raw.max_pending_amqp,
            self.max_pending_amqp,
        )?;
        if let Some(v) = raw.exempt {
            self.exempt = v.0.into_iter().map(|n| n.0).collect();
        }
        Ok(self)
    }
}
