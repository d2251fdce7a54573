//! The agent's inbox, read in place: the session's reader polls the lapin consumer
//! itself (no task in between), checks each delivery, and acknowledges in bursts once
//! the session layer has taken what was ready. The broker's prefetch window therefore
//! bounds what waits for a slow session.
//!
//! Checks: the message is one of ours (session id, known `type`), for this session;
//! its `user_id` is the manager's, pinned from the manager's first answer (which also
//! names the manager's instance queue in `reply_to`); it fits `max_message_size`.
//! A failed check from another broker user ends the session; stray messages are
//! dropped with a warning.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use lapin::types::ShortString;
use lapin::{BasicProperties, Consumer};
use redpepper_core::error::TransportError;
use tracing::warn;

use super::broker::explain;
use super::reader::AckBatch;
use super::state::SessionState;
use super::wire::Envelope;

/// The agent's inbox consumer with what it needs to check deliveries.
pub(crate) struct Inbox {
    consumer: Consumer,
    state: Arc<SessionState>,
    queue: ShortString,
    learned: Arc<OnceLock<ShortString>>,
    max: usize,
    manager_user: Option<String>,
    acks: AckBatch,
}

/// What to do with one delivery.
enum Step {
    /// Dropped; read on.
    Next,
    /// Hand this payload to the session.
    Forward(Bytes),
    /// The stream is over (end-of-stream marker, or the session failed).
    Stop,
}

impl Inbox {
    /// Read `consumer` (of inbox `queue`) for session `state`; the manager's instance
    /// queue goes into `learned`; acknowledge at least every `ack_every` deliveries.
    pub(crate) fn new(
        consumer: Consumer,
        state: Arc<SessionState>,
        queue: ShortString,
        learned: Arc<OnceLock<ShortString>>,
        max: usize,
        ack_every: usize,
    ) -> Self {
        let acks = AckBatch::new(ack_every, queue.to_string());
        Self {
            consumer,
            state,
            queue,
            learned,
            max,
            manager_user: None,
            acks,
        }
    }

    /// The next payload; `Ready(None)` at the end of the stream or when the session
    /// failed (the caller then reports the failure).
    pub(crate) fn poll_payload(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            let mut delivery = match Pin::new(&mut self.consumer).poll_next(cx) {
                Poll::Pending => {
                    self.acks.flush();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(d))) => d,
                Poll::Ready(Some(Err(e))) => {
                    self.state.fail(TransportError::Other(format!(
                        "broker connection lost (inbox queue {}): {}",
                        self.queue,
                        explain(&e)
                    )));
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => {
                    self.state.fail(TransportError::Other(format!(
                        "the broker cancelled the consumer of inbox queue {} (was it deleted?)",
                        self.queue
                    )));
                    return Poll::Ready(None);
                }
            };
            let step = self.inspect(&delivery.properties, &mut delivery.data);
            if self.acks.note(delivery.acker) {
                self.acks.flush();
            }
            match step {
                Step::Next => {}
                Step::Forward(bytes) => return Poll::Ready(Some(bytes)),
                Step::Stop => {
                    self.acks.flush();
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn inspect(&mut self, props: &BasicProperties, data: &mut Vec<u8>) -> Step {
        let sid = self.state.session();
        let env = match Envelope::open(props) {
            Ok(env) => env,
            Err(why) => {
                warn!(inbox = %self.queue, "dropping a message that is not ours: {why}");
                return Step::Next;
            }
        };
        if env.session != sid {
            warn!(inbox = %self.queue, session = env.session, "dropping a message for another session");
            return Step::Next;
        }
        match (&self.manager_user, env.user) {
            (Some(pinned), Some(user)) if pinned == user => {}
            (None, Some(user)) => self.manager_user = Some(user.to_owned()),
            (pinned, sender) => {
                let sender =
                    sender.map_or_else(|| "<none: no user_id>".into(), |u| format!("{u:?}"));
                warn!(session = sid, manager = ?pinned, %sender, "message from another broker user rejected: ending the session");
                self.state.fail(TransportError::Protocol(format!(
                    "session {sid}: a message from broker user {sender} was rejected (the \
                     manager is {})",
                    pinned.as_deref().unwrap_or("<unknown>")
                )));
                return Step::Stop;
            }
        }
        if let Some(queue) = env.reply_to {
            if self.learned.get().is_none() {
                let _ = self.learned.set(queue.clone());
            }
        }
        if env.eof {
            return Step::Stop;
        }
        if data.len() > self.max {
            self.state.fail(TransportError::TooLarge {
                len: data.len(),
                max: self.max,
            });
            return Step::Stop;
        }
        Step::Forward(Bytes::from(std::mem::take(data)))
    }
}
