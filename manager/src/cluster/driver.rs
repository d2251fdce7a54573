//! The task that keeps a node in its cluster: reads the link's events, sends
//! heartbeats, counts silent nodes dead, and serves the requests other nodes forward
//! here (spawned, bounded in number).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use redpepper_cluster::{
    ClusterLink, ClusterMessage, Envelope, LinkEvent, RemoteError, RemoteErrorKind, To,
};
use redpepper_core::quiet::LogLimit;
use redpepper_core::{Notification, Value};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::directory::{Change, Outcome};
use super::pending::Answer;
use super::routing::{remote_event, reply_error};
use super::{micros, Cluster, ClusterSettings};
use crate::error::ManagerError;
use crate::server::{Inner, ManagerEvent};

/// "Forwarded requests over the bound" lines: one per 10 s.
static BUSY: LogLimit = LogLimit::new(Duration::from_secs(10), 1);
/// "Unknown message kind" lines: one per minute.
static UNKNOWN: LogLimit = LogLimit::new(Duration::from_secs(60), 1);

use std::time::Duration;

/// Join the cluster over `link`: announce this node's agents, start the driver.
pub(crate) fn start(
    inner: &Arc<Inner>,
    link: Arc<dyn ClusterLink>,
    settings: ClusterSettings,
) -> Result<(), ManagerError> {
    let Some(events) = link.take_events() else {
        return Err(ManagerError::Cluster(format!(
            "the link {} is already in use",
            link.describe()
        )));
    };
    let cluster = Arc::new(Cluster::new(link, settings, inner.watchers.clone()));
    if inner.cluster.set(cluster.clone()).is_err() {
        return Err(ManagerError::Cluster(
            "this manager already joined a cluster".to_owned(),
        ));
    }
    inner.commands.set_tag(&cluster.tag);
    for (id, session) in inner.agents.sessions() {
        cluster.local_up(&id, &session);
    }
    tracing::info!(node = %cluster.node, link = %cluster.link.describe(), "joined the cluster");
    cluster.heartbeat();
    let weak = Arc::downgrade(inner);
    let shutdown = inner.shutdown.clone();
    inner.tasks.spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = drive(weak, cluster, events) => {}
        }
    });
    Ok(())
}

async fn drive(inner: Weak<Inner>, cluster: Arc<Cluster>, mut events: mpsc::Receiver<LinkEvent>) {
    let mut tick = tokio::time::interval(cluster.settings.heartbeat);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    tracing::warn!(node = %cluster.node, "the cluster link ended");
                    cluster.note_down("the link ended");
                    return;
                };
                let Some(inner) = inner.upgrade() else { return };
                handle(&inner, &cluster, event);
            }
            _ = tick.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                cluster.heartbeat();
                check_nodes(&inner, &cluster);
            }
        }
    }
}

/// Silent nodes become dead; long-dead ones are forgotten.
fn check_nodes(inner: &Arc<Inner>, cluster: &Cluster) {
    let s = &cluster.settings;
    let dead = cluster.nodes().expired(
        Instant::now(),
        s.dead_after.max(1),
        s.dead_timeout(),
        s.forget_after,
    );
    for node in dead {
        tracing::warn!(%node, silent_for_heartbeats = s.dead_after, "cluster node silent: counted dead, its agents leave the directory");
        node_gone(inner, cluster, &node, "node stopped sending heartbeats");
    }
}

fn node_gone(inner: &Arc<Inner>, cluster: &Cluster, node: &str, reason: &str) {
    let changes = cluster.nodes().mark_dead(node, reason, Instant::now());
    cluster
        .pending
        .fail_node(node, |node, agent| ManagerError::NodeGone {
            node: node.to_owned(),
            agent: agent.to_owned(),
        });
    apply(inner, cluster, changes);
    refresh_watching(cluster);
}

fn refresh_watching(cluster: &Cluster) {
    let any = cluster.nodes().watching().next().is_some();
    cluster.remote_watching.store(any, Ordering::Release);
}

fn handle(inner: &Arc<Inner>, cluster: &Cluster, event: LinkEvent) {
    match event {
        LinkEvent::Message(envelope) => on_message(inner, cluster, envelope),
        LinkEvent::Returned { node, corr } => match corr {
            Some(corr) => cluster
                .pending
                .fail(corr, |node, agent| ManagerError::NodeGone {
                    node: node.to_owned(),
                    agent: agent.to_owned(),
                }),
            None => tracing::debug!(%node, "cluster message to a node that is not listening"),
        },
        LinkEvent::Up => {
            cluster.note_up();
            // Others may have missed our changes while it was down: our heartbeat's
            // generation tells them.
            cluster.heartbeat();
        }
        LinkEvent::Down(reason) => cluster.note_down(&reason),
        _ => {}
    }
}

fn on_message(inner: &Arc<Inner>, cluster: &Cluster, Envelope { from, message }: Envelope) {
    if from == cluster.node {
        return;
    }
    let now = Instant::now();
    let patience = cluster.settings.dead_timeout();
    let outcome = match message {
        ClusterMessage::Heartbeat(hb) => {
            let out = cluster.nodes().on_heartbeat(&from, &hb, now, patience);
            refresh_watching(cluster);
            out
        }
        ClusterMessage::AgentUp { gen, agent } => cluster
            .nodes()
            .on_agent_up(&from, gen, &agent, now, patience),
        ClusterMessage::AgentDown {
            gen,
            id,
            since_us,
            reason,
        } => cluster
            .nodes()
            .on_agent_down(&from, gen, (&id, since_us, &reason), now, patience),
        ClusterMessage::Directory {
            gen,
            first,
            last,
            agents,
        } => Outcome {
            changes: cluster
                .nodes()
                .on_directory(&from, gen, (first, last), &agents, now),
            request_directory: false,
        },
        ClusterMessage::DirectoryRequest => {
            cluster.answer_directory(&from);
            Outcome::default()
        }
        ClusterMessage::Leaving => {
            tracing::info!(node = %from, "cluster node left");
            node_gone(inner, cluster, &from, "node left the cluster");
            Outcome::default()
        }
        ClusterMessage::Call {
            corr,
            agent,
            method,
            args,
            kwargs,
            timeout_ms,
        } => {
            let from_node = from.clone();
            serve(inner, cluster, from, corr, agent, move |session| {
                Box::pin(async move {
                    // Another node's `Manager::disconnect`: ours to do, not the agent's.
                    if method == crate::revoke::DISCONNECT_METHOD {
                        tracing::info!(node = %from_node, "disconnecting agent (operator request through the cluster)");
                        session.close(crate::revoke::DISCONNECTED).await;
                        return Ok(Value::Nil);
                    }
                    let timeout = Duration::from_millis(timeout_ms.max(1));
                    session
                        .call_with_timeout(&method, args, kwargs, timeout)
                        .await
                })
            });
            return;
        }
        ClusterMessage::Notify {
            corr,
            agent,
            kind,
            data,
        } => {
            serve(inner, cluster, from, corr, agent, move |session| {
                Box::pin(async move { session.notify(&kind, data).await.map(|()| Value::Nil) })
            });
            return;
        }
        ClusterMessage::Reply { corr, outcome } => {
            cluster
                .pending
                .complete(&from, corr, Answer::Reply(outcome));
            return;
        }
        ClusterMessage::CommandUpdate { agent, kind, data } => {
            let n = Notification { r#type: kind, data };
            inner.commands.on_notification(&agent, &n);
            return;
        }
        ClusterMessage::Event(e) => {
            if let Some(event) = remote_event(e) {
                let _ = inner.events.send(ManagerEvent::Remote {
                    node: from,
                    event: Box::new(event),
                });
            }
            return;
        }
        other => {
            if let Some(others) = UNKNOWN.admit() {
                tracing::debug!(node = %from, kind = other.kind(), others_since_last_report = others, "cluster message of a kind this version does not know, ignored");
            }
            return;
        }
    };
    if outcome.request_directory {
        cluster.send(To::Node(&from), &ClusterMessage::DirectoryRequest);
    }
    apply(inner, cluster, outcome.changes);
}

/// Act on directory changes: events, commands whose agent left, one session per agent
/// id cluster-wide.
fn apply(inner: &Arc<Inner>, cluster: &Cluster, changes: Vec<Change>) {
    for change in changes {
        match change {
            Change::Up {
                node,
                id,
                since_us,
                peer,
            } => {
                if let Some(session) = inner.agents.get(&id) {
                    let ours = (micros(session.established_at()), cluster.node.as_str());
                    if (since_us, node.as_str()) > ours {
                        let reason = format!("replaced by a new connection on node {node}");
                        tracing::info!(agent = %id, %node, "agent connected to another node: closing its older session here");
                        tokio::spawn(async move {
                            session.close(&reason).await;
                        });
                    }
                }
                let _ = inner.events.send(ManagerEvent::Remote {
                    node,
                    event: Box::new(ManagerEvent::Connected { agent: id, peer }),
                });
            }
            Change::Down { node, id, reason } => {
                inner.commands.agent_left(&id, &node, &reason);
                let _ = inner.events.send(ManagerEvent::Remote {
                    node,
                    event: Box::new(ManagerEvent::Disconnected { agent: id, reason }),
                });
            }
        }
    }
}

type Served = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Value, redpepper_core::CallError>> + Send>,
>;

/// Serve a request `from` forwarded for local agent `agent`, in a task of its own;
/// over [`super::MAX_SERVING`] at once, it is answered with an error at once.
fn serve(
    inner: &Arc<Inner>,
    cluster: &Cluster,
    from: String,
    corr: u64,
    agent: String,
    work: impl FnOnce(redpepper_core::Session) -> Served + Send + 'static,
) {
    let reply = |outcome| ClusterMessage::Reply { corr, outcome };
    let Ok(permit) = cluster.serving.clone().try_acquire_owned() else {
        if let Some(others) = BUSY.admit() {
            tracing::warn!(node = %from, max = super::MAX_SERVING, others_since_last_report = others, "too many forwarded requests at once: refused");
        }
        let text = format!(
            "node {} is busy: {} forwarded requests already running",
            cluster.node,
            super::MAX_SERVING
        );
        cluster.send(
            To::Node(&from),
            &reply(Err(RemoteError {
                kind: RemoteErrorKind::Failed,
                text,
            })),
        );
        return;
    };
    let Some(session) = inner.agents.get(&agent) else {
        let text = format!("agent {agent} is not connected to node {}", cluster.node);
        cluster.send(
            To::Node(&from),
            &reply(Err(RemoteError {
                kind: RemoteErrorKind::NotConnected,
                text,
            })),
        );
        return;
    };
    let Some(cluster) = inner.cluster.get().cloned() else {
        return;
    };
    inner.tasks.spawn(async move {
        let outcome = work(session).await.map_err(|e| reply_error(&e));
        cluster.send(To::Node(&from), &ClusterMessage::Reply { corr, outcome });
        drop(permit);
    });
}
