//! The link's consumer: deliveries of this node's queue, checked, then handed to the
//! manager as [`LinkEvent::Message`]s (a batch's messages one by one, in order),
//! acknowledged with `multiple` every half prefetch window or [`ACK_DELAY`] after the
//! oldest unacknowledged delivery (the prefetch window bounds what waits in memory; a manager that
//! does not keep up leaves the rest in the broker).
//!
//! Dropped, with a rate-limited warning (any broker user with write permission on the
//! exchange can send them): messages whose `user_id` is absent or not one of
//! `cluster.manager_users`, bodies over [`MAX_MESSAGE_SIZE`], and bodies that are not a
//! cluster message (the warning says why). Our own broadcasts come back through the
//! `all` binding and are dropped silently.

use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::types::ShortString;
use lapin::Consumer;
use redpepper_cluster::{decode_body, Envelope, LinkEvent, MAX_MESSAGE_SIZE};
use redpepper_core::quiet::{printable, LogLimit};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::super::broker::explain;
use super::super::reader::AckBatch;

/// Longest a delivery waits for its acknowledgement (besides every half prefetch
/// window): acknowledging every delivery of a quiet link as soon as it is handed over
/// costs a frame and a task wake-up per message, next to the forwarded call; the
/// node's queue is exclusive, so what is unacknowledged when the connection drops is
/// gone with it either way.
const ACK_DELAY: Duration = Duration::from_millis(20);

/// Longest node name accepted in a message's `from`.
const MAX_NODE_NAME: usize = 200;

/// The consumer's rate-limited warnings, one limit per kind.
#[derive(Debug, Default)]
pub(crate) struct Noise {
    foreign: LogLimit,
    oversized: LogLimit,
    undecodable: LogLimit,
}

/// What the consumer checks against.
pub(crate) struct Checks<'a> {
    pub(crate) node: &'a str,
    pub(crate) queue: &'a ShortString,
    pub(crate) manager_users: &'a [String],
    pub(crate) noise: &'a Noise,
}

/// Consume until the consumer fails or is cancelled; returns why.
pub(crate) async fn consume(
    consumer: &mut Consumer,
    checks: &Checks<'_>,
    prefetch: u16,
    events: &mpsc::Sender<LinkEvent>,
) -> String {
    let mut acks = AckBatch::new(usize::from(prefetch / 2).max(1), checks.queue.to_string());
    // When the oldest unacknowledged delivery must be acknowledged at the latest.
    let ack_by = tokio::time::sleep(ACK_DELAY);
    tokio::pin!(ack_by);
    loop {
        tokio::select! {
            biased;
            next = consumer.next() => match next {
                Some(Ok(mut d)) => {
                    for envelope in check(&mut d, checks) {
                        // The manager stopped listening: keep consuming and dropping.
                        let _ = events.send(LinkEvent::Message(envelope)).await;
                    }
                    if !acks.pending() {
                        ack_by.as_mut().reset(Instant::now() + ACK_DELAY);
                    }
                    if acks.note(d.acker) {
                        acks.flush();
                    }
                }
                Some(Err(e)) => return format!("consuming {}: {}", checks.queue, explain(&e)),
                None => return format!("the broker cancelled our consumer of {}", checks.queue),
            },
            () = &mut ack_by, if acks.pending() => acks.flush(),
        }
    }
}

/// The envelopes of a delivery (several for a batch), in order; what is dropped is
/// logged unless it is our own broadcast.
fn check(d: &mut Delivery, checks: &Checks<'_>) -> Vec<Envelope> {
    let user = d.properties.user_id().as_ref().map(ShortString::as_str);
    let Some(user) = user.filter(|u| checks.manager_users.iter().any(|m| m == u)) else {
        if let Some(others) = checks.noise.foreign.admit() {
            warn!(
                queue = %checks.queue,
                user_id = %user.map_or_else(|| "(none)".to_owned(), printable),
                others_since_last_report = others,
                "dropping a cluster message from a broker user not in cluster.manager_users"
            );
        }
        return Vec::new();
    };
    if d.data.len() > MAX_MESSAGE_SIZE {
        if let Some(others) = checks.noise.oversized.admit() {
            warn!(
                queue = %checks.queue,
                user_id = %printable(user),
                size = d.data.len(),
                limit = MAX_MESSAGE_SIZE,
                others_since_last_report = others,
                "dropping a cluster message over the size limit"
            );
        }
        return Vec::new();
    }
    let body = std::mem::take(&mut d.data);
    let decoded = match decode_body(&body) {
        Ok(decoded) => decoded,
        Err(e) => {
            undecodable(checks, user, &e.to_string());
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(decoded.len());
    for item in decoded {
        let why = match item {
            Ok(envelope) if envelope.from == checks.node => continue,
            Ok(envelope) if is_node_name(&envelope.from) => {
                out.push(envelope);
                continue;
            }
            Ok(envelope) => format!("`{}` is not a node name", printable(&envelope.from)),
            Err(e) => e.to_string(),
        };
        undecodable(checks, user, &why);
    }
    out
}

fn undecodable(checks: &Checks<'_>, user: &str, why: &str) {
    if let Some(others) = checks.noise.undecodable.admit() {
        warn!(
            queue = %checks.queue,
            user_id = %printable(user),
            others_since_last_report = others,
            "dropping an undecodable cluster message: {why}"
        );
    }
}

/// `[A-Za-z0-9_-]+`, at most [`MAX_NODE_NAME`] bytes (what `cluster.node` accepts).
fn is_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NODE_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_what_cluster_node_accepts() {
        assert!(is_node_name("mgr-a_1"));
        assert!(!is_node_name(""));
        assert!(!is_node_name("mgr a"));
        assert!(!is_node_name("mgr.a"));
        assert!(!is_node_name(&"x".repeat(MAX_NODE_NAME + 1)));
    }
}
