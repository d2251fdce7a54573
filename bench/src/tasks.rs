//! What a driving peer is asked to do, and what it reports: the JSON both our child
//! processes and `python/rp_bench.py` speak.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::stats::Samples;

/// One measurement a driving peer runs on its established connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// A closed loop of calls.
    Calls(Calls),
    /// Notifications sent one way as fast as the connection takes them for `secs`;
    /// done when the peer confirms it received them all.
    Notify {
        /// Name of the result.
        label: String,
        /// Measured seconds of sending.
        secs: f64,
    },
}

/// A closed loop of calls: `in_flight` calls outstanding at all times, each
/// carrying `payload` bytes (0: a one-character string argument), for `secs`
/// seconds after `warmup` seconds that are not counted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calls {
    /// Name of the result.
    pub label: String,
    /// Calls outstanding at once.
    pub in_flight: usize,
    /// Payload bytes per call (a binary keyword argument), echoed back.
    pub payload: usize,
    /// Warm-up seconds (not counted).
    pub warmup: f64,
    /// Measured seconds.
    pub secs: f64,
}

impl Task {
    /// An upper bound of the seconds the task takes, for time-outs.
    pub fn budget_secs(&self) -> f64 {
        match self {
            Task::Calls(c) => c.warmup + c.secs,
            Task::Notify { secs, .. } => *secs,
        }
    }
}

impl Calls {
    /// When the measured window starts (after the warm-up) and when it ends,
    /// counted from now.
    pub fn window(&self) -> (Instant, Instant) {
        let measure_from = Instant::now() + Duration::from_secs_f64(self.warmup);
        (
            measure_from,
            measure_from + Duration::from_secs_f64(self.secs),
        )
    }
}

/// What a burst across a fleet measured: the load generator's connect storm, or
/// one fan-out of the manager's (an `echo` call to every agent at once).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Burst {
    /// Agents tried.
    pub agents: usize,
    /// Agents that connected, or calls that succeeded.
    pub ok: usize,
    /// Those that failed.
    pub failed: usize,
    /// Seconds from the first attempt to the last outcome.
    pub secs: f64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// What one task measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskResult {
    /// The task's label.
    pub label: String,
    /// Operations completed in the measured window (calls, notifications, echoes).
    pub ops: u64,
    /// Length of the measured window, seconds.
    pub secs: f64,
    /// Payload bytes per operation.
    pub payload: usize,
    /// Latency quantiles of calls, microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile, microseconds.
    pub p99_us: Option<f64>,
    /// 99.9th percentile, microseconds.
    pub p999_us: Option<f64>,
    /// Operations that failed.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl TaskResult {
    /// A result from a window, a count and latency samples.
    pub fn new(label: &str, ops: u64, secs: f64, payload: usize, samples: &mut Samples) -> Self {
        let q = samples.quantiles_us(&[0.5, 0.99, 0.999]);
        let at = |i: usize| q.get(i).copied().flatten();
        Self {
            label: label.to_owned(),
            ops,
            secs,
            payload,
            p50_us: at(0),
            p99_us: at(1),
            p999_us: at(2),
            errors: 0,
            first_error: None,
        }
    }

    /// A result of `ops` one-way operations over `secs` seconds, without latency
    /// samples and without payload (the notification tasks).
    pub fn one_way(label: &str, ops: u64, secs: f64) -> Self {
        Self::new(label, ops, secs, 0, &mut Samples::default())
    }

    /// Operations per second.
    pub fn rate(&self) -> Option<f64> {
        (self.secs > 0.0 && self.ops > 0).then(|| self.ops as f64 / self.secs)
    }

    /// Payload megabytes (10^6 bytes) per second, one direction.
    pub fn mb_per_sec(&self) -> Option<f64> {
        self.rate().map(|r| r * self.payload as f64 / 1e6)
    }
}
