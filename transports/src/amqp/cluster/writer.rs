//! The link's one writer: everything a node sends goes through it, in order.
//!
//! [`write`] takes what [`ClusterLink::send`](redpepper_cluster::ClusterLink::send)
//! queued, a batch at a time (what is queued, up to [`BATCH`]), and hands every
//! message of the batch to lapin before awaiting any (lapin publishes push their
//! frames on the first poll; `join_all` over at most [`CHUNK`] polls them in order),
//! so a burst leaves in few socket writes and in order. The batch's publisher
//! confirms go to [`watch_confirms`], which awaits them in order and turns returned
//! messages into [`LinkEvent::Returned`].

use std::task::Poll;

use futures::future::join_all;
use lapin::message::BasicReturnMessage;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use redpepper_cluster::LinkEvent;
use redpepper_core::quiet::LogLimit;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::super::broker::explain;
use super::topology::key_node;

/// Most messages published per batch.
const BATCH: usize = 256;

/// Most publishes polled together (`join_all` keeps its in-order polling up to 30).
const CHUNK: usize = 30;

/// One message for the broker.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// `node.<name>` or `all`.
    pub(crate) key: ShortString,
    /// The request's correlation id, if it is one.
    pub(crate) corr: Option<u64>,
    /// The encoded envelope.
    pub(crate) body: Vec<u8>,
}

/// What the writer's queue carries.
#[derive(Debug)]
pub(crate) enum Out {
    /// Publish this.
    Message(Outgoing),
    /// Publish what came before, wait for its confirms, then close the link.
    Close(oneshot::Sender<()>),
}

/// How the writer stopped.
pub(crate) enum WriterEnd {
    /// Publishing failed: the connection or channel is gone.
    Lost(String),
    /// [`Out::Close`]: what came before it is confirmed.
    Close(oneshot::Sender<()>),
    /// The link was dropped.
    Dropped,
}

/// What every publish carries.
pub(crate) struct Stamp {
    pub(crate) exchange: ShortString,
    /// Our login user (`user_id`).
    pub(crate) user: ShortString,
    /// `expiration`, in milliseconds.
    pub(crate) ttl: ShortString,
}

impl Stamp {
    fn props(&self, out: &Outgoing) -> BasicProperties {
        let props = BasicProperties::default()
            .with_user_id(self.user.clone())
            .with_expiration(self.ttl.clone());
        match out.corr {
            Some(corr) => props.with_correlation_id(corr.to_string().into()),
            None => props,
        }
    }
}

/// Publish what is queued in `rx` until the channel fails, a close is asked for or
/// the link is dropped.
pub(crate) async fn write(
    channel: &Channel,
    stamp: &Stamp,
    rx: &mut mpsc::Receiver<Out>,
    confirms: &mpsc::Sender<Vec<PublisherConfirm>>,
    events: &mpsc::Sender<LinkEvent>,
) -> WriterEnd {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let mut close = None;
        match rx.recv().await {
            None => return WriterEnd::Dropped,
            Some(Out::Close(done)) => close = Some(done),
            Some(Out::Message(m)) => {
                batch.push(m);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(Out::Message(m)) => batch.push(m),
                        Ok(Out::Close(done)) => {
                            close = Some(done);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        let pending = match publish_in_order(channel, stamp, &batch).await {
            Ok(pending) => pending,
            Err(e) => return WriterEnd::Lost(format!("publishing: {}", explain(&e))),
        };
        batch.clear();
        match close {
            Some(done) => {
                // Confirms come in order: once these are in, everything before is.
                watch_batch(pending, events).await;
                return WriterEnd::Close(done);
            }
            None => {
                if confirms.send(pending).await.is_err() {
                    return WriterEnd::Lost("the confirm watcher stopped".into());
                }
            }
        }
    }
}

/// Hand every message to lapin in order, then wait until all are handed over.
async fn publish_in_order(
    channel: &Channel,
    stamp: &Stamp,
    batch: &[Outgoing],
) -> Result<Vec<PublisherConfirm>, lapin::Error> {
    let opts = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let mut chunks = Vec::with_capacity(batch.len().div_ceil(CHUNK));
    for chunk in batch.chunks(CHUNK) {
        chunks.push(join_all(chunk.iter().map(|m| {
            channel.basic_publish(
                stamp.exchange.clone(),
                m.key.clone(),
                opts,
                &m.body,
                stamp.props(m),
            )
        })));
    }
    let mut done = Vec::with_capacity(chunks.len());
    for chunk in &mut chunks {
        done.push(match futures::poll!(chunk) {
            Poll::Ready(results) => Some(results),
            Poll::Pending => None,
        });
    }
    let mut pending = Vec::with_capacity(batch.len());
    for (chunk, done) in chunks.into_iter().zip(done) {
        let results = match done {
            Some(results) => results,
            None => chunk.await,
        };
        for result in results {
            pending.push(result?);
        }
    }
    Ok(pending)
}

/// Await confirms batch after batch, in order, until the writer is gone.
pub(crate) async fn watch_confirms(
    mut rx: mpsc::Receiver<Vec<PublisherConfirm>>,
    events: mpsc::Sender<LinkEvent>,
) {
    while let Some(batch) = rx.recv().await {
        watch_batch(batch, &events).await;
    }
}

static NACKED: LogLimit = LogLimit::new(redpepper_core::quiet::DEFAULT_INTERVAL, 1);

async fn watch_batch(batch: Vec<PublisherConfirm>, events: &mpsc::Sender<LinkEvent>) {
    // Every confirm is awaited, even after an error: lapin keeps dropped ones forever.
    for confirm in batch {
        match confirm.await {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) | Err(_) => {}
            Ok(Confirmation::Ack(Some(msg)) | Confirmation::Nack(Some(msg))) => {
                let _ = events.send(returned(&msg)).await;
            }
            Ok(Confirmation::Nack(None)) => {
                if let Some(others) = NACKED.admit() {
                    warn!(
                        others_since_last_report = others,
                        "the broker refused (nacked) a cluster message"
                    );
                }
            }
        }
    }
}

/// A returned message as the manager sees it.
fn returned(msg: &BasicReturnMessage) -> LinkEvent {
    LinkEvent::Returned {
        node: key_node(msg.routing_key.as_str()).to_owned(),
        corr: msg
            .properties
            .correlation_id()
            .as_ref()
            .and_then(|c| c.as_str().parse().ok()),
    }
}
