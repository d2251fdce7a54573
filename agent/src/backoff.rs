//! Reconnect delays: exponential backoff with full jitter.
//!
//! The n-th consecutive failure waits a uniformly random time in `[0, min(cap, base *
//! 2^n)]` (full jitter spreads a fleet that lost its manager at the same moment). A
//! session that lived at least [`Backoff::STABLE`] resets the sequence.

use std::time::Duration;

/// Backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A session that lived this long counts as stable and resets the backoff.
    pub const STABLE: Duration = Duration::from_secs(60);

    /// Start at `base`, double per failure, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
        }
    }

    /// The ceiling of the next delay (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Record a failure and return how long to wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Delay after the manager refused us: the cap, less up to a tenth of it at
    /// random (so a fleet refused at once, say after a bad `agents.yml` edit, does not
    /// come back in lockstep), never a hot loop.
    pub fn refused_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.cap - (self.cap / 10).mul_f64(rand::random::<f64>())
    }

    /// A session ended after living `lived`: reset when it was stable.
    pub fn session_ended(&mut self, lived: Duration) {
        if lived >= Self::STABLE {
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_cap_with_jitter_and_resets() {
        let s = Duration::from_secs(1);
        let mut b = Backoff::new(s, 64 * s);
        let mut ceilings = vec![];
        for _ in 0..10 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d <= c);
            ceilings.push(c.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 64, 64, 64]);
        b.session_ended(Duration::from_secs(5));
        assert_eq!(b.ceiling(), 64 * s);
        b.session_ended(Backoff::STABLE);
        assert_eq!(b.ceiling(), s);
        let r = b.refused_delay();
        assert!(r >= 57 * s && r <= 64 * s, "{r:?}");
    }
}
