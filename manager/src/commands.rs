//! RedPepper commands: the `command` request to an agent, and the `command_progress` /
//! `command_result` notifications that follow it, routed back to whoever started it.
//!
//! A command whose agent's session ends stays pending for the grace period
//! (`commands.grace`; [`Manager::set_command_grace`](crate::Manager::set_command_grace)):
//! the agent keeps its result and sends it on its next session, and a result from any
//! session of the same agent id completes it. The run's caller sees nothing in between;
//! when the grace passes first, the run ends with [`CommandUpdate::Lost`]. With grace 0
//! it is lost when the session ends.
//!
//! Results for commands nobody follows (a second copy, a manager restarted since, a run
//! dropped) are dropped here with a rate-limited line; they still reach the event
//! stream. Each run's updates are bounded ([`updates`]): progress coalesced when the
//! reader lags, the result always kept.

mod updates;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redpepper_core::quiet::LogLimit;
use redpepper_core::{Notification, Session, Value};

use crate::error::ManagerError;
use updates::{UpdateRx, UpdateTx};

/// Notifications about commands without a command id (peer-provoked).
static NO_ID: LogLimit = LogLimit::new(Duration::from_secs(10), 1);
/// Notifications about another agent's command (peer-provoked).
static FOREIGN: LogLimit = LogLimit::new(Duration::from_secs(10), 1);
/// Results for commands nobody follows (a resent copy, a restarted manager).
static UNFOLLOWED: LogLimit = LogLimit::new(Duration::from_secs(10), 1);

/// One update about a running command.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandUpdate {
    /// `command_progress`.
    Progress {
        /// Steps done.
        current: i64,
        /// Steps in all.
        total: i64,
        /// What the agent is doing.
        message: String,
    },
    /// `command_result`: the last update.
    Result(CommandResult),
    /// The agent's session ended before the result.
    Lost(String),
}

/// The outcome of a command, as the agent reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandResult {
    /// Whether the operation succeeded.
    pub success: bool,
    /// Whether it changed something.
    pub changed: bool,
    /// Its output text.
    pub output: String,
}

/// A command started on an agent: its id and the stream of its updates. Dropping it
/// (after the result, or giving up before) stops following the command: later
/// updates are dropped; the operation itself goes on on the agent.
#[derive(Debug)]
pub struct CommandRun {
    /// Command id (32 hex characters).
    pub id: String,
    /// The agent running it.
    pub agent: String,
    updates: UpdateRx,
    tracker: Weak<CommandTracker>,
}

impl Drop for CommandRun {
    fn drop(&mut self) {
        if let Some(tracker) = self.tracker.upgrade() {
            tracker.forget(&self.id);
        }
    }
}

impl CommandRun {
    /// The next update; `None` after the result (or loss) was delivered.
    pub async fn next(&mut self) -> Option<CommandUpdate> {
        self.updates.recv().await
    }

    /// Wait for the result, passing each progress update to `on_progress`.
    pub async fn wait(
        mut self,
        timeout: Duration,
        mut on_progress: impl FnMut(i64, i64, &str),
    ) -> Result<CommandResult, ManagerError> {
        let run = async {
            while let Some(update) = self.updates.recv().await {
                match update {
                    CommandUpdate::Progress {
                        current,
                        total,
                        message,
                    } => on_progress(current, total, &message),
                    CommandUpdate::Result(r) => return Ok(r),
                    CommandUpdate::Lost(reason) => return Err(reason),
                }
            }
            Err("manager shut down".to_owned())
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(reason)) => Err(self.error(reason)),
            Err(_) => Err(self.error(format!("no result within {:.0}s", timeout.as_secs_f64()))),
        }
    }

    fn error(&self, reason: String) -> ManagerError {
        ManagerError::Command {
            id: self.id.clone(),
            agent: self.agent.clone(),
            reason,
        }
    }
}

/// Where a followed command runs.
enum At {
    /// On this session of ours.
    Session(Session),
    /// On a session of that other node of the cluster.
    Node(String),
    /// Its agent's session ended: the grace runs.
    Away,
}

struct Pending {
    agent: String,
    at: At,
    tx: UpdateTx,
}

/// Commands waiting for their result, by command id.
#[derive(Default)]
pub(crate) struct CommandTracker {
    pending: Mutex<HashMap<String, Pending>>,
    /// `commands.grace` in milliseconds.
    grace_ms: AtomicU64,
    /// In a cluster, this node's tag: the first 8 hex digits of its command ids.
    tag: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for CommandTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandTracker").finish_non_exhaustive()
    }
}

impl CommandTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long a command waits for its agent to come back after its session ended.
    pub(crate) fn set_grace(&self, grace: Duration) {
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.grace_ms.store(ms, Ordering::Relaxed);
    }

    fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::Relaxed))
    }

    /// In a cluster: begin command ids with `tag` (see [`redpepper_cluster::node_tag`]).
    pub(crate) fn set_tag(&self, tag: &str) {
        let _ = self.tag.set(tag.to_owned());
    }

    fn new_id(&self) -> String {
        match self.tag.get() {
            Some(tag) => format!("{tag}{:024x}", rand::random::<u128>() >> 32),
            None => format!("{:032x}", rand::random::<u128>()),
        }
    }

    pub(crate) fn register(self: &Arc<Self>, agent: &str, session: &Session) -> CommandRun {
        self.register_at(agent, At::Session(session.clone()))
    }

    /// Follow a command run by `agent` on `node`, another node of the cluster.
    pub(crate) fn register_remote(self: &Arc<Self>, agent: &str, node: &str) -> CommandRun {
        self.register_at(agent, At::Node(node.to_owned()))
    }

    fn register_at(self: &Arc<Self>, agent: &str, at: At) -> CommandRun {
        let id = self.new_id();
        let (tx, updates) = updates::channel();
        self.lock().insert(
            id.clone(),
            Pending {
                agent: agent.to_owned(),
                at,
                tx,
            },
        );
        CommandRun {
            id,
            agent: agent.to_owned(),
            updates,
            tracker: Arc::downgrade(self),
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Route a notification from `agent` (from one of its sessions here, or forwarded
    /// by the node holding its session). Returns false when it was not about one of our
    /// commands (or came from another agent than the one running it). A command is
    /// matched by the agent id, not the session: its result may come on a later
    /// session of the agent (after a reconnect), on any node.
    pub(crate) fn on_notification(&self, agent: &str, n: &Notification) -> bool {
        let field = |name: &str| -> Option<&Value> {
            n.data
                .as_map()?
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v)
        };
        let text = |name: &str| {
            field(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (id_key, last) = match n.r#type.as_str() {
            "command_progress" => ("command_id", false),
            "command_result" => ("id", true),
            _ => return false,
        };
        let Some(id) = field(id_key).and_then(Value::as_str) else {
            if let Some(others) = NO_ID.admit() {
                tracing::warn!(agent, kind = %n.r#type, others_since_last_report = others, "notification without a command id");
            }
            return false;
        };
        let mut pending = self.lock();
        match pending.get(id) {
            Some(p) if p.agent == agent => {}
            Some(_) => {
                if let Some(others) = FOREIGN.admit() {
                    tracing::warn!(
                        agent,
                        command = id,
                        others_since_last_report = others,
                        "notification about another agent's command, dropped"
                    );
                }
                return false;
            }
            None => {
                if last {
                    if let Some(others) = UNFOLLOWED.admit() {
                        tracing::info!(
                            agent,
                            command = id,
                            others_since_last_report = others,
                            "result for a command not followed (already delivered, or sent before a restart), dropped"
                        );
                    }
                }
                return false;
            }
        }
        let update = if last {
            CommandUpdate::Result(CommandResult {
                success: field("success").and_then(Value::as_bool).unwrap_or(false),
                changed: field("changed").and_then(Value::as_bool).unwrap_or(false),
                output: text("output"),
            })
        } else {
            CommandUpdate::Progress {
                current: field("current").and_then(Value::as_i64).unwrap_or(0),
                total: field("total").and_then(Value::as_i64).unwrap_or(0),
                message: text("message"),
            }
        };
        let entry = if last { pending.remove(id) } else { None };
        if let Some(p) = entry.as_ref().or_else(|| pending.get(id)) {
            p.tx.send(update);
        }
        true
    }

    /// The manager is shutting down: commands waiting for their agent to come back are
    /// lost now, and those of sessions closing from now on at once (grace 0).
    pub(crate) fn shutdown(&self) {
        self.set_grace(Duration::ZERO);
        self.lock().retain(|_, p| {
            if matches!(p.at, At::Session(_)) {
                return true;
            }
            p.tx.send(CommandUpdate::Lost("manager shut down".to_owned()));
            false
        });
    }

    /// A session ended: every command it was running waits for the agent's next
    /// session for the grace period, then is lost (at once with grace 0).
    pub(crate) fn session_gone(self: &Arc<Self>, session: &Session, reason: &str) {
        let agent = session.agent_id().unwrap_or_default();
        self.away(
            agent,
            reason,
            |at| matches!(at, At::Session(s) if s.same_session(session)),
        );
    }

    /// Agent `agent` left `node`, another node of the cluster (its session ended, or the
    /// node died or left): its commands there wait for it as after a local session.
    pub(crate) fn agent_left(self: &Arc<Self>, agent: &str, node: &str, reason: &str) {
        let reason = format!("{reason} (node {node})");
        self.away(agent, &reason, |at| matches!(at, At::Node(n) if n == node));
    }

    /// The commands of `agent` whose place `gone` matches wait for the grace period,
    /// then are lost (at once with grace 0).
    fn away(self: &Arc<Self>, agent: &str, reason: &str, gone: impl Fn(&At) -> bool) {
        let grace = self.grace();
        let mut waiting = Vec::new();
        self.lock().retain(|id, p| {
            if p.agent != agent || !gone(&p.at) {
                return true;
            }
            if grace.is_zero() {
                p.tx.send(CommandUpdate::Lost(format!("agent disconnected: {reason}")));
                return false;
            }
            p.at = At::Away;
            waiting.push(id.clone());
            true
        });
        if waiting.is_empty() {
            return;
        }
        let agent = agent.to_owned();
        tracing::info!(%agent, commands = waiting.len(), grace_secs = grace.as_secs_f64(), "agent disconnected with commands running: waiting for it to come back with their results");
        let tracker = Arc::downgrade(self);
        let reason = reason.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(tracker) = tracker.upgrade() else {
                return;
            };
            let mut pending = tracker.lock();
            for id in waiting {
                // Still waiting for the result (not delivered, not dropped by its run).
                if pending.get(&id).is_some_and(|p| matches!(p.at, At::Away)) {
                    if let Some(p) = pending.remove(&id) {
                        tracing::warn!(%agent, command = %id, "command lost: the agent did not come back with its result within commands.grace");
                        p.tx.send(CommandUpdate::Lost(format!(
                            "agent disconnected ({reason}) and did not come back with the result within the grace period of {}s",
                            grace.as_secs_f64()
                        )));
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use redpepper_core::memory;
    use redpepper_core::{PeerInfo, Router, SessionConfig};

    struct Any;
    impl redpepper_core::Authenticator for Any {
        fn authenticate<'a>(
            &'a self,
            _: &'a redpepper_core::codec::AgentHello,
            _: &'a PeerInfo,
        ) -> futures::future::BoxFuture<'a, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn a_dropped_run_is_forgotten() {
        let (mut l, d) = memory::listener(4);
        let cfg = SessionConfig {
            ping_interval: Duration::ZERO,
            ..SessionConfig::default()
        };
        let router = Arc::new(Router::new());
        let (agent, manager_side) = tokio::join!(
            Session::connect(d.connect().unwrap(), "a1", "s", cfg.clone(), router.clone()),
            async {
                use redpepper_core::transport::Listener;
                let t = l.accept().await.unwrap().await.unwrap();
                Session::accept(t, cfg.clone(), &Any, router.clone())
                    .await
                    .unwrap()
            }
        );
        let _agent = agent.unwrap();
        let tracker = Arc::new(CommandTracker::default());
        let kept = tracker.register("a1", &manager_side);
        for _ in 0..100 {
            drop(tracker.register("a1", &manager_side));
        }
        assert_eq!(tracker.lock().len(), 1);
        assert!(tracker.lock().contains_key(&kept.id));
        drop(kept);
        assert!(tracker.lock().is_empty());
    }
}
