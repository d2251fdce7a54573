//! Rate-limited log lines, for what a peer can provoke at will (a refused request, a
//! stray message, a bad token): at most `burst` lines per `interval` and kind; the
//! occurrences left out are counted, and the next line logged carries that count, so
//! junk cannot flood the logs and the operator still sees how much there was.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use redpepper_core::quiet::LogLimit;
//!
//! static REFUSED: LogLimit = LogLimit::new(Duration::from_secs(10), 1);
//! if let Some(others) = REFUSED.admit() {
//!     tracing::warn!(others_since_last_report = others, "request refused");
//! }
//! ```
//!
//! [`printable`] is the one way a string a peer chose (an agent id in a refused hello,
//! a Bye reason, a notification type, a method, an HTTP header) reaches a log line or
//! the admin event ring: at most [`PRINTABLE_CHARS`] characters, control characters,
//! quotes and backslashes escaped.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The default interval: one line per kind every 10 seconds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Window {
    /// When the current interval started (`None`: nothing logged yet).
    start: Option<Instant>,
    /// Lines logged in the current interval.
    logged: u32,
    /// Occurrences left out since the last line logged.
    suppressed: u64,
}

/// One kind of rate-limited log line. Uncontended in practice: it is consulted only on
/// the path that logs.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    burst: u32,
    window: Mutex<Window>,
}

impl Default for LogLimit {
    /// One line per [`DEFAULT_INTERVAL`].
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL, 1)
    }
}

impl LogLimit {
    /// At most `burst` lines (at least one) per `interval`.
    pub const fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            burst: if burst == 0 { 1 } else { burst },
            window: Mutex::new(Window {
                start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether to log this occurrence now: `Some(n)`, with `n` the occurrences left out
    /// since the previous line, or `None` to stay quiet (it is counted).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// [`admit`](Self::admit) at a given time.
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let expired = w
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if expired {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged < self.burst {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed = w.suppressed.saturating_add(1);
            None
        }
    }

    /// Occurrences left out since the last line logged.
    pub fn suppressed(&self) -> u64 {
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .suppressed
    }
}

/// Most characters of a peer's string [`printable`] keeps.
pub const PRINTABLE_CHARS: usize = 128;

/// A peer's string made safe for a log line or an event: at most [`PRINTABLE_CHARS`]
/// characters (longer ones end in `…` and the count of characters left out), each
/// escaped as Rust's `char::escape_debug` does (control characters as `\n`, `\u{1b}`,
/// quotes and backslashes with a backslash). The result is at most about 10 bytes per
/// kept character, whatever the input.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(PRINTABLE_CHARS));
    let mut chars = s.chars();
    for c in chars.by_ref().take(PRINTABLE_CHARS) {
        out.extend(c.escape_debug());
    }
    let rest = chars.count();
    if rest > 0 {
        out.push_str(&format!("…({rest} more)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(printable("web-1"), "web-1");
        assert_eq!(printable("a\nb\"c\\\u{1b}"), "a\\nb\\\"c\\\\\\u{1b}");
        let long = printable(&"x".repeat(1000));
        assert_eq!(long, format!("{}…(872 more)", "x".repeat(PRINTABLE_CHARS)));
        assert!(printable(&"\u{0}".repeat(10_000)).len() <= PRINTABLE_CHARS * 10 + 32);
    }

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let t0 = Instant::now();
        let q = LogLimit::default();
        assert_eq!(q.admit_at(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(q.admit_at(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(q.suppressed(), 5);
        assert_eq!(q.admit_at(t0 + DEFAULT_INTERVAL), Some(5));
        assert_eq!(
            q.admit_at(t0 + DEFAULT_INTERVAL + Duration::from_secs(1)),
            None
        );
        assert_eq!(q.admit_at(t0 + DEFAULT_INTERVAL * 3), Some(1));
    }

    #[test]
    fn a_burst_per_interval() {
        let q = LogLimit::new(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        let admitted: Vec<Option<u64>> = (0..25).map(|_| q.admit_at(t0)).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 10);
        assert!(admitted[..10].iter().all(|a| *a == Some(0)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(q.admit_at(t1), Some(15));
        assert_eq!(q.admit_at(t1), Some(0));
    }
}
