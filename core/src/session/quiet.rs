//! At most one log line per kind and window for what a peer can provoke at will (a
//! refused request, a response nobody asked for): the first is logged, the next ones
//! in the window are counted, and the next line logged carries that count.

use std::time::Duration;

use tokio::time::Instant;

/// How long a logged line keeps its kind quiet.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// One kind of line.
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    /// When the current window ends (`None`: no line logged yet).
    until: Option<Instant>,
    /// Lines left out in the current window.
    suppressed: u64,
}

impl Quiet {
    /// `Some(suppressed)` when a line is to be logged now (with the number left out
    /// since the previous one), `None` when this one is left out.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.until {
            Some(until) if now < until => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.until = Some(now + WINDOW);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_with_the_count_left_out() {
        let t0 = Instant::now();
        let mut q = Quiet::default();
        assert_eq!(q.admit(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(q.admit(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(q.admit(t0 + WINDOW), Some(5));
        assert_eq!(q.admit(t0 + WINDOW + Duration::from_secs(1)), None);
        assert_eq!(q.admit(t0 + WINDOW * 3), Some(1));
    }
}
