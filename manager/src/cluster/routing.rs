//! What leaves this node for another: calls and notifications forwarded to the node
//! holding an agent, command updates for the node that started the command, events for
//! nodes watching them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redpepper_cluster::{ClusterMessage, RemoteError, RemoteErrorKind, RemoteEvent, To};
use redpepper_core::{CallError, Kwargs, Notification, Value};

use super::pending::Answer;
use super::Cluster;
use crate::error::ManagerError;
use crate::server::ManagerEvent;

/// How long a forwarded notification waits for the other node's word.
const NOTIFY_WAIT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Call `method` on `agent`, a session of `node`.
    pub(crate) async fn forward_call(
        &self,
        node: &str,
        agent: &str,
        (method, args, kwargs): (&str, Vec<Value>, Kwargs),
        timeout: Duration,
    ) -> Result<Value, ManagerError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let answer = self
            .forward(node, agent, timeout + self.settings.heartbeat, |corr| {
                ClusterMessage::Call {
                    corr,
                    agent: agent.to_owned(),
                    method: method.to_owned(),
                    args,
                    kwargs,
                    timeout_ms,
                }
            })
            .await;
        let timed_out = || ManagerError::Call {
            agent: agent.to_owned(),
            source: CallError::Timeout {
                method: method.to_owned(),
                secs: timeout.as_secs_f64(),
            },
        };
        match answer {
            Ok(Answer::Reply(Ok(v))) => Ok(v),
            Ok(Answer::Reply(Err(e))) if e.kind == RemoteErrorKind::Timeout => Err(timed_out()),
            Ok(Answer::Reply(Err(e))) => Err(remote_error(node, agent, e)),
            Ok(Answer::Failed(e)) => Err(e),
            Err(Some(e)) => Err(e),
            Err(None) => Err(timed_out()),
        }
    }

    /// Send notification `kind` to `agent`, a session of `node`.
    pub(crate) async fn forward_notify(
        &self,
        node: &str,
        agent: &str,
        kind: &str,
        data: Value,
    ) -> Result<(), ManagerError> {
        let wait = NOTIFY_WAIT.max(self.settings.dead_timeout());
        let answer = self
            .forward(node, agent, wait, |corr| ClusterMessage::Notify {
                corr,
                agent: agent.to_owned(),
                kind: kind.to_owned(),
                data,
            })
            .await;
        match answer {
            Ok(Answer::Reply(Ok(_))) => Ok(()),
            Ok(Answer::Reply(Err(e))) => Err(remote_error(node, agent, e)),
            Ok(Answer::Failed(e)) | Err(Some(e)) => Err(e),
            Err(None) => Err(ManagerError::Forwarded {
                node: node.to_owned(),
                agent: agent.to_owned(),
                reason: format!("no answer within {}s", wait.as_secs_f64()),
            }),
        }
    }

    /// Send the request `build(corr)` to `node` and wait up to `wait` for its answer
    /// (`Err(None)`: no answer in time).
    async fn forward(
        &self,
        node: &str,
        agent: &str,
        wait: Duration,
        build: impl FnOnce(u64) -> ClusterMessage,
    ) -> Result<Answer, Option<ManagerError>> {
        if self.link_down.load(Ordering::Acquire) || !self.link.is_up() {
            return Err(Some(ManagerError::ClusterDown(self.link.describe())));
        }
        let mut ticket = self.pending.insert(node, agent).map_err(Some)?;
        let message = build(ticket.corr);
        if let Err(e) = self.link.send(To::Node(node), &message) {
            return Err(Some(match e {
                redpepper_cluster::ClusterError::LinkDown(reason) => {
                    self.note_down(&reason);
                    ManagerError::ClusterDown(reason)
                }
                e => ManagerError::Forwarded {
                    node: node.to_owned(),
                    agent: agent.to_owned(),
                    reason: e.to_string(),
                },
            }));
        }
        match tokio::time::timeout(wait, &mut ticket.rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(Some(ManagerError::ClusterDown("shutting down".to_owned()))),
            Err(_) => Err(None),
        }
    }

    /// A `command_progress` / `command_result` from local agent `agent` for a command
    /// another live node started: sent there. False when it is not one (the local
    /// tracker takes it).
    pub(crate) fn route_command_update(&self, agent: &str, n: &Notification) -> bool {
        let key = match n.r#type.as_str() {
            "command_progress" => "command_id",
            "command_result" => "id",
            _ => return false,
        };
        let Some(id) = n.data.as_map().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .and_then(|(_, v)| v.as_str())
        }) else {
            return false;
        };
        let Some(tag) = id.get(..8) else { return false };
        if tag == self.tag {
            return false;
        }
        let Some(node) = self.nodes().by_tag(tag).map(str::to_owned) else {
            return false;
        };
        let message = ClusterMessage::CommandUpdate {
            agent: agent.to_owned(),
            kind: n.r#type.clone(),
            data: n.data.clone(),
        };
        self.send(To::Node(&node), &message);
        true
    }

    /// Whether some other node watches events (cheap; checked before building one).
    pub(crate) fn events_wanted(&self) -> bool {
        self.remote_watching.load(Ordering::Acquire)
    }

    /// Send a local event to the nodes watching events.
    pub(crate) fn local_event(&self, event: &ManagerEvent) {
        if !self.events_wanted() {
            return;
        }
        let remote = match event {
            ManagerEvent::Accepted { peer } => RemoteEvent {
                kind: "accepted".to_owned(),
                agent: None,
                peer: Some(peer.clone()),
                notification_type: None,
                data: None,
            },
            ManagerEvent::AuthFailed { agent, peer } => RemoteEvent {
                kind: "auth_failed".to_owned(),
                agent: Some(agent.clone()),
                peer: Some(peer.clone()),
                notification_type: None,
                data: None,
            },
            ManagerEvent::Notification {
                agent,
                notification,
            } => RemoteEvent {
                kind: "notification".to_owned(),
                agent: Some(agent.clone()),
                peer: None,
                notification_type: Some(notification.r#type.clone()),
                data: Some(notification.data.clone()),
            },
            _ => return,
        };
        let watching: Vec<String> = self.nodes().watching().map(str::to_owned).collect();
        let message = ClusterMessage::Event(remote);
        for node in watching {
            self.send(To::Node(&node), &message);
        }
    }
}

/// The event another node sent, as this node's [`ManagerEvent`] (`None`: a kind this
/// build does not know).
pub(crate) fn remote_event(e: RemoteEvent) -> Option<ManagerEvent> {
    Some(match e.kind.as_str() {
        "accepted" => ManagerEvent::Accepted {
            peer: e.peer.unwrap_or_default(),
        },
        "auth_failed" => ManagerEvent::AuthFailed {
            agent: e.agent.unwrap_or_default(),
            peer: e.peer.unwrap_or_default(),
        },
        "notification" => ManagerEvent::Notification {
            agent: e.agent.unwrap_or_default(),
            notification: Notification {
                r#type: e.notification_type.unwrap_or_default(),
                data: e.data.unwrap_or(Value::Nil),
            },
        },
        _ => return None,
    })
}

/// A failure reported by the node holding the agent, as a [`ManagerError`] like the
/// local one.
fn remote_error(node: &str, agent: &str, e: RemoteError) -> ManagerError {
    match e.kind {
        RemoteErrorKind::NotConnected => ManagerError::NotConnected(agent.to_owned()),
        RemoteErrorKind::Remote => ManagerError::Call {
            agent: agent.to_owned(),
            source: CallError::Remote(e.text),
        },
        RemoteErrorKind::Timeout | RemoteErrorKind::Failed => ManagerError::Forwarded {
            node: node.to_owned(),
            agent: agent.to_owned(),
            reason: e.text,
        },
    }
}

/// A local call's failure as the reply to the node that forwarded it.
pub(crate) fn reply_error(e: &CallError) -> RemoteError {
    let kind = match e {
        CallError::Remote(_) => RemoteErrorKind::Remote,
        CallError::Timeout { .. } => RemoteErrorKind::Timeout,
        _ => RemoteErrorKind::Failed,
    };
    let text = match e {
        CallError::Remote(t) => t.clone(),
        e => e.to_string(),
    };
    RemoteError { kind, text }
}
