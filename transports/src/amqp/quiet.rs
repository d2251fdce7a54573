//! Rate-limited log lines for what any broker user can trigger at will (stray messages,
//! malformed hellos, messages from another broker user, a busy manager): one line per
//! [`LOG_INTERVAL`] and kind, carrying the number of occurrences left unlogged since
//! the previous line, so a flood of junk cannot flood the logs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per this interval and kind.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Window {
    last: Option<Instant>,
    suppressed: u64,
}

/// One kind of rate-limited log line.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    window: Mutex<Window>,
}

impl LogLimit {
    /// Whether to log this occurrence: `Some(n)` with the number of occurrences not
    /// logged since the previous line, `None` to stay quiet (it is counted).
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        match w.last {
            Some(last) if now.saturating_duration_since(last) < LOG_INTERVAL => {
                w.suppressed = w.suppressed.saturating_add(1);
                None
            }
            _ => {
                w.last = Some(now);
                Some(std::mem::take(&mut w.suppressed))
            }
        }
    }

    /// Occurrences not logged since the last line (for tests).
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u64 {
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .suppressed
    }
}

/// The manager's rate-limited log lines, one limit per kind.
#[derive(Debug, Default)]
pub(crate) struct ManagerNoise {
    /// A message for a session we do not know.
    pub(crate) unknown: LogLimit,
    /// A message from a broker user other than the session's.
    pub(crate) foreign: LogLimit,
    /// A message that is not ours (no or invalid session id, unknown type).
    pub(crate) not_ours: LogLimit,
    /// A hello refused for what it carries (no user_id or reply_to, too large...).
    pub(crate) bad_hello: LogLimit,
    /// A hello turned away because the manager is busy.
    pub(crate) busy: LogLimit,
}

/// An agent inbox's rate-limited log lines.
#[derive(Debug, Default)]
pub(crate) struct AgentNoise {
    /// A message that is not ours.
    pub(crate) not_ours: LogLimit,
    /// A message for another session.
    pub(crate) other_session: LogLimit,
    /// A message from a broker user other than the manager's.
    pub(crate) foreign: LogLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_then_a_count_of_the_suppressed() {
        let limit = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(limit.admit_at(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.admit_at(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(limit.suppressed(), 5);
        assert_eq!(limit.admit_at(t0 + LOG_INTERVAL), Some(5));
        assert_eq!(limit.suppressed(), 0);
        assert_eq!(limit.admit_at(t0 + LOG_INTERVAL), None);
    }
}
