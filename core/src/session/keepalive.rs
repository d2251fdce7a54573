//! Keepalive as explicit state: when to ping next, which ping is outstanding, and
//! what a Pong means. No I/O and no clock of its own: the driver passes `now` in.
//!
//! A ping times out when `timeout` passes with neither its Pong nor any other message
//! from the peer: a peer whose messages keep arriving is alive even when its Pong is
//! queued behind them (over a broker, a burst the peer sent can take longer to read
//! than the ping timeout).
//!
//! Receipt barriers ([`Session::barrier`](crate::Session::barrier)) ride on the same
//! single outstanding ping: a barrier asked for while no ping is outstanding starts one
//! at once (the driver sends it through the data queue, behind everything queued
//! before); one asked for while a ping is outstanding waits for the next ping, started
//! as soon as that Pong arrives (the outstanding ping may have been written before the
//! messages the barrier covers). The Pong answers every barrier riding on its ping.

use std::time::Duration;

use tokio::sync::oneshot;
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
    outstanding: Option<Outstanding>,
    /// A message arrived since the timeout window of the outstanding ping began.
    heard: bool,
    /// Barriers answered by the Pong of the outstanding ping.
    riding: Vec<oneshot::Sender<()>>,
    /// Barriers waiting for the next ping.
    waiting: Vec<oneshot::Sender<()>>,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    data: i64,
    sent: Instant,
    /// Start of the current timeout window: when the ping was sent, moved on each
    /// time a window ended with messages heard.
    window: Instant,
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
            heard: false,
            riding: Vec::new(),
            waiting: Vec::new(),
        }
    }

    /// A barrier was asked for: `Some(data)` when a ping starts now for it (the driver
    /// sends `Ping { data }` behind the messages already queued), `None` when it waits
    /// for the ping after the outstanding one ([`Keepalive::next_barrier`]).
    pub(crate) fn barrier(
        &mut self,
        tx: oneshot::Sender<()>,
        now: Instant,
        data: i64,
    ) -> Option<i64> {
        self.waiting.push(tx);
        self.next_barrier(now, data)
    }

    /// Start the ping waiting barriers need, if none is outstanding: `Some(data)` to
    /// send. Called after a barrier is asked for and after each Pong.
    pub(crate) fn next_barrier(&mut self, now: Instant, data: i64) -> Option<i64> {
        self.waiting.retain(|tx| !tx.is_closed());
        if self.outstanding.is_some() || self.waiting.is_empty() {
            return None;
        }
        self.start_ping(now, data);
        self.riding.append(&mut self.waiting);
        Some(data)
    }

    fn start_ping(&mut self, now: Instant, data: i64) {
        self.outstanding = Some(Outstanding {
            data,
            sent: now,
            window: now,
        });
        self.heard = false;
    }

    /// A message arrived from the peer (cheap: no clock read).
    pub(crate) fn heard(&mut self) {
        self.heard = self.outstanding.is_some();
    }

    /// The next instant at which [`Keepalive::on_deadline`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.outstanding {
            Some(o) => Some(o.window + self.timeout),
            None => self.next_ping,
        }
    }

    /// Called when [`Keepalive::deadline`] has passed.
    pub(crate) fn on_deadline(&mut self, now: Instant, data: i64) -> Tick {
        if let Some(o) = &mut self.outstanding {
            if now >= o.window + self.timeout {
                if std::mem::take(&mut self.heard) {
                    o.window = now;
                    return Tick::Idle;
                }
                return Tick::TimedOut(SessionError::PingTimeout {
                    secs: self.timeout.as_secs_f64(),
                });
            }
            return Tick::Idle;
        }
        match self.next_ping {
            Some(at) if now >= at => {
                self.start_ping(now, data);
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
        self.heard = false;
        match self.outstanding.take() {
            Some(o) if o.data == data => {
                for tx in self.riding.drain(..) {
                    let _ = tx.send(());
                }
                // Next ping an interval after this one was sent (MissedTickBehavior::Delay).
                self.next_ping =
                    (!self.interval.is_zero()).then(|| (o.sent + self.interval).max(now));
                Ok(Some(now.saturating_duration_since(o.sent)))
            }
            Some(o) => Err(SessionError::PongMismatch {
                sent: o.data,
                got: data,
            }),
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
    fn messages_from_the_peer_keep_a_late_pong_waiting() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(s, 5 * s, t0);
        k.heard(); // before any ping: means nothing
        assert_eq!(k.on_deadline(t0 + s, 1), Tick::SendPing(1));
        k.heard();
        // The window ends with a message heard: a new window starts.
        assert_eq!(k.on_deadline(t0 + 6 * s, 0), Tick::Idle);
        assert_eq!(k.deadline(), Some(t0 + 11 * s));
        // A window with nothing heard: the ping times out.
        assert!(matches!(
            k.on_deadline(t0 + 11 * s, 0),
            Tick::TimedOut(SessionError::PingTimeout { .. })
        ));
        // The late Pong still gives the round trip from the ping.
        let mut k = Keepalive::new(s, 5 * s, t0);
        k.on_deadline(t0 + s, 2);
        k.heard();
        k.on_deadline(t0 + 6 * s, 0);
        assert_eq!(k.on_pong(2, t0 + 8 * s), Ok(Some(7 * s)));
        assert_eq!(k.deadline(), Some(t0 + 8 * s));
    }

    #[test]
    fn barriers_ride_the_next_ping_sent_after_them() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(30 * s, 5 * s, t0);
        // No ping outstanding: a barrier starts one at once.
        let (tx1, mut rx1) = oneshot::channel();
        assert_eq!(k.barrier(tx1, t0, 11), Some(11));
        // A second barrier waits for the next ping: the first may be on the wire already.
        let (tx2, mut rx2) = oneshot::channel();
        assert_eq!(k.barrier(tx2, t0, 12), None);
        assert_eq!(k.on_pong(11, t0 + s), Ok(Some(s)));
        assert_eq!(rx1.try_recv(), Ok(()));
        assert!(rx2.try_recv().is_err());
        assert_eq!(k.next_barrier(t0 + s, 13), Some(13));
        assert_eq!(
            k.next_barrier(t0 + s, 14),
            None,
            "one ping outstanding at most"
        );
        assert_eq!(k.on_pong(13, t0 + 2 * s), Ok(Some(s)));
        assert_eq!(rx2.try_recv(), Ok(()));
        assert_eq!(k.next_barrier(t0 + 2 * s, 15), None, "nobody waits");
        // The barrier ping also times out like any ping.
        let (tx3, _rx3) = oneshot::channel();
        assert_eq!(k.barrier(tx3, t0 + 3 * s, 16), Some(16));
        assert!(matches!(
            k.on_deadline(t0 + 8 * s, 0),
            Tick::TimedOut(SessionError::PingTimeout { .. })
        ));
    }

    #[test]
    fn a_barrier_with_keepalive_disabled_does_not_start_pinging() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Duration::ZERO, Duration::from_secs(5), t0);
        let (tx, _rx) = oneshot::channel();
        assert_eq!(k.barrier(tx, t0, 1), Some(1));
        assert_eq!(k.on_pong(1, t0), Ok(Some(Duration::ZERO)));
        assert_eq!(k.deadline(), None);
    }

    #[test]
    fn disabled_and_unsolicited() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Duration::ZERO, Duration::from_secs(5), t0);
        assert_eq!(k.deadline(), None);
        assert_eq!(k.on_pong(3, t0), Ok(None));
    }
}
