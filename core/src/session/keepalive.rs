//! Keepalive as explicit state: when to ping next, which ping is outstanding, and
//! what a Pong means. No I/O and no clock of its own: the driver passes `now` in.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::SessionError;

/// What the driver must do when the keepalive deadline passes.
#[derive(Debug, PartialEq)]
pub(crate) enum Tick {
    /// Send `Ping { data }`.
    SendPing(i64),
    /// The outstanding ping timed out: close the session with this error.
    TimedOut(SessionError),
    /// Nothing due yet.
    Idle,
}

#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    next_ping: Option<Instant>,
    outstanding: Option<(i64, Instant)>,
}

impl Keepalive {
    /// Pings every `interval` (zero disables) and allows `timeout` for each Pong.
    pub(crate) fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        let next_ping = (!interval.is_zero()).then(|| now + interval);
        Self {
            interval,
            timeout,
            next_ping,
            outstanding: None,
        }
    }

    /// The next instant at which [`Keepalive::on_deadline`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.outstanding {
            Some((_, sent)) => Some(sent + self.timeout),
            None => self.next_ping,
        }
    }

    /// Called when [`Keepalive::deadline`] has passed.
    pub(crate) fn on_deadline(&mut self, now: Instant, data: i64) -> Tick {
        if let Some((_, sent)) = self.outstanding {
            if now >= sent + self.timeout {
                return Tick::TimedOut(SessionError::PingTimeout {
                    secs: self.timeout.as_secs_f64(),
                });
            }
            return Tick::Idle;
        }
        match self.next_ping {
            Some(at) if now >= at => {
                self.outstanding = Some((data, now));
                Tick::SendPing(data)
            }
            _ => Tick::Idle,
        }
    }

    /// A Pong arrived: the round-trip time, nothing (unsolicited Pong, ignored like
    /// RedPepper does), or a mismatch error.
    pub(crate) fn on_pong(
        &mut self,
        data: i64,
        now: Instant,
    ) -> Result<Option<Duration>, SessionError> {
        match self.outstanding.take() {
            Some((sent_data, sent_at)) if sent_data == data => {
                // Next ping an interval after this one was sent (MissedTickBehavior::Delay).
                self.next_ping = Some(sent_at + self.interval).map(|t| t.max(now));
                Ok(Some(now.saturating_duration_since(sent_at)))
            }
            Some((sent, _)) => Err(SessionError::PongMismatch { sent, got: data }),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ping_pong_cycle() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(30 * s, 5 * s, t0);
        assert_eq!(k.deadline(), Some(t0 + 30 * s));
        assert_eq!(k.on_deadline(t0 + 10 * s, 7), Tick::Idle);
        assert_eq!(k.on_deadline(t0 + 30 * s, 7), Tick::SendPing(7));
        assert_eq!(k.deadline(), Some(t0 + 35 * s));
        let rtt = k.on_pong(7, t0 + 31 * s).unwrap();
        assert_eq!(rtt, Some(s));
        assert_eq!(k.deadline(), Some(t0 + 60 * s));
    }

    #[test]
    fn timeout_and_mismatch() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(s, s, t0);
        assert_eq!(k.on_deadline(t0 + s, 1), Tick::SendPing(1));
        assert!(matches!(
            k.on_deadline(t0 + 2 * s, 2),
            Tick::TimedOut(SessionError::PingTimeout { .. })
        ));
        let mut k = Keepalive::new(s, s, t0);
        k.on_deadline(t0 + s, 1);
        assert_eq!(
            k.on_pong(2, t0 + s),
            Err(SessionError::PongMismatch { sent: 1, got: 2 })
        );
    }

    #[test]
    fn disabled_and_unsolicited() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Duration::ZERO, Duration::from_secs(5), t0);
        assert_eq!(k.deadline(), None);
        assert_eq!(k.on_pong(3, t0), Ok(None));
    }
}
