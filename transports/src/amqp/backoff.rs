//! [`Backoff`]: the delays between reconnection attempts of the manager's broker
//! links (the AMQP listener and the cluster link): 250 ms doubling up to 5 s, each
//! delay drawn between half and all of its ceiling, so managers that lost the same
//! broker do not come back in lockstep.

use std::time::Duration;

/// First reconnection delay's ceiling.
pub(crate) const RECONNECT_BASE: Duration = Duration::from_millis(250);
/// Longest reconnection delay.
pub(crate) const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Reconnection delays: exponential with jitter, reset after a success.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The ceiling of the next delay (no jitter).
    fn ceiling(&self) -> Duration {
        RECONNECT_BASE
            .saturating_mul(1u32 << self.failures.min(8))
            .min(RECONNECT_MAX)
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }

    /// A connection worked: start again from the shortest delay.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(
            first >= RECONNECT_BASE / 2 && first <= RECONNECT_BASE,
            "{first:?}"
        );
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= RECONNECT_MAX, "{d:?}");
        }
        assert_eq!(b.ceiling(), RECONNECT_MAX);
        b.reset();
        assert_eq!(b.ceiling(), RECONNECT_BASE);
    }
}
