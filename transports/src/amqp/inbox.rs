//! The agent's inbox, read in place: the session's reader polls the lapin consumer
//! itself (no task in between), checks each delivery, and acknowledges in bursts once
//! the session layer has taken what was ready. The broker's prefetch window therefore
//! bounds what waits for a slow session.
//!
//! Checks: the message is one of ours (session id, known `type`), for this session;
//! its `user_id` is the manager's, pinned from the manager's first answer (which also
//! names the manager's instance queue in `reply_to`); it fits `max_message_size`.
//! A message from another broker user (or without `user_id`) and stray messages are
//! dropped with a rate-limited warning; the session goes on (ending it would hand
//! anyone who can write to the inbox a way to cut it).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use lapin::types::ShortString;
use lapin::{BasicProperties, Consumer, Event};
use redpepper_core::error::TransportError;
use tracing::warn;

use super::broker::explain;
use super::quiet::AgentNoise;
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
    noise: AgentNoise,
    /// The broker connection's events: an error there ends the session even when the
    /// consumer is not told (lapin does not always end a consumer's stream when the
    /// connection dies while the process was stopped: seen in `faults::broker_kill`).
    events: Option<Pin<Box<dyn Stream<Item = Event> + Send>>>,
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
            noise: AgentNoise::default(),
            events: None,
        }
    }

    /// Watch the broker connection's `events` too (see the field).
    pub(crate) fn with_events(
        mut self,
        events: impl Stream<Item = Event> + Send + 'static,
    ) -> Self {
        self.events = Some(Box::pin(events));
        self
    }

    /// A connection error reported by the events stream, if one came.
    fn connection_error(&mut self, cx: &mut Context<'_>) -> Option<lapin::Error> {
        let events = self.events.as_mut()?;
        loop {
            match events.as_mut().poll_next(cx) {
                Poll::Ready(Some(Event::Error(e))) => return Some(e),
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => {
                    self.events = None;
                    return None;
                }
                Poll::Pending => return None,
            }
        }
    }

    /// Pin the manager's broker user from the start (`amqp.manager_user`).
    pub(crate) fn with_manager_user(mut self, user: Option<String>) -> Self {
        self.manager_user = user;
        self
    }

    /// The next payload; `Ready(None)` at the end of the stream or when the session
    /// failed (the caller then reports the failure).
    pub(crate) fn poll_payload(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(e) = self.connection_error(cx) {
            self.state.fail(TransportError::Other(format!(
                "broker connection lost (inbox queue {}): {}",
                self.queue,
                explain(&e)
            )));
            return Poll::Ready(None);
        }
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
                if let Some(others) = self.noise.not_ours.admit() {
                    warn!(inbox = %self.queue, others_since_last_report = others, "dropping a message that is not ours: {why}");
                }
                return Step::Next;
            }
        };
        if env.session != sid {
            if let Some(others) = self.noise.other_session.admit() {
                warn!(inbox = %self.queue, session = env.session, others_since_last_report = others, "dropping a message for another session");
            }
            return Step::Next;
        }
        match (&self.manager_user, env.user) {
            (Some(pinned), Some(user)) if pinned == user => {}
            (None, Some(user)) => self.manager_user = Some(user.to_owned()),
            (pinned, sender) => {
                if let Some(others) = self.noise.foreign.admit() {
                    warn!(
                        session = sid,
                        manager = pinned.as_deref().unwrap_or("<unknown>"),
                        sender = sender.unwrap_or("<none: no user_id>"),
                        others_since_last_report = others,
                        "dropping a message from another broker user (the session goes on)"
                    );
                }
                return Step::Next;
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
