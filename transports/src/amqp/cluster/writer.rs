//! The link's one writer: everything a node sends goes through it, in order.
//!
//! [`write`] takes what [`ClusterLink::send`](redpepper_cluster::ClusterLink::send)
//! queued, a batch at a time (what is queued, up to [`BATCH`]); consecutive messages
//! for the same routing key are coalesced into one broker message, a
//! [`batch`](redpepper_cluster::batch) of at most [`BATCH_MAX_ITEMS`] messages and
//! [`BATCH_MAX_BYTES`] (a lone message goes as it is, so a quiet link adds no delay
//! and no bytes); the broker's per-message cost is then paid once per burst instead of
//! once per message. Only consecutive messages are coalesced: what a node receives
//! keeps the order in which it was sent (a node's directory changes, then its
//! heartbeat, both to `all`; a directed message between them splits the batches).
//! Every broker message is handed to lapin before any is awaited (lapin publishes push
//! their frames on the first poll; `join_all` over at most [`CHUNK`] polls them in
//! order), so a burst leaves in few socket writes and in order. The publisher confirms
//! go to [`watch_confirms`], which awaits them in order and turns returned messages
//! into [`LinkEvent::Returned`], one per request they carried.

use std::task::Poll;

use futures::future::join_all;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use redpepper_cluster::{encode_batch, LinkEvent, BATCH_MAX_BYTES, BATCH_MAX_ITEMS};
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

/// One broker message: a lone message or a batch.
#[derive(Debug)]
struct Publish {
    key: ShortString,
    /// `correlation_id` (a lone request).
    corr: Option<u64>,
    /// The correlation ids of the requests it carries, for returns.
    corrs: Vec<u64>,
    body: Vec<u8>,
}

/// A publisher confirm and the correlation ids of the requests its message carried.
pub(crate) type Pending = (PublisherConfirm, Vec<u64>);

/// The broker messages for `batch`, in order: runs of consecutive messages for the
/// same key become batches (bounded by [`BATCH_MAX_ITEMS`] and [`BATCH_MAX_BYTES`]).
fn coalesce(node: &str, batch: &mut Vec<Outgoing>) -> Vec<Publish> {
    let mut out: Vec<Publish> = Vec::new();
    let mut run: Vec<Outgoing> = Vec::new();
    let mut run_bytes = 0;
    for m in batch.drain(..) {
        let fits = run.first().is_some_and(|first| first.key == m.key)
            && run.len() < BATCH_MAX_ITEMS
            && run_bytes + m.body.len() <= BATCH_MAX_BYTES;
        if !fits {
            flush_run(node, &mut run, &mut out);
            run_bytes = 0;
        }
        run_bytes += m.body.len();
        run.push(m);
    }
    flush_run(node, &mut run, &mut out);
    out
}

fn flush_run(node: &str, run: &mut Vec<Outgoing>, out: &mut Vec<Publish>) {
    let lone = |m: Outgoing| Publish {
        corrs: m.corr.into_iter().collect(),
        corr: m.corr,
        key: m.key,
        body: m.body,
    };
    match run.len() {
        0 => {}
        1 => out.extend(run.drain(..).map(lone)),
        _ => {
            let items: Vec<&[u8]> = run.iter().map(|m| m.body.as_slice()).collect();
            match encode_batch(node, &items) {
                Ok(body) => out.push(Publish {
                    key: run[0].key.clone(),
                    corr: None,
                    corrs: run.iter().filter_map(|m| m.corr).collect(),
                    body,
                }),
                // Within the bounds this cannot fail; should it, send them one by one.
                Err(_) => out.extend(run.iter_mut().map(|m| {
                    lone(Outgoing {
                        key: m.key.clone(),
                        corr: m.corr,
                        body: std::mem::take(&mut m.body),
                    })
                })),
            }
            run.clear();
        }
    }
}

/// What every publish carries.
pub(crate) struct Stamp {
    /// This node's name (a batch's `from`).
    pub(crate) node: String,
    pub(crate) exchange: ShortString,
    /// Our login user (`user_id`).
    pub(crate) user: ShortString,
    /// `expiration`, in milliseconds.
    pub(crate) ttl: ShortString,
}

impl Stamp {
    fn props(&self, out: &Publish) -> BasicProperties {
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
    confirms: &mpsc::Sender<Vec<Pending>>,
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
        let publishes = coalesce(&stamp.node, &mut batch);
        let pending = match publish_in_order(channel, stamp, publishes).await {
            Ok(pending) => pending,
            Err(e) => return WriterEnd::Lost(format!("publishing: {}", explain(&e))),
        };
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
    mut batch: Vec<Publish>,
) -> Result<Vec<Pending>, lapin::Error> {
    let corrs: Vec<Vec<u64>> = batch
        .iter_mut()
        .map(|p| std::mem::take(&mut p.corrs))
        .collect();
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
    let mut corrs = corrs.into_iter();
    for (chunk, done) in chunks.into_iter().zip(done) {
        let results = match done {
            Some(results) => results,
            None => chunk.await,
        };
        for result in results {
            pending.push((result?, corrs.next().unwrap_or_default()));
        }
    }
    Ok(pending)
}

/// Await confirms batch after batch, in order, until the writer is gone.
pub(crate) async fn watch_confirms(
    mut rx: mpsc::Receiver<Vec<Pending>>,
    events: mpsc::Sender<LinkEvent>,
) {
    while let Some(batch) = rx.recv().await {
        watch_batch(batch, &events).await;
    }
}

static NACKED: LogLimit = LogLimit::new(redpepper_core::quiet::DEFAULT_INTERVAL, 1);

async fn watch_batch(batch: Vec<Pending>, events: &mpsc::Sender<LinkEvent>) {
    // Every confirm is awaited, even after an error: lapin keeps dropped ones forever.
    for (confirm, corrs) in batch {
        match confirm.await {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) | Err(_) => {}
            Ok(Confirmation::Ack(Some(msg)) | Confirmation::Nack(Some(msg))) => {
                let node = key_node(msg.routing_key.as_str());
                if corrs.is_empty() {
                    let _ = events.send(returned(node, None)).await;
                }
                for corr in corrs {
                    let _ = events.send(returned(node, Some(corr))).await;
                }
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

/// A returned message (or one request of a returned batch) as the manager sees it.
fn returned(node: &str, corr: Option<u64>) -> LinkEvent {
    LinkEvent::Returned {
        node: node.to_owned(),
        corr,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use redpepper_cluster::{decode_body, ClusterMessage};

    fn out(key: &str, corr: u64, size: usize) -> Outgoing {
        let message = ClusterMessage::Notify {
            corr,
            agent: "web-1".into(),
            kind: "hint".into(),
            data: redpepper_core::Value::from("x".repeat(size)),
        };
        Outgoing {
            key: key.into(),
            corr: Some(corr),
            body: message.encode("mgr-a").unwrap(),
        }
    }

    fn corrs_of(p: &Publish) -> Vec<u64> {
        decode_body(&p.body)
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap().message.request_corr().unwrap())
            .collect()
    }

    #[test]
    fn only_consecutive_messages_for_one_key_are_coalesced_within_the_bounds() {
        let mut batch = vec![
            out("node.b", 1, 0),
            out("node.b", 2, 0),
            out("all", 3, 0),
            out("node.b", 4, 0),
            out("node.b", 5, 0),
            out("node.b", 6, 0),
        ];
        let p = coalesce("mgr-a", &mut batch);
        assert!(batch.is_empty());
        let shape: Vec<(&str, Vec<u64>, Option<u64>)> = p
            .iter()
            .map(|p| (p.key.as_str(), corrs_of(p), p.corr))
            .collect();
        assert_eq!(
            shape,
            [
                ("node.b", vec![1, 2], None),
                ("all", vec![3], Some(3)),
                ("node.b", vec![4, 5, 6], None),
            ]
        );
        assert_eq!(p[0].corrs, [1, 2]);
        assert_eq!(p[2].corrs, [4, 5, 6]);

        // Count bound.
        let mut batch: Vec<_> = (0..BATCH_MAX_ITEMS as u64 + 1)
            .map(|i| out("node.b", i, 0))
            .collect();
        let p = coalesce("mgr-a", &mut batch);
        assert_eq!(p.len(), 2);
        assert_eq!(corrs_of(&p[0]).len(), BATCH_MAX_ITEMS);
        assert_eq!(p[1].corrs, [BATCH_MAX_ITEMS as u64]);

        // Byte bound: a large message goes alone, the others around it as they fit.
        let big = BATCH_MAX_BYTES / 3;
        let mut batch = vec![
            out("node.b", 1, big),
            out("node.b", 2, big),
            out("node.b", 3, big),
            out("node.b", 4, BATCH_MAX_BYTES),
            out("node.b", 5, 0),
        ];
        let p = coalesce("mgr-a", &mut batch);
        let shape: Vec<Vec<u64>> = p.iter().map(corrs_of).collect();
        assert_eq!(shape, [vec![1, 2], vec![3], vec![4], vec![5]]);
        assert!(p
            .iter()
            .all(|p| p.body.len() <= BATCH_MAX_BYTES + 64 || p.corrs == [4]));
    }
}
