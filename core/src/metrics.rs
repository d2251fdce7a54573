//! Counters and histograms a session updates as it works, for an operator to scrape.
//!
//! One [`Metrics`] is shared (by `Arc`, through [`SessionConfig::metrics`]) by every
//! session of a program. Updates are relaxed atomic adds: no locks, no allocation.
//! [`Metrics::render_prometheus`] writes the Prometheus text format.
//!
//! [`SessionConfig::metrics`]: crate::SessionConfig::metrics

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::transport::TransportKind;

const KINDS: [TransportKind; 4] = [
    TransportKind::Memory,
    TransportKind::Tls,
    TransportKind::WebSocket,
    TransportKind::Amqp,
];

fn kind_index(kind: TransportKind) -> usize {
    match kind {
        TransportKind::Memory => 0,
        TransportKind::Tls => 1,
        TransportKind::WebSocket => 2,
        TransportKind::Amqp => 3,
    }
}

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// A fixed-bucket latency histogram.
///
/// Each observation lands in exactly one slot (the last one is `+Inf`, above every
/// bound), and `_count` is the sum of the slots read for the scrape, so a scrape never
/// shows a bucket above `+Inf` or `_count`, even while observations race with it.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One slot per bound in [`BUCKETS`], then the `+Inf` overflow slot.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        if let Some(slot) = self.buckets.get(i) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        // One read of every slot: the buckets, +Inf and _count all come from it.
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(&counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count: u64 = counts.iter().sum();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Per-transport traffic counters.
#[derive(Debug, Default)]
pub struct TrafficCounters {
    /// Payload bytes received.
    pub bytes_in: AtomicU64,
    /// Payload bytes sent.
    pub bytes_out: AtomicU64,
    /// Messages received.
    pub messages_in: AtomicU64,
    /// Messages sent.
    pub messages_out: AtomicU64,
}

/// Outcome of a call we made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// success=true.
    Ok,
    /// success=false.
    RemoteError,
    /// No answer in time.
    Timeout,
    /// The session ended first.
    Closed,
    /// Not sendable.
    EncodeError,
}

impl CallOutcome {
    const ALL: [CallOutcome; 5] = [
        CallOutcome::Ok,
        CallOutcome::RemoteError,
        CallOutcome::Timeout,
        CallOutcome::Closed,
        CallOutcome::EncodeError,
    ];

    fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::RemoteError => "remote_error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Closed => "closed",
            CallOutcome::EncodeError => "encode_error",
        }
    }
}

/// Outcome of a request the peer made to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedOutcome {
    /// Answered with success=true.
    Ok,
    /// The handler failed (or panicked).
    Error,
    /// No such method.
    NotFound,
    /// Refused: too many requests in flight.
    Refused,
}

impl ServedOutcome {
    const ALL: [ServedOutcome; 4] = [
        ServedOutcome::Ok,
        ServedOutcome::Error,
        ServedOutcome::NotFound,
        ServedOutcome::Refused,
    ];

    fn label(self) -> &'static str {
        match self {
            ServedOutcome::Ok => "ok",
            ServedOutcome::Error => "error",
            ServedOutcome::NotFound => "not_found",
            ServedOutcome::Refused => "refused",
        }
    }
}

/// Everything sessions count.
#[derive(Debug, Default)]
pub struct Metrics {
    traffic: [TrafficCounters; 4],
    calls_sent: [AtomicU64; 5],
    calls_served: [AtomicU64; 4],
    /// Round trip of calls we made, by the caller's clock.
    pub call_latency: Histogram,
    /// Ping round trips.
    pub ping_rtt: Histogram,
    /// Sessions established.
    pub handshakes: AtomicU64,
    /// Hellos refused by the authenticator.
    pub auth_failures: AtomicU64,
    /// Handshakes that failed otherwise (timeout, protocol, transport).
    pub handshake_failures: AtomicU64,
    /// Payloads that failed to decode (the session was closed).
    pub bad_frames: AtomicU64,
    /// Frames refused for exceeding `max_message_size`.
    pub oversize_frames: AtomicU64,
    /// Responses that matched no pending call, dropped.
    pub dropped_responses: AtomicU64,
    /// Notifications received.
    pub notifications_in: AtomicU64,
    /// Connections not yet authenticated closed at accept for being over a per-source
    /// cap (address or network).
    pub preauth_refused: AtomicU64,
    /// Connections not yet authenticated closed to make room for a newer one.
    pub preauth_evicted: AtomicU64,
}

impl Metrics {
    /// Traffic counters of one transport kind.
    pub fn traffic(&self, kind: TransportKind) -> &TrafficCounters {
        &self.traffic[kind_index(kind)]
    }

    /// Count a call we made.
    pub fn call_done(&self, outcome: CallOutcome, latency: Duration) {
        self.calls_sent[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if outcome == CallOutcome::Ok || outcome == CallOutcome::RemoteError {
            self.call_latency.observe(latency);
        }
    }

    /// Calls we made with this outcome.
    pub fn calls_sent(&self, outcome: CallOutcome) -> u64 {
        self.calls_sent[outcome as usize].load(Ordering::Relaxed)
    }

    /// Count a request we served.
    pub fn served(&self, outcome: ServedOutcome) {
        self.calls_served[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests served with this outcome.
    pub fn calls_served(&self, outcome: ServedOutcome) -> u64 {
        self.calls_served[outcome as usize].load(Ordering::Relaxed)
    }

    /// Write every metric in the Prometheus text format (version 0.0.4). `connected`
    /// gives the number of connected peers per transport (the owner knows them).
    pub fn render_prometheus(&self, out: &mut String, connected: &[(TransportKind, usize)]) {
        let g = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        g(
            out,
            "redpepper_connected_agents",
            "gauge",
            "Agents with an established session, per transport.",
        );
        for kind in KINDS.iter().filter(|k| **k != TransportKind::Memory) {
            let n = connected
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(
                out,
                "redpepper_connected_agents{{transport=\"{kind}\"}} {n}"
            );
        }
        for (name, help, f) in [
            (
                "redpepper_transport_received_bytes_total",
                "Payload bytes received.",
                0,
            ),
            (
                "redpepper_transport_sent_bytes_total",
                "Payload bytes sent.",
                1,
            ),
            (
                "redpepper_transport_received_messages_total",
                "Messages received.",
                2,
            ),
            (
                "redpepper_transport_sent_messages_total",
                "Messages sent.",
                3,
            ),
        ] {
            g(out, name, "counter", help);
            for kind in KINDS.iter().filter(|k| **k != TransportKind::Memory) {
                let t = self.traffic(*kind);
                let c = [&t.bytes_in, &t.bytes_out, &t.messages_in, &t.messages_out][f];
                let _ = writeln!(
                    out,
                    "{name}{{transport=\"{kind}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        }
        let counters: [(&str, &str, &AtomicU64); 9] = [
            (
                "redpepper_handshakes_total",
                "Sessions established.",
                &self.handshakes,
            ),
            (
                "redpepper_auth_failures_total",
                "Hellos refused by authentication.",
                &self.auth_failures,
            ),
            (
                "redpepper_handshake_failures_total",
                "Handshakes failed for other reasons.",
                &self.handshake_failures,
            ),
            (
                "redpepper_bad_frames_total",
                "Payloads that failed to decode.",
                &self.bad_frames,
            ),
            (
                "redpepper_oversize_frames_total",
                "Frames over max_message_size.",
                &self.oversize_frames,
            ),
            (
                "redpepper_dropped_responses_total",
                "Responses matching no pending call.",
                &self.dropped_responses,
            ),
            (
                "redpepper_notifications_received_total",
                "Notifications received.",
                &self.notifications_in,
            ),
            (
                "redpepper_preauth_refused_total",
                "Connections closed at accept: their source was over its cap of connections not yet authenticated.",
                &self.preauth_refused,
            ),
            (
                "redpepper_preauth_evicted_total",
                "Connections not yet authenticated closed to make room for a newer one.",
                &self.preauth_evicted,
            ),
        ];
        for (name, help, c) in counters {
            g(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", c.load(Ordering::Relaxed));
        }
        g(
            out,
            "redpepper_calls_sent_total",
            "counter",
            "Calls made to peers, by outcome.",
        );
        for o in CallOutcome::ALL {
            let _ = writeln!(
                out,
                "redpepper_calls_sent_total{{outcome=\"{}\"}} {}",
                o.label(),
                self.calls_sent(o)
            );
        }
        g(
            out,
            "redpepper_calls_received_total",
            "counter",
            "Requests served for peers, by outcome.",
        );
        for o in ServedOutcome::ALL {
            let _ = writeln!(
                out,
                "redpepper_calls_received_total{{outcome=\"{}\"}} {}",
                o.label(),
                self.calls_served(o)
            );
        }
        g(
            out,
            "redpepper_call_duration_seconds",
            "histogram",
            "Round trip of answered calls.",
        );
        self.call_latency
            .render(out, "redpepper_call_duration_seconds", "");
        g(
            out,
            "redpepper_ping_rtt_seconds",
            "histogram",
            "Keepalive ping round trips.",
        );
        self.ping_rtt.render(out, "redpepper_ping_rtt_seconds", "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.traffic(TransportKind::Tls)
            .bytes_in
            .fetch_add(10, Ordering::Relaxed);
        m.call_done(CallOutcome::Ok, Duration::from_micros(300));
        m.call_done(CallOutcome::Timeout, Duration::from_secs(30));
        m.served(ServedOutcome::NotFound);
        m.preauth_refused.fetch_add(3, Ordering::Relaxed);
        m.preauth_evicted.fetch_add(2, Ordering::Relaxed);
        let mut s = String::new();
        m.render_prometheus(&mut s, &[(TransportKind::Tls, 2)]);
        assert!(s.contains("redpepper_connected_agents{transport=\"tls\"} 2"));
        assert!(s.contains("redpepper_transport_received_bytes_total{transport=\"tls\"} 10"));
        assert!(s.contains("redpepper_calls_sent_total{outcome=\"timeout\"} 1"));
        assert!(s.contains("redpepper_calls_received_total{outcome=\"not_found\"} 1"));
        assert!(s.contains("redpepper_call_duration_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(s.contains("redpepper_call_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(s.contains("redpepper_call_duration_seconds_count 1"));
        assert!(s.contains("redpepper_preauth_refused_total 3"));
        assert!(s.contains("redpepper_preauth_evicted_total 2"));
    }

    /// `(bucket values in order, _count)` of the one histogram rendered in `text`.
    fn scrape(text: &str) -> (Vec<u64>, u64) {
        let value = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok());
        let buckets = text
            .lines()
            .filter(|l| l.starts_with("h_bucket"))
            .filter_map(value)
            .collect();
        let count = text
            .lines()
            .find(|l| l.starts_with("h_count"))
            .and_then(value)
            .unwrap_or(u64::MAX);
        (buckets, count)
    }

    #[test]
    fn a_scrape_never_shows_a_bucket_above_its_count() {
        let h = std::sync::Arc::new(Histogram::default());
        h.observe(Duration::from_secs(30));
        let mut first = String::new();
        h.render(&mut first, "h", "");
        assert!(first.contains("h_bucket{le=\"10\"} 0"), "{first}");
        assert!(first.contains("h_bucket{le=\"+Inf\"} 1"), "{first}");
        assert!(first.contains("h_count 1"), "{first}");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|i| {
                let (h, stop) = (h.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        h.observe(Duration::from_micros(n % 20_000 + i));
                        n += 1;
                    }
                })
            })
            .collect();
        for _ in 0..500 {
            let mut text = String::new();
            h.render(&mut text, "h", "");
            let (buckets, count) = scrape(&text);
            assert_eq!(buckets.len(), BUCKETS.len() + 1, "{text}");
            assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{text}");
            assert_eq!(buckets.last().copied(), Some(count), "{text}");
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            assert!(w.join().is_ok());
        }
    }
}
