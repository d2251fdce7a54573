//! A hello on the hello queue: checks, then a new session (table entry + transport).

use std::sync::Arc;

use bytes::Bytes;
use lapin::message::Delivery;
use lapin::types::ShortString;
use redpepper_core::transport::{PeerInfo, Transport, TransportKind};
use tokio::sync::mpsc;
use tracing::warn;

use super::{Active, Link};
use crate::amqp::reader::AmqpReader;
use crate::amqp::state::SessionState;
use crate::amqp::table::Entry;
use crate::amqp::wire::{Envelope, Stamp};
use crate::amqp::writer::{AmqpWriter, OnBroken, Outbound, ReturnRouter, Route};
use crate::amqp::{ttl_millis, AmqpTransport};

impl Link {
    pub(super) fn on_hello(&self, d: &mut Delivery, active: &Active) {
        let env = match Envelope::open(&d.properties) {
            Ok(env) => env,
            Err(why) => {
                warn!(queue = %self.hello_queue, "dropping a message that is not a RedPepper hello: {why}");
                return;
            }
        };
        let data = std::mem::take(&mut d.data);
        if self.table.contains(env.session) {
            return self.table.deliver(&env, data, self.max);
        }
        if env.eof {
            // The end of a session that never started (its hello expired, say).
            return;
        }
        let session = env.session;
        let refuse = |why: &str| {
            warn!(queue = %self.hello_queue, session, user = env.user.unwrap_or("<none>"), "hello dropped: {why}");
        };
        let (Some(user), Some(reply_to)) = (env.user, env.reply_to) else {
            return refuse("it lacks user_id or reply_to (RedPepper agents set both)");
        };
        if reply_to.as_str().starts_with(self.hello_queue.as_str()) {
            return refuse("it asks for answers on one of the manager's own queues");
        }
        if data.len() > self.max {
            return refuse(&format!(
                "{} bytes exceed max_message_size {}",
                data.len(),
                self.max
            ));
        }
        let transport =
            self.open_session(session, user, reply_to.clone(), Bytes::from(data), active);
        match self.incoming.try_send(transport.boxed()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                refuse("the accept backlog is full");
                self.table.remove(session);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.table.remove(session),
        }
    }

    fn open_session(
        &self,
        session: &str,
        user: &str,
        reply_to: ShortString,
        hello: Bytes,
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
                state: Arc::clone(&state),
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
        );
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
            broker: self.url.describe().to_owned(),
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
