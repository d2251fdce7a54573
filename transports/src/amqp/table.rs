//! The manager's session table: session id → the session's inbox, the broker user that
//! opened it, its byte meter and its failure slot.
//!
//! The broker link hands every delivery to [`Table::deliver`], which checks it against
//! the session it names. A missing or different `user_id` is another broker user
//! trying to write into the session: the message is dropped and logged (rate limited),
//! and the session goes on (ending it would hand anyone who learns a session id a way
//! to cut it). A delivery that would take the session over its byte budget, or over
//! its message count (`session_buffer`), ends that session with a log line naming it
//! and the limit; the shared consumer never waits for a session. Deliveries for
//! sessions we do not know (long gone, or never ours) are dropped with a rate-limited
//! log line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lapin::types::ShortString;
use redpepper_core::error::TransportError;
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

use super::budget::Meter;
use super::quiet::ManagerNoise;
use super::state::SessionState;
use super::wire::Envelope;

/// One session's entry.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Where its deliveries go (its reader).
    pub(crate) tx: mpsc::Sender<Bytes>,
    /// The broker user that opened it (from the hello's `user_id`).
    pub(crate) user: String,
    /// The agent's inbox (the hello's `reply_to`): where its end is announced when the
    /// broker connection carrying the session is lost.
    pub(crate) inbox: ShortString,
    /// Its failure slot.
    pub(crate) state: Arc<SessionState>,
    /// Its unread bytes, shared with its reader.
    pub(crate) meter: Arc<Meter>,
}

/// A session that ended with the broker connection carrying it. Its agent may not
/// know: when the agent's own connection goes to another node of a RabbitMQ cluster,
/// nothing reaches it until it next publishes (its ping). The listener, once
/// reconnected, publishes the session's end-of-stream marker to `inbox`, so the agent
/// says hello again at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Orphan {
    /// The session id.
    pub(crate) session: String,
    /// The agent's inbox.
    pub(crate) inbox: ShortString,
}

/// What becomes of a session after one delivery.
enum Outcome {
    /// Delivered, or dropped; the session goes on.
    Keep,
    /// The peer closed its end (or the reader is gone): forget the session.
    End,
    /// The session cannot go on.
    Fail(TransportError),
}

/// The sessions of one manager listener.
#[derive(Debug, Default)]
pub(crate) struct Table {
    sessions: Mutex<HashMap<String, Entry>>,
    /// The listener's rate-limited log lines.
    pub(crate) noise: ManagerNoise,
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
    /// Returns each session's id and inbox, so that its agent can be told once the
    /// link is back (see [`Orphan`]).
    pub(crate) fn fail_all(&self, reason: &str) -> Vec<Orphan> {
        let all: Vec<(String, Entry)> = self.lock().drain().collect();
        let mut orphans = Vec::with_capacity(all.len());
        for (session, entry) in all {
            entry.state.fail(TransportError::Other(reason.to_owned()));
            orphans.push(Orphan {
                session,
                inbox: entry.inbox,
            });
        }
        self.emptied.notify_waiters();
        orphans
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
            self.log_foreign(env, &entry.user);
            Outcome::Keep
        } else if env.eof {
            Outcome::End
        } else if data.len() > max {
            Outcome::Fail(TransportError::TooLarge {
                len: data.len(),
                max,
            })
        } else if let Err(over) = entry.meter.take_in(data.len()) {
            let why = over.describe(env.session);
            if let Some(others) = self.noise.closing.admit() {
                warn!(session = env.session, user = %entry.user, others_since_last_report = others, "closing the session: {why}");
            }
            Outcome::Fail(TransportError::Other(why))
        } else {
            match entry.tx.try_send(Bytes::from(data)) {
                Ok(()) => Outcome::Keep,
                Err(mpsc::error::TrySendError::Closed(_)) => Outcome::End,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let why = format!(
                        "session {}: {} messages wait unread (session_buffer): the session \
                         does not read as fast as its peer sends",
                        env.session,
                        entry.tx.max_capacity()
                    );
                    if let Some(others) = self.noise.closing.admit() {
                        warn!(session = env.session, user = %entry.user, others_since_last_report = others, "closing the session: {why}");
                    }
                    Outcome::Fail(TransportError::Other(why))
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
        if let Some(others) = self.noise.unknown.admit() {
            info!(
                session,
                user = user.unwrap_or("<none>"),
                others_since_last_report = others,
                "dropping a message for an unknown session (ended, or never ours)"
            );
        }
    }

    fn log_foreign(&self, env: &Envelope<'_>, owner: &str) {
        if let Some(others) = self.noise.foreign.admit() {
            warn!(
                session = env.session,
                owner,
                sender = env.user.unwrap_or("<none: no user_id>"),
                others_since_last_report = others,
                "dropping a message from another broker user (the session goes on)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use lapin::BasicProperties;

    use super::super::budget::Pool;
    use super::*;

    struct Added {
        rx: mpsc::Receiver<Bytes>,
        state: Arc<SessionState>,
        meter: Arc<Meter>,
    }

    fn add_with(table: &Table, session: &str, user: &str, cap: usize, meter: Meter) -> Added {
        let (tx, rx) = mpsc::channel(cap);
        let state = Arc::new(SessionState::new(session.into()));
        let meter = Arc::new(meter);
        meter.accepted();
        let entry = Entry {
            tx,
            user: user.into(),
            inbox: format!("inbox-{session}").into(),
            state: Arc::clone(&state),
            meter: Arc::clone(&meter),
        };
        assert!(table.insert(session, entry));
        Added { rx, state, meter }
    }

    fn add(table: &Table, session: &str, user: &str, cap: usize) -> Added {
        add_with(
            table,
            session,
            user,
            cap,
            Meter::new(1 << 20, pool(1 << 20)),
        )
    }

    fn pool(budget: usize) -> Arc<Pool> {
        Arc::new(Pool::new(budget))
    }

    fn props(session: &str, user: Option<&str>) -> BasicProperties {
        let p = BasicProperties::default().with_correlation_id(session.into());
        match user {
            Some(u) => p.with_user_id(u.into()),
            None => p,
        }
    }

    #[test]
    fn another_users_message_is_dropped_and_the_session_goes_on() {
        let table = Table::default();
        let mut s = add(&table, "s1", "alice", 8);
        let p = props("s1", Some("alice"));
        table.deliver(&Envelope::open(&p).unwrap(), b"hi".to_vec(), 100);
        assert_eq!(s.rx.try_recv().unwrap(), "hi");

        for _ in 0..10 {
            let p = props("s1", Some("mallory"));
            table.deliver(&Envelope::open(&p).unwrap(), b"evil".to_vec(), 100);
            let p = props("s1", None);
            table.deliver(&Envelope::open(&p).unwrap(), b"evil".to_vec(), 100);
        }
        assert!(
            s.rx.try_recv().is_err(),
            "the intruder's message was delivered"
        );
        assert!(!s.state.is_failed(), "the victim's session was ended");
        assert!(table.contains("s1"));
        // Twenty rejections, one log line.
        assert_eq!(table.noise.foreign.suppressed(), 19);

        let p = props("s1", Some("alice"));
        table.deliver(&Envelope::open(&p).unwrap(), b"still".to_vec(), 100);
        assert_eq!(s.rx.try_recv().unwrap(), "still");
    }

    #[test]
    fn unknown_sessions_are_logged_once_per_interval() {
        let table = Table::default();
        for _ in 0..5 {
            let p = props("nobody", Some("u"));
            table.deliver(&Envelope::open(&p).unwrap(), vec![1], 100);
        }
        assert_eq!(table.noise.unknown.suppressed(), 4);
    }

    #[test]
    fn too_large_full_and_eof_end_the_session() {
        let table = Table::default();
        let s1 = add(&table, "s1", "a", 1);
        let p = props("s1", Some("a"));
        table.deliver(&Envelope::open(&p).unwrap(), vec![0; 101], 100);
        assert!(matches!(
            s1.state.take_error(),
            Some(TransportError::TooLarge { len: 101, max: 100 })
        ));

        // A full inbox fails its session at once: the shared consumer never waits.
        let s2 = add(&table, "s2", "a", 1);
        let p = props("s2", Some("a"));
        table.deliver(&Envelope::open(&p).unwrap(), vec![1], 100);
        table.deliver(&Envelope::open(&p).unwrap(), vec![2], 100);
        let e = s2.state.take_error().unwrap().to_string();
        assert!(e.contains("session s2: 1 messages wait unread"), "{e}");

        let mut s3 = add(&table, "s3", "a", 4);
        let p = props("s3", Some("a")).with_type(super::super::EOF_TYPE.into());
        table.deliver(&Envelope::open(&p).unwrap(), vec![], 100);
        assert!(!s3.state.is_failed());
        assert!(matches!(
            s3.rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_session_over_its_byte_budget_ends_alone() {
        let table = Table::default();
        let greedy = add_with(&table, "greedy", "a", 64, Meter::new(250, pool(0)));
        let mut other = add(&table, "other", "b", 64);
        let (p, q) = (props("greedy", Some("a")), props("other", Some("b")));
        for _ in 0..2 {
            table.deliver(&Envelope::open(&p).unwrap(), vec![0; 100], 100);
        }
        assert_eq!(greedy.meter.unread(), 200);
        assert!(!greedy.state.is_failed());
        table.deliver(&Envelope::open(&p).unwrap(), vec![0; 100], 100);
        let e = greedy.state.take_error().unwrap().to_string();
        assert!(e.contains("session greedy: 200 unread bytes"), "{e}");
        assert!(e.contains("budget of 250 bytes"), "{e}");
        assert!(!table.contains("greedy"));

        table.deliver(&Envelope::open(&q).unwrap(), vec![7; 100], 100);
        assert_eq!(other.rx.try_recv().unwrap(), vec![7; 100]);
        assert!(!other.state.is_failed());
    }

    #[test]
    fn sessions_not_yet_accepted_share_the_pending_budget() {
        let table = Table::default();
        let shared = pool(150);
        let (tx, _rx) = mpsc::channel(8);
        let state = Arc::new(SessionState::new("p".into()));
        let meter = Arc::new(Meter::new(1000, Arc::clone(&shared)));
        let entry = Entry {
            tx,
            user: "a".into(),
            inbox: "inbox-p".into(),
            state: Arc::clone(&state),
            meter,
        };
        assert!(table.insert("p", entry));
        let p = props("p", Some("a"));
        table.deliver(&Envelope::open(&p).unwrap(), vec![0; 100], 100);
        assert_eq!(shared.held(), 100);
        table.deliver(&Envelope::open(&p).unwrap(), vec![0; 100], 100);
        let e = state.take_error().unwrap().to_string();
        assert!(e.contains("sessions not yet accepted"), "{e}");
        assert!(e.contains("budget of 150 bytes"), "{e}");
    }

    #[test]
    fn fail_all_empties_the_table_and_names_the_inboxes_to_tell() {
        let table = Table::default();
        let a = add(&table, "a", "u", 1);
        let b = add(&table, "b", "u", 1);
        let mut orphans = table.fail_all("broker connection lost");
        orphans.sort_by(|x, y| x.session.cmp(&y.session));
        let told: Vec<(&str, &str)> = orphans
            .iter()
            .map(|o| (o.session.as_str(), o.inbox.as_str()))
            .collect();
        assert_eq!(told, [("a", "inbox-a"), ("b", "inbox-b")]);
        assert_eq!(table.len(), 0);
        assert!(a.state.is_failed() && b.state.is_failed());
        let p = props("a", Some("u"));
        table.deliver(&Envelope::open(&p).unwrap(), vec![1], 100);
    }
}
