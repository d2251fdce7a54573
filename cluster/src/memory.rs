//! [`MemoryHub`]: an in-memory broker for [`ClusterLink`]s, so the manager's cluster
//! logic is tested without RabbitMQ. Messages are encoded and decoded on the way, as on
//! the broker; a message to a node that is not joined comes back as
//! [`LinkEvent::Returned`], as RabbitMQ's `mandatory` returns do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;

use crate::error::ClusterError;
use crate::link::{ClusterLink, LinkEvent, To};
use crate::message::{ClusterMessage, Envelope};

/// Events a link may hold unread before sends to it fail.
const QUEUE: usize = 65_536;

/// An in-memory broker. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryHub {
    nodes: Arc<Mutex<HashMap<String, mpsc::Sender<LinkEvent>>>>,
}

impl std::fmt::Debug for MemoryHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHub").finish_non_exhaustive()
    }
}

impl MemoryHub {
    /// A hub with no node.
    pub fn new() -> MemoryHub {
        MemoryHub::default()
    }

    /// Join `node` (replacing a node of the same name, as a restarted node does).
    pub fn join(&self, node: &str) -> Arc<MemoryLink> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let _ = tx.try_send(LinkEvent::Up);
        self.lock().insert(node.to_owned(), tx);
        Arc::new(MemoryLink {
            hub: self.clone(),
            node: node.to_owned(),
            events: Mutex::new(Some(rx)),
        })
    }

    /// Remove `node` at once, without a word (kill -9).
    pub fn kill(&self, node: &str) {
        self.lock().remove(node);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<LinkEvent>>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One node's link on a [`MemoryHub`].
pub struct MemoryLink {
    hub: MemoryHub,
    node: String,
    events: Mutex<Option<mpsc::Receiver<LinkEvent>>>,
}

impl std::fmt::Debug for MemoryLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLink")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl MemoryLink {
    fn deliver(tx: &mpsc::Sender<LinkEvent>, bytes: &[u8]) -> Result<(), ClusterError> {
        let envelope = Envelope::decode(bytes)?;
        tx.try_send(LinkEvent::Message(envelope))
            .map_err(|_| ClusterError::Backlog(QUEUE))
    }
}

impl ClusterLink for MemoryLink {
    fn node(&self) -> &str {
        &self.node
    }

    fn send(&self, to: To<'_>, message: &ClusterMessage) -> Result<(), ClusterError> {
        let bytes = message.encode(&self.node)?;
        let nodes = self.hub.lock();
        let Some(me) = nodes.get(&self.node).cloned() else {
            return Err(ClusterError::LinkDown(format!(
                "node {} left the hub",
                self.node
            )));
        };
        match to {
            To::Node(name) => match nodes.get(name) {
                Some(tx) => Self::deliver(tx, &bytes),
                None => {
                    let _ = me.try_send(LinkEvent::Returned {
                        node: name.to_owned(),
                        corr: message.request_corr(),
                    });
                    Ok(())
                }
            },
            To::All => {
                for (name, tx) in nodes.iter() {
                    if *name != self.node {
                        // One slow node does not stop the others hearing it.
                        let _ = Self::deliver(tx, &bytes);
                    }
                }
                Ok(())
            }
        }
    }

    fn take_events(&self) -> Option<mpsc::Receiver<LinkEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn is_up(&self) -> bool {
        self.hub.lock().contains_key(&self.node)
    }

    fn describe(&self) -> String {
        format!("in-memory hub (node {})", self.node)
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let _ = self.send(To::All, &ClusterMessage::Leaving);
        self.hub.kill(&self.node);
        async {}.boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn messages_reach_their_node_and_unknown_nodes_come_back() {
        let hub = MemoryHub::new();
        let a = hub.join("a");
        let b = hub.join("b");
        let mut ea = a.take_events().unwrap();
        let mut eb = b.take_events().unwrap();
        assert!(matches!(ea.recv().await, Some(LinkEvent::Up)));
        assert!(matches!(eb.recv().await, Some(LinkEvent::Up)));
        a.send(To::All, &ClusterMessage::DirectoryRequest).unwrap();
        match eb.recv().await {
            Some(LinkEvent::Message(e)) => assert_eq!(e.from, "a"),
            other => panic!("{other:?}"),
        }
        let call = ClusterMessage::Notify {
            corr: 4,
            agent: "x".into(),
            kind: "t".into(),
            data: redpepper_codec::Value::Nil,
        };
        a.send(To::Node("c"), &call).unwrap();
        match ea.recv().await {
            Some(LinkEvent::Returned { node, corr }) => {
                assert_eq!((node.as_str(), corr), ("c", Some(4)))
            }
            other => panic!("{other:?}"),
        }
        hub.kill("b");
        assert!(!b.is_up());
    }
}
