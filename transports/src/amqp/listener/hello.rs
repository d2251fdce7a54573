//! A hello on the hello queue: checks, then a new session (table entry + transport).
//!
//! A hello the manager has no room for (the accept backlog is full, or the sessions
//! waiting in it hold their byte budget) is answered at once with a `Bye`
//! ([`BUSY_REASON`]) on the agent's `reply_to`, which the agent reports as a refusal,
//! instead of leaving it to wait out its `hello_timeout`.

use std::sync::Arc;

use bytes::Bytes;
use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::BasicProperties;
use redpepper_core::codec::{encode, Message};
use redpepper_core::session::HELLO_FRAME_LIMIT;
use redpepper_core::transport::{PeerInfo, TransportKind};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{Active, Link};
use crate::amqp::broker::explain;
use crate::amqp::budget::Meter;
use crate::amqp::reader::AmqpReader;
use crate::amqp::state::SessionState;
use crate::amqp::table::Entry;
use crate::amqp::wire::{Envelope, Stamp};
use crate::amqp::writer::{AmqpWriter, OnBroken, Outbound, ReturnRouter, Route};
use crate::amqp::{ttl_millis, AmqpTransport, BUSY_REASON};

impl Link {
    pub(super) fn on_hello(&self, d: &mut Delivery, active: &Active) {
        let env = match Envelope::open(&d.properties) {
            Ok(env) => env,
            Err(why) => {
                if let Some(others) = self.table.noise.not_ours.admit() {
                    warn!(queue = %self.hello_queue, others_since_last_report = others, "dropping a message that is not a RedPepper hello: {why}");
                }
                return;
            }
        };
        let data = std::mem::take(&mut d.data);
        if self.table.contains(env.session) {
            // The agent's messages until it learns our instance queue, or someone
            // else's (then dropped: the table checks the user).
            return self.table.deliver(&env, data, self.max);
        }
        if env.eof {
            // The end of a session that never started (its hello expired, say).
            return;
        }
        let session = env.session;
        let refuse = |why: &str| {
            if let Some(others) = self.table.noise.bad_hello.admit() {
                warn!(queue = %self.hello_queue, session, user = env.user.unwrap_or("<none>"), others_since_last_report = others, "hello dropped: {why}");
            }
        };
        let (Some(user), Some(reply_to)) = (env.user, env.reply_to) else {
            return refuse("it lacks user_id or reply_to (RedPepper agents set both)");
        };
        if reply_to.as_str().starts_with(self.hello_queue.as_str()) {
            return refuse("it asks for answers on one of the manager's own queues");
        }
        // Nothing from an agent not yet authenticated is larger than a hello.
        let hello_max = self.max.min(HELLO_FRAME_LIMIT);
        if data.len() > hello_max {
            return refuse(&format!(
                "{} bytes exceed the hello limit of {hello_max} bytes",
                data.len(),
            ));
        }
        let permit = match self.incoming.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(())) => {
                let why = format!(
                    "the accept backlog is full ({} sessions wait to be accepted)",
                    self.incoming.max_capacity()
                );
                return self.turn_away(session, user, reply_to, &why, active);
            }
            // The listener is gone.
            Err(mpsc::error::TrySendError::Closed(())) => return,
        };
        let meter = Arc::new(Meter::new(self.session_budget, Arc::clone(&self.pool)));
        if let Err(over) = meter.take_in(data.len()) {
            return self.turn_away(session, user, reply_to, &over.describe(session), active);
        }
        let hello = Bytes::from(data);
        permit.send(self.open_session(session, user, reply_to.clone(), hello, meter, active));
    }

    /// Answer a hello we have no room for with a `Bye` ([`BUSY_REASON`]), so the agent
    /// hears at once, and log (rate limited).
    fn turn_away(
        &self,
        session: &str,
        user: &str,
        reply_to: &ShortString,
        why: &str,
        active: &Active,
    ) {
        if let Some(others) = self.table.noise.busy.admit() {
            warn!(queue = %self.hello_queue, session, user, others_since_last_report = others, "hello turned away, the agent is told to try again: {why}");
        }
        let bye = Message::Bye {
            reason: BUSY_REASON.into(),
        };
        let body = match encode(&bye) {
            Ok(body) => body,
            Err(e) => return warn!(session, error = %e, "cannot encode the busy Bye"),
        };
        let props = BasicProperties::default()
            .with_correlation_id(session.into())
            .with_user_id(self.user.clone())
            .with_expiration(ttl_millis(self.options.message_ttl).into());
        let channel = active.publish.clone();
        let (session, reply_to) = (session.to_owned(), reply_to.clone());
        tokio::spawn(async move {
            let published = channel
                .basic_publish(
                    ShortString::default(),
                    reply_to.clone(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await;
            // lapin keeps an unawaited confirm forever.
            let confirmed = match published {
                Ok(confirm) => confirm.await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = confirmed {
                debug!(%session, queue = %reply_to, error = %explain(&e), "cannot send the busy Bye");
            }
        });
    }

    fn open_session(
        &self,
        session: &str,
        user: &str,
        reply_to: ShortString,
        hello: Bytes,
        meter: Arc<Meter>,
        active: &Active,
    ) -> AmqpTransport {
        let state = Arc::new(SessionState::new(session.to_owned()));
        let (tx, rx) = mpsc::channel(self.options.session_buffer.max(1));
        let _ = tx.try_send(hello);
        self.table.insert(
            session,
            Entry {
                tx,
                user: user.to_owned(),
                inbox: reply_to.clone(),
                state: Arc::clone(&state),
                meter: Arc::clone(&meter),
            },
        );
        let table = Arc::downgrade(&self.table);
        let id = session.to_owned();
        let reader = AmqpReader::new(
            rx,
            Arc::clone(&state),
            Some(Box::new(move || {
                if let Some(t) = table.upgrade() {
                    t.remove(&id);
                }
            })),
        )
        .with_meter(meter);
        let table = Arc::downgrade(&self.table);
        let returns: ReturnRouter = Arc::new(move |id: &str, err| {
            if let Some(t) = table.upgrade() {
                t.fail(id, err);
            }
        });
        let broken = Arc::clone(&active.broken);
        let on_broken: OnBroken = Arc::new(move |reason| {
            *broken.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            broken.notify.notify_one();
        });
        let ttl: ShortString = ttl_millis(self.options.message_ttl).into();
        let out = Outbound {
            channel: active.publish.clone(),
            route: Route::Fixed(reply_to),
            stamp: Stamp {
                session: session.to_owned().into(),
                user: self.user.clone(),
                ttl: ttl.clone(),
                first_ttl: ttl,
            },
            state,
            broker: active.url.describe().to_owned(),
            returns,
            on_broken: Some(on_broken),
        };
        let writer = AmqpWriter::new(
            out,
            Some(active.instance.clone()),
            self.max,
            self.options.publisher_confirms,
            None,
        );
        let mut peer = PeerInfo::new(TransportKind::Amqp, None);
        peer.broker_user = Some(user.to_owned());
        AmqpTransport {
            peer,
            session_id: session.to_owned(),
            reader,
            writer,
        }
    }
}
