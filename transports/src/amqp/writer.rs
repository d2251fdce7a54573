//! The writing half of an AMQP session.
//!
//! `feed` buffers payloads; `flush` publishes the buffered batch: every message is
//! handed to lapin (which queues its frames in order) before any of them is awaited, so
//! a batch leaves in as few socket writes as lapin's I/O loop manages, and the flush
//! completes once the frames are written. lapin publishes are futures that push their
//! frames on the first poll; `join_all` over at most [`CHUNK`] of them polls them in
//! order, which keeps the session's messages in order.
//!
//! Every publish is `mandatory`. With publisher confirms a task per session awaits the
//! confirms in order and fails the session when one reports a returned (the peer's
//! queue is gone) or refused message; without them, returned messages are collected
//! after each flush. A returned message is routed by the session id it carries, not by
//! the confirm it came with: on the manager's shared channel lapin numbers a publish
//! and queues its frames in two steps, so two sessions publishing at once can swap
//! confirms, and lapin hands a returned message to whichever confirm is resolved next.
//! Every confirm is awaited (lapin keeps a dropped, unresolved one forever). `close`
//! flushes and then publishes the end-of-stream marker.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::future::{join_all, BoxFuture};
use futures::{FutureExt, Sink};
use lapin::message::BasicReturnMessage;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{Channel, Confirmation, PublisherConfirm};
use redpepper_core::error::TransportError;
use tokio::sync::mpsc;

use super::state::SessionState;
use super::wire::Stamp;

/// Most publishes polled together (`join_all` keeps its in-order polling up to 30).
const CHUNK: usize = 30;

/// Buffered messages after which `poll_ready` flushes first.
const MAX_BUFFERED: usize = 1024;

/// Fails the session a returned message belongs to: (session id, error).
pub(crate) type ReturnRouter = Arc<dyn Fn(&str, TransportError) + Send + Sync>;

/// Called when the publishing channel itself broke (the manager then reconnects).
pub(crate) type OnBroken = Arc<dyn Fn(String) + Send + Sync>;

/// Where a session's messages go.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// Always this queue (the manager answering an agent's inbox).
    Fixed(ShortString),
    /// The manager's hello queue until the manager's first answer names its instance
    /// queue (the agent).
    Learned {
        /// The hello queue.
        first: ShortString,
        /// The instance queue, once known.
        learned: Arc<OnceLock<ShortString>>,
    },
}

impl Route {
    fn target(&self) -> &ShortString {
        match self {
            Route::Fixed(q) => q,
            Route::Learned { first, learned } => learned.get().unwrap_or(first),
        }
    }
}

/// What a writer publishes with.
pub(crate) struct Outbound {
    pub(crate) channel: Channel,
    pub(crate) route: Route,
    pub(crate) stamp: Stamp,
    pub(crate) state: Arc<SessionState>,
    /// The broker, for messages (`amqp://user@host:port/vhost`).
    pub(crate) broker: String,
    pub(crate) returns: ReturnRouter,
    pub(crate) on_broken: Option<OnBroken>,
}

impl Outbound {
    /// A publish failed: the channel is unusable for this session (and, on the
    /// manager, for every session on it).
    fn publish_failed(&self, e: &lapin::Error) -> TransportError {
        // The connection itself gone: said as the consumer side says it (whichever
        // side notices first, calls in flight fail with the same words).
        let lost = matches!(
            e.kind(),
            lapin::ErrorKind::IOError(_)
                | lapin::ErrorKind::InvalidConnectionState(_)
                | lapin::ErrorKind::MissingHeartbeatError
        );
        let reason = if lost {
            format!(
                "broker connection lost ({}) while publishing to queue {}: {}",
                self.broker,
                self.route.target(),
                super::broker::explain(e)
            )
        } else {
            format!(
                "publishing to queue {} on {}: {}",
                self.route.target(),
                self.broker,
                super::broker::explain(e)
            )
        };
        if let Some(f) = &self.on_broken {
            f(reason.clone());
        }
        let err = TransportError::Other(reason);
        self.state.fail(TransportError::Other(err.to_string()));
        err
    }

    fn returned(&self, msg: &BasicReturnMessage) {
        let session = msg
            .properties
            .correlation_id()
            .as_ref()
            .map_or("?", ShortString::as_str);
        let err = TransportError::Other(format!(
            "the broker returned a message of session {session} for queue {}: {} {}; the \
             peer's queue no longer exists (the peer is gone)",
            msg.routing_key, msg.reply_code, msg.reply_text
        ));
        (self.returns)(session, err);
    }
}

/// Writing half of an [`AmqpTransport`](super::AmqpTransport).
pub struct AmqpWriter {
    out: Arc<Outbound>,
    buf: Vec<Bytes>,
    reply_to: Option<ShortString>,
    inflight: Option<BoxFuture<'static, Result<(), TransportError>>>,
    confirms: Option<mpsc::UnboundedSender<Vec<PublisherConfirm>>>,
    max_message_size: usize,
    eof_sent: bool,
    closed: bool,
    _keep: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for AmqpWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpWriter")
            .field("session", &self.out.state.session())
            .field("route", &self.out.route)
            .field("buffered", &self.buf.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl AmqpWriter {
    /// A writer publishing through `out`; its first message carries `reply_to`.
    /// With `confirms` the channel is in confirm mode and a watcher task is started.
    pub(crate) fn new(
        out: Outbound,
        reply_to: Option<ShortString>,
        max_message_size: usize,
        confirms: bool,
        keep: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Self {
        let out = Arc::new(out);
        let confirms = confirms.then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(watch_confirms(rx, Arc::clone(&out)));
            tx
        });
        Self {
            out,
            buf: Vec::new(),
            reply_to,
            inflight: None,
            confirms,
            max_message_size,
            eof_sent: false,
            closed: false,
            _keep: keep,
        }
    }

    fn check_usable(&self) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        match self.out.state.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Publish `msgs` in order; the first one carries `reply_to`.
async fn publish_batch(
    out: Arc<Outbound>,
    msgs: Vec<Bytes>,
    mut reply_to: Option<ShortString>,
    confirms: Option<mpsc::UnboundedSender<Vec<PublisherConfirm>>>,
) -> Result<(), TransportError> {
    let target = out.route.target().clone();
    let opts = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let mut chunks = Vec::with_capacity(msgs.len().div_ceil(CHUNK));
    for chunk in msgs.chunks(CHUNK) {
        chunks.push(join_all(chunk.iter().map(|body| {
            let props = out.stamp.payload(reply_to.take().as_ref());
            out.channel
                .basic_publish(ShortString::default(), target.clone(), opts, body, props)
        })));
    }
    // Hand every message to lapin (first poll) before waiting for any. A chunk may be
    // done at once (lapin's I/O thread was quick): keep its output, it holds the
    // confirms.
    let mut done = Vec::with_capacity(chunks.len());
    for chunk in &mut chunks {
        done.push(match futures::poll!(chunk) {
            Poll::Ready(results) => Some(results),
            Poll::Pending => None,
        });
    }
    let mut pending = Vec::with_capacity(msgs.len());
    for (chunk, done) in chunks.into_iter().zip(done) {
        let results = match done {
            Some(results) => results,
            None => chunk.await,
        };
        for result in results {
            match result {
                Ok(confirm) => pending.push(confirm),
                Err(e) => return Err(out.publish_failed(&e)),
            }
        }
    }
    match confirms {
        Some(tx) => {
            // The watcher only stops when this writer is gone.
            let _ = tx.send(pending);
        }
        None => {
            drop(pending);
            let returned = out
                .channel
                .wait_for_confirms()
                .await
                .map_err(|e| out.publish_failed(&e))?;
            for msg in &returned {
                out.returned(msg);
            }
        }
    }
    Ok(())
}

/// Publish the end-of-stream marker (not mandatory: nobody may be left to read it).
async fn publish_eof(
    out: Arc<Outbound>,
    confirms: Option<mpsc::UnboundedSender<Vec<PublisherConfirm>>>,
) -> Result<(), TransportError> {
    let confirm = out
        .channel
        .basic_publish(
            ShortString::default(),
            out.route.target().clone(),
            BasicPublishOptions::default(),
            &[],
            out.stamp.eof(),
        )
        .await
        .map_err(|e| out.publish_failed(&e))?;
    // Its confirm goes to the watcher too: lapin keeps unawaited confirms forever.
    if let Some(tx) = confirms {
        let _ = tx.send(vec![confirm]);
    }
    Ok(())
}

/// Await a session's confirms in order; fail the session on a returned or refused
/// message or a broken channel.
async fn watch_confirms(
    mut rx: mpsc::UnboundedReceiver<Vec<PublisherConfirm>>,
    out: Arc<Outbound>,
) {
    while let Some(batch) = rx.recv().await {
        for confirm in batch {
            match confirm.await {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {}
                Ok(Confirmation::Ack(Some(msg)) | Confirmation::Nack(Some(msg))) => {
                    out.returned(&msg);
                }
                Ok(Confirmation::Nack(None)) => {
                    out.state.fail(TransportError::Other(format!(
                        "the broker {} refused (nacked) a message of session {}",
                        out.broker,
                        out.state.session()
                    )));
                }
                Err(e) => {
                    out.publish_failed(&e);
                    return;
                }
            }
        }
    }
}

impl Sink<Bytes> for AmqpWriter {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.check_usable()?;
        if self.buf.len() >= MAX_BUFFERED {
            ready!(self.as_mut().poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        self.check_usable()?;
        if item.len() > self.max_message_size {
            return Err(TransportError::TooLarge {
                len: item.len(),
                max: self.max_message_size,
            });
        }
        self.buf.push(item);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        loop {
            if let Some(fut) = this.inflight.as_mut() {
                let result = ready!(fut.poll_unpin(cx));
                this.inflight = None;
                result?;
            }
            if this.buf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.check_usable()?;
            let msgs = std::mem::take(&mut this.buf);
            this.inflight = Some(
                publish_batch(
                    Arc::clone(&this.out),
                    msgs,
                    this.reply_to.take(),
                    this.confirms.clone(),
                )
                .boxed(),
            );
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        let flushed = ready!(self.as_mut().poll_flush(cx));
        let this = &mut *self;
        if !this.eof_sent {
            // Sent even when the session failed: the peer learns at once that it is
            // over (as a TCP peer would from the closed connection).
            this.eof_sent = true;
            this.buf.clear();
            this.inflight = Some(publish_eof(Arc::clone(&this.out), this.confirms.clone()).boxed());
        }
        let eof = ready!(self.as_mut().poll_flush(cx));
        self.closed = true;
        self.confirms = None;
        let eof = if self.out.state.is_failed() {
            Ok(())
        } else {
            eof
        };
        Poll::Ready(flushed.and(eof))
    }
}
