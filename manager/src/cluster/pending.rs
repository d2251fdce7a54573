//! Requests forwarded to other nodes and waiting for their reply, by correlation id:
//! insert (bounded), complete, fail those of a node, fail all. A caller that gives up
//! (timeout, dropped future) removes its entry with its [`Ticket`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use redpepper_cluster::RemoteError;
use redpepper_core::Value;
use tokio::sync::oneshot;

use crate::error::ManagerError;

/// Forwarded requests in flight from this node, at most.
pub(crate) const MAX_PENDING: usize = 65_536;

/// How a forwarded request ended.
pub(crate) enum Answer {
    /// The other node's reply.
    Reply(Result<Value, RemoteError>),
    /// Failed here (node gone, link down).
    Failed(ManagerError),
}

struct Waiter {
    node: String,
    agent: String,
    tx: oneshot::Sender<Answer>,
}

#[derive(Default)]
pub(crate) struct Pending {
    map: Mutex<HashMap<u64, Waiter>>,
    next: AtomicU64,
}

/// A waiting request's place; removes it when dropped.
pub(crate) struct Ticket<'a> {
    pending: &'a Pending,
    pub(crate) corr: u64,
    pub(crate) rx: oneshot::Receiver<Answer>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.corr);
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new request to `agent` on `node`.
    pub(crate) fn insert(&self, node: &str, agent: &str) -> Result<Ticket<'_>, ManagerError> {
        let corr = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        let mut map = self.lock();
        if map.len() >= MAX_PENDING {
            return Err(ManagerError::Forwarded {
                node: node.to_owned(),
                agent: agent.to_owned(),
                reason: format!(
                    "too many requests forwarded from this node in flight ({MAX_PENDING})"
                ),
            });
        }
        map.insert(
            corr,
            Waiter {
                node: node.to_owned(),
                agent: agent.to_owned(),
                tx,
            },
        );
        Ok(Ticket {
            pending: self,
            corr,
            rx,
        })
    }

    /// The reply to `corr` arrived from `from` (ignored when it is not the node asked).
    pub(crate) fn complete(&self, from: &str, corr: u64, answer: Answer) {
        let mut map = self.lock();
        if map.get(&corr).is_some_and(|w| w.node == from) {
            if let Some(w) = map.remove(&corr) {
                let _ = w.tx.send(answer);
            }
        }
    }

    /// Fail request `corr` (its message came back undelivered).
    pub(crate) fn fail(&self, corr: u64, error: impl FnOnce(&str, &str) -> ManagerError) {
        if let Some(w) = self.lock().remove(&corr) {
            let _ = w.tx.send(Answer::Failed(error(&w.node, &w.agent)));
        }
    }

    /// Fail every request to `node`.
    pub(crate) fn fail_node(&self, node: &str, error: impl Fn(&str, &str) -> ManagerError) {
        self.lock().retain(|_, w| {
            if w.node != node {
                return true;
            }
            let w = std::mem::replace(
                w,
                Waiter {
                    node: String::new(),
                    agent: String::new(),
                    tx: oneshot::channel().0,
                },
            );
            let _ = w.tx.send(Answer::Failed(error(&w.node, &w.agent)));
            false
        });
    }

    /// Fail every request.
    pub(crate) fn fail_all(&self, error: impl Fn(&str, &str) -> ManagerError) {
        for (_, w) in self.lock().drain() {
            let _ = w.tx.send(Answer::Failed(error(&w.node, &w.agent)));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn requests_complete_fail_by_node_and_leave_when_dropped() {
        let p = Pending::default();
        let mut a = p.insert("b", "x").unwrap();
        let mut b = p.insert("c", "y").unwrap();
        let dropped = p.insert("c", "z").unwrap();
        drop(dropped);
        assert_eq!(p.len(), 2);
        // A reply from another node than the one asked is ignored.
        p.complete("c", a.corr, Answer::Reply(Ok(Value::Nil)));
        p.complete("b", a.corr, Answer::Reply(Ok(Value::from(1))));
        match (&mut a.rx).await.unwrap() {
            Answer::Reply(Ok(v)) => assert_eq!(v, Value::from(1)),
            _ => panic!("wrong answer"),
        }
        p.fail_node("c", |node, agent| ManagerError::NodeGone {
            node: node.into(),
            agent: agent.into(),
        });
        match (&mut b.rx).await.unwrap() {
            Answer::Failed(e) => assert_eq!(e.to_string(), "node c holding agent y is gone"),
            _ => panic!("wrong answer"),
        }
        assert_eq!(p.len(), 0);
    }
}
