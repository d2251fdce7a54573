//! The manager's session table: session id → the session's inbound buffer, the broker
//! user that opened it, and its failure slot.
//!
//! The broker link hands every delivery to [`Table::deliver`], which checks it against
//! the session it names: a missing or different `user_id` is another broker user trying
//! to write into the session, so the message is dropped, logged, and the session ends.
//! Deliveries for sessions we do not know (long gone, or never ours) are dropped with a
//! rate-limited log line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redpepper_core::error::TransportError;
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

use super::state::SessionState;
use super::wire::Envelope;

/// At most one "dropped" log line per this interval (with a count of the others).
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One session's entry.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Where its deliveries go (its reader).
    pub(crate) tx: mpsc::Sender<Bytes>,
    /// The broker user that opened it (from the hello's `user_id`).
    pub(crate) user: String,
    /// Its failure slot.
    pub(crate) state: Arc<SessionState>,
}

/// What becomes of a session after one delivery.
enum Outcome {
    /// Delivered; the session goes on.
    Keep,
    /// The peer closed its end (or the reader is gone): forget the session.
    End,
    /// The session cannot go on.
    Fail(TransportError),
}

#[derive(Debug, Default)]
struct DropLog {
    last: Option<Instant>,
    suppressed: u64,
}

/// The sessions of one manager listener.
#[derive(Debug, Default)]
pub(crate) struct Table {
    sessions: Mutex<HashMap<String, Entry>>,
    dropped: Mutex<DropLog>,
    emptied: Notify,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a session; `false` if the id is taken.
    pub(crate) fn insert(&self, session: &str, entry: Entry) -> bool {
        let mut map = self.lock();
        if map.contains_key(session) {
            return false;
        }
        map.insert(session.to_owned(), entry);
        true
    }

    /// Whether the session is known.
    pub(crate) fn contains(&self, session: &str) -> bool {
        self.lock().contains_key(session)
    }

    /// How many sessions there are.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Forget a session (its reader sees the end of the stream).
    pub(crate) fn remove(&self, session: &str) {
        let mut map = self.lock();
        if map.remove(session).is_some() && map.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Wait until the table is empty.
    pub(crate) async fn wait_empty(&self) {
        loop {
            let notified = self.emptied.notified();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Fail a session with `error` and forget it.
    pub(crate) fn fail(&self, session: &str, error: TransportError) {
        let entry = self.lock().remove(session);
        if let Some(entry) = entry {
            entry.state.fail(error);
            if self.lock().is_empty() {
                self.emptied.notify_waiters();
            }
        }
    }

    /// Fail every session (the broker connection is gone) and forget them all.
    pub(crate) fn fail_all(&self, reason: &str) {
        let all: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        for entry in all {
            entry.state.fail(TransportError::Other(reason.to_owned()));
        }
        self.emptied.notify_waiters();
    }

    /// Route one delivery to its session. `data` is the body; `max` the largest
    /// accepted payload.
    pub(crate) fn deliver(&self, env: &Envelope<'_>, data: Vec<u8>, max: usize) {
        let mut map = self.lock();
        let Some(entry) = map.get(env.session) else {
            drop(map);
            // An end-of-stream marker after the session ended (it follows every Bye)
            // is expected; anything else is worth a (rate-limited) line.
            if !env.eof {
                self.log_unknown(env.session, env.user);
            }
            return;
        };
        let outcome = if env.user != Some(entry.user.as_str()) {
            warn!(
                session = env.session,
                owner = %entry.user,
                sender = env.user.unwrap_or("<none>"),
                "message from another broker user rejected: ending the session"
            );
            Outcome::Fail(TransportError::Protocol(format!(
                "session {}: a message from broker user {} was rejected (the session \
                 belongs to {})",
                env.session,
                env.user
                    .map_or_else(|| "<none: no user_id>".to_owned(), |u| format!("{u:?}")),
                entry.user
            )))
        } else if env.eof {
            Outcome::End
        } else if data.len() > max {
            Outcome::Fail(TransportError::TooLarge {
                len: data.len(),
                max,
            })
        } else {
            match entry.tx.try_send(Bytes::from(data)) {
                Ok(()) => Outcome::Keep,
                Err(mpsc::error::TrySendError::Closed(_)) => Outcome::End,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Outcome::Fail(TransportError::Other(format!(
                        "session {}: receive buffer full ({} messages): the session does not \
                         read as fast as its peer sends",
                        env.session,
                        entry.tx.max_capacity()
                    )))
                }
            }
        };
        if let Outcome::Keep = outcome {
            return;
        }
        let removed = map.remove(env.session);
        let empty = map.is_empty();
        drop(map);
        if let (Some(entry), Outcome::Fail(e)) = (removed, outcome) {
            entry.state.fail(e);
        }
        if empty {
            self.emptied.notify_waiters();
        }
    }

    fn log_unknown(&self, session: &str, user: Option<&str>) {
        let mut log = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match log.last {
            Some(last) if now.duration_since(last) < DROP_LOG_INTERVAL => log.suppressed += 1,
            _ => {
                info!(
                    session,
                    user = user.unwrap_or("<none>"),
                    others_since_last_report = log.suppressed,
                    "dropping a message for an unknown session (ended, or never ours)"
                );
                log.last = Some(now);
                log.suppressed = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use lapin::BasicProperties;

    use super::*;

    fn add(
        table: &Table,
        session: &str,
        user: &str,
        cap: usize,
    ) -> (mpsc::Receiver<Bytes>, Arc<SessionState>) {
        let (tx, rx) = mpsc::channel(cap);
        let state = Arc::new(SessionState::new(session.into()));
        let entry = Entry {
            tx,
            user: user.into(),
            state: Arc::clone(&state),
        };
        assert!(table.insert(session, entry));
        (rx, state)
    }

    fn props(session: &str, user: Option<&str>) -> BasicProperties {
        let p = BasicProperties::default().with_correlation_id(session.into());
        match user {
            Some(u) => p.with_user_id(u.into()),
            None => p,
        }
    }

    #[test]
    fn routes_by_session_and_checks_the_user() {
        let table = Table::default();
        let (mut rx, state) = add(&table, "s1", "alice", 8);
        let p = props("s1", Some("alice"));
        table.deliver(&Envelope::open(&p).unwrap(), b"hi".to_vec(), 100);
        assert_eq!(rx.try_recv().unwrap(), "hi");

        let p = props("s1", Some("mallory"));
        table.deliver(&Envelope::open(&p).unwrap(), b"evil".to_vec(), 100);
        assert!(
            rx.try_recv().is_err(),
            "the intruder's message was delivered"
        );
        let e = state.take_error().unwrap().to_string();
        assert!(e.contains("broker user \"mallory\" was rejected"), "{e}");
        assert!(e.contains("belongs to alice"), "{e}");
        assert!(!table.contains("s1"));
    }

    #[test]
    fn a_missing_user_id_is_rejected_too() {
        let table = Table::default();
        let (_rx, state) = add(&table, "s1", "alice", 8);
        let p = props("s1", None);
        table.deliver(&Envelope::open(&p).unwrap(), b"x".to_vec(), 100);
        assert!(state
            .take_error()
            .unwrap()
            .to_string()
            .contains("no user_id"));
    }

    #[test]
    fn too_large_full_and_eof_end_the_session() {
        let table = Table::default();
        let (_rx1, s1) = add(&table, "s1", "a", 1);
        let p = props("s1", Some("a"));
        table.deliver(&Envelope::open(&p).unwrap(), vec![0; 101], 100);
        assert!(matches!(
            s1.take_error(),
            Some(TransportError::TooLarge { len: 101, max: 100 })
        ));

        let (_rx2, s2) = add(&table, "s2", "a", 1);
        let p = props("s2", Some("a"));
        table.deliver(&Envelope::open(&p).unwrap(), vec![1], 100);
        table.deliver(&Envelope::open(&p).unwrap(), vec![2], 100);
        assert!(s2
            .take_error()
            .unwrap()
            .to_string()
            .contains("receive buffer full"));

        let (mut rx3, s3) = add(&table, "s3", "a", 4);
        let p = props("s3", Some("a")).with_type(super::super::EOF_TYPE.into());
        table.deliver(&Envelope::open(&p).unwrap(), vec![], 100);
        assert!(!s3.is_failed());
        assert!(matches!(
            rx3.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn fail_all_empties_the_table() {
        let table = Table::default();
        let (_a, sa) = add(&table, "a", "u", 1);
        let (_b, sb) = add(&table, "b", "u", 1);
        table.fail_all("broker connection lost");
        assert_eq!(table.len(), 0);
        assert!(sa.is_failed() && sb.is_failed());
        let p = props("a", Some("u"));
        table.deliver(&Envelope::open(&p).unwrap(), vec![1], 100);
    }
}
