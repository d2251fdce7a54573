//! [`SessionState`]: what the two halves of one AMQP session share.
//!
//! Whoever first learns that the session cannot go on (the consumer task when the
//! broker connection drops, the confirm watcher when a message comes back unroutable,
//! the manager's demultiplexer when the session exceeds its byte budget)
//! records the error here. The reader then returns it at once, ahead of anything still
//! buffered, so the session layer fails its pending calls immediately; the writer
//! refuses further messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use futures::task::AtomicWaker;
use redpepper_core::error::TransportError;

/// Failure slot and reader wake-up of one session.
#[derive(Debug)]
pub(crate) struct SessionState {
    session: String,
    failed: AtomicBool,
    error: Mutex<Option<TransportError>>,
    message: OnceLock<String>,
    waker: AtomicWaker,
}

impl SessionState {
    /// A healthy session named `session` (its id).
    pub(crate) fn new(session: String) -> Self {
        Self {
            session,
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            message: OnceLock::new(),
            waker: AtomicWaker::new(),
        }
    }

    /// The session id.
    pub(crate) fn session(&self) -> &str {
        &self.session
    }

    /// Record why the session failed (the first reason wins) and wake the reader.
    /// Returns whether this call recorded it.
    pub(crate) fn fail(&self, error: TransportError) -> bool {
        if self.message.set(error.to_string()).is_err() {
            return false;
        }
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.failed.store(true, Ordering::Release);
        self.waker.wake();
        true
    }

    /// Whether the session failed.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The failure, for the reader (once; later calls get `None`).
    pub(crate) fn take_error(&self) -> Option<TransportError> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The failure as text, for the writer.
    pub(crate) fn failure(&self) -> Option<TransportError> {
        self.message
            .get()
            .map(|m| TransportError::Other(format!("session {} failed: {m}", self.session)))
    }

    /// Wake `waker` when the session fails.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_failure_wins() {
        let s = SessionState::new("abc".into());
        assert!(!s.is_failed());
        assert!(s.failure().is_none());
        assert!(s.fail(TransportError::Other("broker connection lost".into())));
        assert!(!s.fail(TransportError::Closed));
        assert!(s.is_failed());
        assert_eq!(
            s.failure().unwrap().to_string(),
            "session abc failed: broker connection lost"
        );
        assert_eq!(
            s.take_error().unwrap().to_string(),
            "broker connection lost"
        );
        assert!(s.take_error().is_none());
    }
}
