//! [`ClusterLink`]: what the manager needs from the broker between nodes, and nothing
//! more. The AMQP implementation lives beside the AMQP transport
//! (`redpepper_transports::cluster_link`); [`crate::MemoryHub`] is the in-memory one.

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::error::ClusterError;
use crate::message::{ClusterMessage, Envelope};

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To<'a> {
    /// One node, by name.
    Node(&'a str),
    /// Every other node.
    All,
}

/// What the link reports, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkEvent {
    /// A message from another node (never one of ours), from a broker user allowed to
    /// speak for the cluster.
    Message(Envelope),
    /// A message sent to `node` could not be delivered: no node of that name is
    /// listening (it died or left). `corr` is the request's correlation id, for
    /// `call` and `notify`.
    Returned {
        /// The node it was for.
        node: String,
        /// The request's correlation id.
        corr: Option<u64>,
    },
    /// The link is (again) connected; messages sent while it was down are lost.
    Up,
    /// The link lost the broker; it reconnects by itself.
    Down(String),
}

/// A node's link to the others.
///
/// `send` never waits: it queues the message for the link's one writer, which keeps
/// messages to all destinations in order (a node's events, then its heartbeat, arrive
/// in the order sent). It fails at once when the link is down or its queue is full.
pub trait ClusterLink: Send + Sync + 'static {
    /// This node's name.
    fn node(&self) -> &str;

    /// Queue `message` for `to`.
    fn send(&self, to: To<'_>, message: &ClusterMessage) -> Result<(), ClusterError>;

    /// The stream of [`LinkEvent`]s; `None` after the first call.
    fn take_events(&self) -> Option<mpsc::Receiver<LinkEvent>>;

    /// Whether the link is connected now.
    fn is_up(&self) -> bool;

    /// What the link is connected to, for logs and the admin API (no credentials).
    fn describe(&self) -> String;

    /// Send what is queued, then leave the cluster.
    fn close(&self) -> BoxFuture<'static, ()>;
}

/// The command-id tag of `node`: 8 hex digits (FNV-1a of the name) that begin the ids
/// of the commands it starts, so a node that receives a command's result for a
/// command it did not start knows where to send it. Ids stay 32 hex digits, as
/// RedPepper's.
pub fn node_tag(node: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in node.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn tags_are_eight_hex_digits_and_differ_between_names() {
        let a = node_tag("mgr-a");
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, node_tag("mgr-b"));
        assert_eq!(a, node_tag("mgr-a"));
    }
}
