//! Workload 7's second half: the manager's memory per idle agent before and after one
//! large message per agent.
//!
//! Once the fleet is connected and the manager's RSS has settled ("before"), every
//! agent sends the manager one one-way notification of [`BIG_MESSAGE_BYTES`] (1 MiB
//! minus 1 KiB, within the default `max_message_size`), a few agents at a time; the
//! load generator waits for each one's receipt barrier, and the manager's count of
//! notifications read must reach the number sent. Then the manager idles and its RSS
//! is read until it settles ("after"): jemalloc returns freed pages after its decay
//! time (10 s by default), so the figure is taken when RSS stops moving, not after a
//! fixed sleep, and how long that took is reported.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use redpepper_tests::Proc;

use crate::child::fleet::BLOB_IN_FLIGHT;
use crate::tasks::Burst;

/// Bytes of the one large notification each agent sends (its data, a binary field).
pub const BIG_MESSAGE_BYTES: usize = 1024 * 1024 - 1024;

/// RSS is settled when it moved by at most the tolerance over this long: longer than
/// jemalloc's dirty decay (10 s), whose smoothstep curve hardly moves in its first
/// seconds, so that its start is not taken for its end.
pub(crate) const SETTLE_WINDOW: Duration = Duration::from_secs(12);

/// [`SETTLE_WINDOW`] in quick mode (figures not judged).
pub(crate) const QUICK_SETTLE_WINDOW: Duration = Duration::from_secs(3);

/// Interval between two RSS readings while waiting for it to settle.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// An RSS reading taken once it stopped moving (or at the deadline).
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// Resident bytes.
    pub rss: u64,
    /// Seconds from the start of the wait to the first reading of the flat stretch
    /// (to the last reading when it did not settle).
    pub secs: f64,
    /// False when the deadline came first (`rss` is the last reading).
    pub settled: bool,
}

/// Read the manager's RSS every [`SETTLE_POLL`] until the readings of the last
/// `span` lie within `tolerance` bytes of each other, or `limit` passes.
pub fn settled_rss(
    manager: &Proc,
    span: Duration,
    tolerance: u64,
    limit: Duration,
) -> Result<Settled, String> {
    let start = Instant::now();
    let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
    loop {
        let now = Instant::now();
        let rss = manager.rss_bytes().map_err(|e| e.to_string())?;
        window.push_back((now, rss));
        while window
            .front()
            .is_some_and(|&(t, _)| now.duration_since(t) > span)
        {
            window.pop_front();
        }
        let spans_window = window
            .front()
            .is_some_and(|&(t, _)| now.duration_since(t) + SETTLE_POLL > span);
        let (low, high) = window
            .iter()
            .fold((u64::MAX, 0), |(l, h), &(_, r)| (l.min(r), h.max(r)));
        if spans_window && high - low <= tolerance {
            let flat_since = window.front().map_or(now, |&(t, _)| t);
            return Ok(Settled {
                rss,
                secs: flat_since.duration_since(start).as_secs_f64(),
                settled: true,
            });
        }
        if start.elapsed() >= limit {
            return Ok(Settled {
                rss,
                secs: start.elapsed().as_secs_f64(),
                settled: false,
            });
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// What the large-message phase measured.
#[derive(Debug, Clone)]
pub struct BigMessage {
    /// Settled RSS before the messages.
    pub before: Settled,
    /// Settled RSS after the manager read them all.
    pub after: Settled,
    /// The load generator's sending (every agent's message and its receipt).
    pub sent: Burst,
    /// Agents the manager counted after the phase.
    pub agents: u64,
    /// How long RSS had to stay flat to count as settled.
    pub window_secs: u64,
}

impl BigMessage {
    /// Per idle agent, in KiB: (before, after, after - before), RSS above `idle` (the
    /// manager's RSS with no agent).
    pub fn per_agent_kib(&self, idle: u64) -> Result<(f64, f64, f64), String> {
        if self.agents == 0 {
            return Err("no agent connected after the large messages".to_owned());
        }
        let per = |bytes: f64| bytes / self.agents as f64 / 1024.0;
        let (before, after) = (self.before.rss as f64, self.after.rss as f64);
        let idle = idle as f64;
        Ok((per(before - idle), per(after - idle), per(after - before)))
    }

    /// What to know about the figures: settling times, the sending time.
    pub fn note(&self) -> String {
        let settle = |s: &Settled| {
            if s.settled {
                format!("{:.1} s", s.secs)
            } else {
                format!("not within {:.0} s (last reading used)", s.secs)
            }
        };
        format!(
            "{} one-way notifications of {} bytes, {BLOB_IN_FLIGHT} agents at a time, \
             read by the manager in {:.1} s; RSS flat (for {} s) from {} before, from {} \
             after; agents connected after: {}",
            self.sent.ok,
            BIG_MESSAGE_BYTES,
            self.sent.secs,
            self.window_secs,
            settle(&self.before),
            settle(&self.after),
            self.agents
        )
    }
}

/// Settle, have every agent send its large message, wait until the manager has read
/// them all, settle again. `agents`: how many the manager counts now.
pub fn run(manager: &Proc, loadgen: &Proc, agents: u64, quick: bool) -> anyhow::Result<BigMessage> {
    // A 4 KiB target per agent needs a finer tolerance than that over the fleet.
    let tolerance = (agents * 256).max(128 * 1024);
    let (span, limit) = if quick {
        (QUICK_SETTLE_WINDOW, Duration::from_secs(30))
    } else {
        (SETTLE_WINDOW, Duration::from_secs(120))
    };
    let before = settled_rss(manager, span, tolerance, limit).map_err(anyhow::Error::msg)?;

    loadgen
        .send_line(&format!("blob {BIG_MESSAGE_BYTES}"))
        .map_err(anyhow::Error::msg)?;
    // Generous: 1 GiB per 1,000 agents through loopback TLS, on a shared machine.
    let sending = Duration::from_secs(120 + agents / 10);
    let sent: Burst = serde_json::from_value(loadgen.expect("blob", sending)?)?;
    if sent.failed > 0 {
        anyhow::bail!(
            "{} of {} large messages not delivered, first: {}",
            sent.failed,
            sent.agents,
            sent.first_error.as_deref().unwrap_or("none")
        );
    }
    // The barriers say the manager's sessions read them; its counter says the
    // manager's handler saw them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        manager.send_line("received").map_err(anyhow::Error::msg)?;
        let received = manager.expect("received", Duration::from_secs(30))?;
        let received = received.as_u64().unwrap_or(0);
        if received >= sent.ok as u64 {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("the manager read {received} of {} large messages", sent.ok);
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let after = settled_rss(manager, span, tolerance, limit).map_err(anyhow::Error::msg)?;
    manager.send_line("count").map_err(anyhow::Error::msg)?;
    let agents = manager
        .expect("agents", Duration::from_secs(30))?
        .as_u64()
        .unwrap_or(0);
    Ok(BigMessage {
        before,
        after,
        sent,
        agents,
        window_secs: span.as_secs(),
    })
}
