//! Byte budgets of the manager's session inboxes.
//!
//! The manager acknowledges a delivery as soon as it is in the session's inbox (an
//! in-memory channel its reader drains), so the broker's prefetch window does not
//! bound what waits in our memory: these budgets do. Every session has a [`Meter`]:
//! the bytes delivered to it and not yet read, at most its session budget. A session
//! not yet taken by `accept` (its hello and whatever followed, waiting in the accept
//! backlog) also draws on the listener's [`Pool`], shared by all such sessions. A
//! delivery that would exceed either ends the session it is for (and only that one);
//! a hello that would exceed the pool is answered "busy".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Smallest default session budget.
pub(crate) const MIN_SESSION_BUDGET: usize = 8 * 1024 * 1024;
/// Smallest default pending budget.
pub(crate) const MIN_PENDING_BUDGET: usize = 64 * 1024 * 1024;

/// The default budget of one session: `max(4 * max_message_size, 8 MiB)`.
pub(crate) fn default_session_budget(max_message_size: usize) -> usize {
    max_message_size.saturating_mul(4).max(MIN_SESSION_BUDGET)
}

/// The default budget of all sessions not yet accepted together:
/// `max(8 * max_message_size, 64 MiB)`.
pub(crate) fn default_pending_budget(max_message_size: usize) -> usize {
    max_message_size.saturating_mul(8).max(MIN_PENDING_BUDGET)
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Over {
    /// The session's own budget: `unread` bytes wait, `len` more arrived.
    Session {
        unread: usize,
        len: usize,
        budget: usize,
    },
    /// The pool of sessions not yet accepted: `held` bytes wait there.
    Pending {
        held: usize,
        len: usize,
        budget: usize,
    },
}

impl Over {
    /// What happened, for logs and the session's error.
    pub(crate) fn describe(&self, session: &str) -> String {
        match self {
            Over::Session {
                unread,
                len,
                budget,
            } => format!(
                "session {session}: {unread} unread bytes plus a message of {len} bytes \
                 exceed the session's budget of {budget} bytes (the session does not read \
                 as fast as its peer sends)"
            ),
            Over::Pending { held, len, budget } => format!(
                "session {session}: {held} bytes already wait in sessions not yet \
                 accepted; a message of {len} bytes more exceeds their budget of {budget} \
                 bytes"
            ),
        }
    }
}

/// The bytes waiting in sessions not yet accepted, and their limit.
#[derive(Debug)]
pub(crate) struct Pool {
    held: AtomicUsize,
    budget: usize,
}

impl Pool {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            budget,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    fn try_add(&self, len: usize) -> Result<(), Over> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(len).filter(|&sum| sum <= self.budget)
            })
            .map(drop)
            .map_err(|held| Over::Pending {
                held,
                len,
                budget: self.budget,
            })
    }

    fn release(&self, len: usize) {
        // Never more than was added (the meter's lock keeps the two in step).
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(len))
            });
    }
}

#[derive(Debug)]
struct Level {
    unread: usize,
    pending: bool,
}

/// One session's unread bytes.
#[derive(Debug)]
pub(crate) struct Meter {
    level: Mutex<Level>,
    budget: usize,
    pool: Arc<Pool>,
}

impl Meter {
    /// A session not yet accepted, with `budget` bytes of its own, drawing on `pool`
    /// until accepted.
    pub(crate) fn new(budget: usize, pool: Arc<Pool>) -> Self {
        Self {
            level: Mutex::new(Level {
                unread: 0,
                pending: true,
            }),
            budget,
            pool,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Level> {
        self.level.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `len` bytes are about to enter the session's inbox: count them, or say which
    /// budget they would exceed (nothing is counted then).
    pub(crate) fn take_in(&self, len: usize) -> Result<(), Over> {
        let mut level = self.lock();
        match level.unread.checked_add(len) {
            Some(sum) if sum <= self.budget => {}
            _ => {
                return Err(Over::Session {
                    unread: level.unread,
                    len,
                    budget: self.budget,
                });
            }
        }
        if level.pending {
            self.pool.try_add(len)?;
        }
        level.unread += len;
        Ok(())
    }

    /// The reader took `len` bytes.
    pub(crate) fn read(&self, len: usize) {
        let mut level = self.lock();
        level.unread = level.unread.saturating_sub(len);
        if level.pending {
            self.pool.release(len);
        }
    }

    /// The session left the accept backlog (accepted, or dropped): its bytes no longer
    /// count against the pool.
    pub(crate) fn accepted(&self) {
        let mut level = self.lock();
        if std::mem::replace(&mut level.pending, false) {
            self.pool.release(level.unread);
        }
    }

    /// Bytes delivered and not yet read.
    #[cfg(test)]
    pub(crate) fn unread(&self) -> usize {
        self.lock().unread
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(default_session_budget(1 << 20), 8 << 20);
        assert_eq!(default_session_budget(16 << 20), 64 << 20);
        assert_eq!(default_pending_budget(1 << 20), 64 << 20);
        assert_eq!(default_pending_budget(usize::MAX), usize::MAX);
    }

    #[test]
    fn a_session_budget_bounds_unread_bytes() {
        let pool = Arc::new(Pool::new(1000));
        let m = Meter::new(100, Arc::clone(&pool));
        m.accepted();
        m.take_in(60).unwrap();
        let over = m.take_in(41).unwrap_err();
        assert_eq!(
            over,
            Over::Session {
                unread: 60,
                len: 41,
                budget: 100
            }
        );
        assert!(over.describe("s1").contains("budget of 100 bytes"));
        m.read(60);
        m.take_in(100).unwrap();
        assert_eq!(
            pool.held(),
            0,
            "an accepted session draws nothing on the pool"
        );
    }

    #[test]
    fn sessions_not_yet_accepted_share_the_pool() {
        let pool = Arc::new(Pool::new(100));
        let a = Meter::new(1000, Arc::clone(&pool));
        let b = Meter::new(1000, Arc::clone(&pool));
        a.take_in(70).unwrap();
        let over = b.take_in(31).unwrap_err();
        assert!(matches!(over, Over::Pending { held: 70, .. }), "{over:?}");
        assert_eq!(b.unread(), 0);
        b.take_in(30).unwrap();
        assert_eq!(pool.held(), 100);
        a.accepted();
        assert_eq!(pool.held(), 30);
        a.accepted();
        assert_eq!(pool.held(), 30);
        b.read(10);
        assert_eq!(pool.held(), 20);
        b.accepted();
        assert_eq!(pool.held(), 0);
        a.read(70);
        assert_eq!((a.unread(), pool.held()), (0, 0));
    }
}
