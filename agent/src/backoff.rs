//! Reconnect delays: exponential backoff with full jitter, and a spread first retry
//! after a stable session.
//!
//! The n-th consecutive failure waits a uniformly random time in `[0, min(cap, base *
//! 2^n)]` (full jitter spreads a fleet that lost its manager at the same moment). A
//! session that lived at least [`Backoff::STABLE`] resets the sequence, and the first
//! retry after it is drawn from a wider window, `[0, min(cap,`
//! [`Backoff::AFTER_STABLE`]`)]`: when the manager restarts, every agent loses its
//! long-lived session at the same moment, and a `[0, base]` window (1 s) would bring
//! the whole fleet back within a second, a connect storm of N handshakes in one
//! second. Spread over the window, the manager sees N / window handshakes a second
//! (10,000 agents: 1,000/s, within what one core serves with an ECDSA or an RSA-2048
//! certificate; docs/PERFORMANCE.md, "Connect storm"). The price: one agent whose
//! stable session broke alone waits half the window on average instead of half a
//! second. Retries after that first one start again from `base`.

use std::time::Duration;

/// Backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    /// The next delay is the first after a stable session.
    after_stable: bool,
}

impl Backoff {
    /// The agent's first delay ceiling: 1 s.
    pub const BASE: Duration = Duration::from_secs(1);

    /// The agent's largest delay ceiling: 64 s.
    pub const CAP: Duration = Duration::from_secs(64);

    /// A session that lived this long counts as stable and resets the backoff.
    pub const STABLE: Duration = Duration::from_secs(60);

    /// Window of the first retry after a stable session (at most the cap).
    pub const AFTER_STABLE: Duration = Duration::from_secs(10);

    /// Start at `base`, double per failure, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
            after_stable: false,
        }
    }

    /// The ceiling of the next delay (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        let exponential = self.base.saturating_mul(factor);
        let ceiling = if self.after_stable {
            exponential.max(Self::AFTER_STABLE)
        } else {
            exponential
        };
        ceiling.min(self.cap)
    }

    /// Record a failure and return how long to wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        if self.after_stable {
            // The spread retry stands in for the first of the sequence.
            self.after_stable = false;
        } else {
            self.failures = self.failures.saturating_add(1);
        }
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Delay after the manager refused us: the cap, less up to a tenth of it at
    /// random (so a fleet refused at once, say after a bad `agents.yml` edit, does not
    /// come back in lockstep), never a hot loop.
    pub fn refused_delay(&mut self) -> Duration {
        self.after_stable = false;
        self.failures = self.failures.saturating_add(1);
        self.cap - (self.cap / 10).mul_f64(rand::random::<f64>())
    }

    /// A session ended after living `lived`: when it was stable, reset, with the
    /// first retry spread over [`Backoff::AFTER_STABLE`].
    pub fn session_ended(&mut self, lived: Duration) {
        if lived >= Self::STABLE {
            self.failures = 0;
            self.after_stable = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_to_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(S, 64 * S);
        let mut ceilings = vec![];
        for _ in 0..10 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d <= c);
            ceilings.push(c.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 64, 64, 64]);
        // A short session changes nothing.
        b.session_ended(Duration::from_secs(5));
        assert_eq!(b.ceiling(), 64 * S);
        b.session_ended(Backoff::STABLE);
        assert_eq!(b.ceiling(), Backoff::AFTER_STABLE);
        let r = b.refused_delay();
        assert!(r >= 57 * S && r <= 64 * S, "{r:?}");
    }

    #[test]
    fn the_first_retry_after_a_stable_session_is_spread_then_the_sequence_restarts() {
        let mut b = Backoff::new(S, 64 * S);
        b.next_delay();
        b.next_delay();
        b.session_ended(Backoff::STABLE + S);
        let mut ceilings = vec![b.ceiling().as_secs()];
        assert!(b.next_delay() <= Backoff::AFTER_STABLE);
        for _ in 0..3 {
            ceilings.push(b.ceiling().as_secs());
            b.next_delay();
        }
        assert_eq!(ceilings, [Backoff::AFTER_STABLE.as_secs(), 1, 2, 4]);
        // Never above the cap.
        let mut small = Backoff::new(S, 4 * S);
        small.session_ended(Backoff::STABLE);
        assert_eq!(small.ceiling(), 4 * S);
    }

    #[test]
    fn a_fleet_after_a_stable_session_comes_back_over_the_whole_window() {
        // What a fleet does when its manager restarts: every agent draws its first
        // delay. Spread over [0, AFTER_STABLE], not [0, base]: the chance that 2,000
        // uniform draws miss either half of the window is 2^-1999.
        let window = Backoff::AFTER_STABLE.as_secs_f64();
        let delays: Vec<f64> = (0..2000)
            .map(|_| {
                let mut b = Backoff::new(S, 64 * S);
                b.session_ended(Backoff::STABLE);
                b.next_delay().as_secs_f64()
            })
            .collect();
        assert!(delays.iter().all(|d| *d <= window));
        assert!(delays.iter().any(|d| *d > window / 2.0));
        assert!(delays.iter().any(|d| *d < window / 2.0));
        let over_base = delays.iter().filter(|d| **d > 1.0).count();
        assert!(over_base > 1000, "only {over_base} of 2000 above 1 s");
    }
}
