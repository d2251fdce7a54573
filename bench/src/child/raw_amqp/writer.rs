//! The raw baseline's writing half: mandatory publishes, batched per flush, their
//! confirms watched by a task (see the parent module for how it matches ours).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Sink};
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use redpepper_core::TransportError;
use redpepper_transports::amqp::AmqpOptions;
use tokio::sync::mpsc;

use super::{Failure, Keep};

/// Where a writer publishes.
pub(super) enum Target {
    /// Always this queue (the client).
    Fixed(ShortString),
    /// The `reply_to` of the client's first message (the echo server).
    Learned(Arc<OnceLock<ShortString>>),
}

type Publish = BoxFuture<'static, lapin::Result<PublisherConfirm>>;

/// Mandatory publishes, batched per flush, confirms watched by a task.
pub(super) struct Writer {
    channel: Channel,
    target: Target,
    /// Carried by the first message only.
    reply_to: Option<ShortString>,
    props: BasicProperties,
    buf: Vec<Bytes>,
    /// Handed to lapin, their frames not yet written.
    writing: VecDeque<Publish>,
    confirms: mpsc::UnboundedSender<PublisherConfirm>,
    failure: Arc<Failure>,
    _keep: Keep,
}

impl Writer {
    pub(super) fn new(
        channel: Channel,
        target: Target,
        reply_to: Option<ShortString>,
        user: ShortString,
        failure: &Arc<Failure>,
        keep: &Keep,
    ) -> Self {
        let ttl = AmqpOptions::default().message_ttl;
        let props = BasicProperties::default()
            .with_correlation_id(format!("{:032x}", rand::random::<u128>()).into())
            .with_user_id(user)
            .with_expiration(ttl.as_millis().to_string().into());
        let (confirms, rx) = mpsc::unbounded_channel();
        tokio::spawn(watch_confirms(rx, Arc::clone(failure)));
        Self {
            channel,
            target,
            reply_to,
            props,
            buf: Vec::new(),
            writing: VecDeque::new(),
            confirms,
            failure: Arc::clone(failure),
            _keep: Arc::clone(keep),
        }
    }

    fn check(&self) -> Result<(), TransportError> {
        self.failure.get().map_or(Ok(()), Err)
    }

    fn target(&self) -> Result<ShortString, TransportError> {
        match &self.target {
            Target::Fixed(q) => Ok(q.clone()),
            Target::Learned(learned) => learned.get().cloned().ok_or_else(|| {
                TransportError::Other(
                    "nowhere to answer: no message with reply_to received yet".to_owned(),
                )
            }),
        }
    }

    fn publish(&mut self, body: Bytes, target: &ShortString) -> Publish {
        let props = match self.reply_to.take() {
            Some(q) => self.props.clone().with_reply_to(q),
            None => self.props.clone(),
        };
        let (channel, target) = (self.channel.clone(), target.clone());
        let opts = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        Box::pin(async move {
            channel
                .basic_publish(ShortString::default(), target, opts, &body, props)
                .await
        })
    }

    /// A publish is written: its confirm goes to the watcher.
    fn written(&self, result: lapin::Result<PublisherConfirm>) -> Result<(), TransportError> {
        let confirm = result.map_err(|e| {
            let e = format!("publishing: {e}");
            self.failure.fail(e.clone());
            TransportError::Other(e)
        })?;
        let _ = self.confirms.send(confirm);
        Ok(())
    }
}

/// Await confirms in order; a returned, refused or failed one fails the halves.
async fn watch_confirms(mut rx: mpsc::UnboundedReceiver<PublisherConfirm>, failure: Arc<Failure>) {
    while let Some(confirm) = rx.recv().await {
        match confirm.await {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {}
            Ok(Confirmation::Ack(Some(msg)) | Confirmation::Nack(Some(msg))) => {
                failure.fail(format!(
                    "the broker returned a message for queue {}: {} {}",
                    msg.routing_key, msg.reply_code, msg.reply_text
                ));
            }
            Ok(Confirmation::Nack(None)) => failure.fail("the broker nacked a message".to_owned()),
            Err(e) => {
                failure.fail(format!("awaiting a publisher confirm: {e}"));
                return;
            }
        }
    }
}

impl Sink<Bytes> for Writer {
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(self.check())
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        self.check()?;
        self.buf.push(item);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        loop {
            // Await the writes handed over earlier, in order.
            while let Some(first) = this.writing.front_mut() {
                let result = match first.poll_unpin(cx) {
                    Poll::Ready(result) => result,
                    Poll::Pending => return Poll::Pending,
                };
                this.writing.pop_front();
                this.written(result)?;
            }
            if this.buf.is_empty() {
                return Poll::Ready(this.check());
            }
            this.check()?;
            // Hand the whole batch to lapin (the first poll queues its frames) before
            // awaiting any of it.
            let target = this.target()?;
            for body in std::mem::take(&mut this.buf) {
                let mut publish = this.publish(body, &target);
                match publish.poll_unpin(cx) {
                    Poll::Ready(result) => this.written(result)?,
                    Poll::Pending => this.writing.push_back(publish),
                }
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}
