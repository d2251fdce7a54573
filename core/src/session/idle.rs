//! The count of our calls in flight, and a wait for it to reach zero.
//!
//! A call costs two atomic operations here (one when it starts, one when it ends),
//! no lock and no allocation. Waking whoever waits for the count to reach zero takes
//! the [`Notify`]'s lock, so it happens only when the count does reach zero *and*
//! someone waits (`waiters` is not 0).
//!
//! Why no wake-up is lost: a waiter counts itself in `waiters`, creates its
//! [`Notify::notified`] future, and only then reads the count; a call ending
//! decrements the count and only then reads `waiters`. All four are `SeqCst`, so if the
//! waiter read a count above zero, the decrement that brought it to zero comes later
//! in that single order, and so does that call's read of `waiters`, which therefore
//! sees the waiter and calls [`Notify::notify_waiters`], which wakes every `Notified`
//! created before it, polled yet or not.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct CallCount {
    count: AtomicUsize,
    waiters: AtomicUsize,
    zero: Notify,
}

impl CallCount {
    /// A call started.
    pub(crate) fn start(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// A call ended (it was answered, failed, timed out or given up).
    pub(crate) fn end(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 && self.waiters.load(Ordering::SeqCst) > 0
        {
            self.zero.notify_waiters();
        }
    }

    /// Calls started and not ended.
    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Resolves at once when no call is in flight, otherwise as soon as the count has
    /// reached zero (even if a new call started right after).
    pub(crate) async fn zero(&self) {
        let _waiting = Waiting::new(&self.waiters);
        let reached = self.zero.notified();
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        reached.await;
    }
}

/// Counts a waiter in `waiters` for as long as it lives (a waiter given up on, by a
/// timeout, stops counting).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::SeqCst);
        Self(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn zero_is_ready_at_once_without_calls() {
        let c = CallCount::default();
        assert!(c.zero().now_or_never().is_some());
        c.start();
        c.end();
        assert!(c.zero().now_or_never().is_some());
    }

    #[tokio::test]
    async fn zero_waits_for_the_last_call_and_stops_counting_its_waiter() {
        let c = CallCount::default();
        c.start();
        c.start();
        let mut wait = Box::pin(c.zero());
        assert!((&mut wait).now_or_never().is_none());
        assert_eq!(c.waiters.load(Ordering::SeqCst), 1);
        c.end();
        assert!(
            (&mut wait).now_or_never().is_none(),
            "one call still in flight"
        );
        c.end();
        assert!((&mut wait).now_or_never().is_some());
        drop(wait);
        assert_eq!(c.waiters.load(Ordering::SeqCst), 0);
        // A waiter given up on (dropped while waiting) stops counting too.
        c.start();
        let mut wait = Box::pin(c.zero());
        assert!((&mut wait).now_or_never().is_none());
        drop(wait);
        assert_eq!(c.waiters.load(Ordering::SeqCst), 0);
        c.end();
    }
}
