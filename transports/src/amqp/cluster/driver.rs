//! The link's driver task: serve one connection (writer, confirm watcher, consumer),
//! and when it fails report [`LinkEvent::Down`], reconnect with backoff over the URLs
//! and report [`LinkEvent::Up`]; close on request or when the link is dropped.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::types::ShortString;
use redpepper_cluster::{ClusterError, LinkEvent};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::super::backoff::Backoff;
use super::super::ttl_millis;
use super::consumer::{consume, Checks, Noise};
use super::topology::{open, order, Active, Names, OpenError};
use super::writer::{watch_confirms, write, Out, Stamp, WriterEnd};
use super::{LinkSettings, State};

/// Publish batches whose confirms may be outstanding before the writer waits.
const CONFIRM_BATCHES: usize = 256;

/// How serving one connection ended.
enum End {
    /// Lost; reconnect.
    Lost(String),
    /// Closed on request or because the link was dropped: stop.
    Stop(Option<tokio::sync::oneshot::Sender<()>>),
}

pub(crate) struct Driver {
    settings: LinkSettings,
    names: Names,
    events: mpsc::Sender<LinkEvent>,
    state: Arc<State>,
    noise: Noise,
}

impl Driver {
    pub(crate) fn new(
        settings: LinkSettings,
        names: Names,
        events: mpsc::Sender<LinkEvent>,
        state: &Arc<State>,
    ) -> Driver {
        Driver {
            settings,
            names,
            events,
            state: Arc::clone(state),
            noise: Noise::default(),
        }
    }

    /// Try every URL once, from a random one. Stops at once when the node name is in
    /// use (every broker of the cluster would say the same).
    pub(crate) async fn connect_first(&self) -> Result<Active, ClusterError> {
        let mut failures = Vec::new();
        for i in order(self.settings.urls.len(), None) {
            let url = &self.settings.urls[i];
            match self.open(url).await {
                Ok(active) => {
                    info!(broker = %url, node = %self.names.node, cluster = %self.names.cluster, "cluster link up");
                    return Ok(active);
                }
                Err(OpenError::NodeInUse(reason)) => {
                    return Err(ClusterError::Broker {
                        url: url.describe().to_owned(),
                        reason,
                    })
                }
                Err(e) => {
                    warn!(broker = %url, error = %e.reason(), "cannot join the cluster through this broker");
                    failures.push((url.describe().to_owned(), e.reason().to_owned()));
                }
            }
        }
        Err(match failures.len() {
            0 => ClusterError::Broker {
                url: "-".into(),
                reason: "cluster.url names no broker".into(),
            },
            1 => {
                let (url, reason) = failures.swap_remove(0);
                ClusterError::Broker { url, reason }
            }
            n => ClusterError::Broker {
                url: format!("{n} URLs"),
                reason: failures
                    .iter()
                    .map(|(u, r)| format!("{u}: {r}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        })
    }

    async fn open(&self, url: &super::BrokerUrl) -> Result<Active, OpenError> {
        open(
            url,
            self.settings.tls.as_ref(),
            &self.names,
            self.settings.options.prefetch,
            self.settings.options.connect_timeout,
        )
        .await
    }

    pub(crate) async fn run(self, first: Active, mut rx: mpsc::Receiver<Out>) {
        let mut active = first;
        let _ = self.events.send(LinkEvent::Up).await;
        loop {
            let reason = match self.serve(&mut active, &mut rx).await {
                End::Stop(done) => {
                    self.state.set_down("the link is closed");
                    close(&active, "leaving the cluster").await;
                    info!(broker = %active.url, node = %self.names.node, "left the cluster");
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                End::Lost(reason) => reason,
            };
            let reason = format!("broker connection lost ({}): {reason}", active.url);
            self.state.set_down(&reason);
            warn!(node = %self.names.node, %reason, "cluster link down; reconnecting");
            let _ = self.events.send(LinkEvent::Down(reason)).await;
            close(&active, "reconnecting").await;
            let lost = self
                .settings
                .urls
                .iter()
                .position(|u| u.describe() == active.url.describe());
            active = match self.reconnect(&mut rx, lost).await {
                Some(active) => active,
                None => return,
            };
            self.state.set_up(active.url.describe());
            info!(broker = %active.url, node = %self.names.node, "cluster link up again");
            let _ = self.events.send(LinkEvent::Up).await;
        }
    }

    async fn serve(&self, active: &mut Active, rx: &mut mpsc::Receiver<Out>) -> End {
        let stamp = Stamp {
            node: self.names.node.clone(),
            exchange: self.names.exchange.clone(),
            user: match ShortString::try_new(active.url.user().to_owned()) {
                Ok(user) => user,
                Err(_) => return End::Lost("the broker user name is too long".into()),
            },
            ttl: ttl_millis(self.settings.options.message_ttl).into(),
        };
        let (confirms, confirms_rx) = mpsc::channel(CONFIRM_BATCHES);
        tokio::spawn(watch_confirms(confirms_rx, self.events.clone()));
        let checks = Checks {
            node: &self.names.node,
            queue: &self.names.queue,
            manager_users: &self.settings.manager_users,
            noise: &self.noise,
        };
        let mut conn_events = active.conn.events_listener();
        let failed = async {
            while let Some(event) = conn_events.next().await {
                if let lapin::Event::Error(e) = event {
                    return super::super::broker::explain(&e);
                }
            }
            std::future::pending().await
        };
        let writing = write(&active.publish, &stamp, rx, &confirms, &self.events);
        let consuming = consume(
            &mut active.consumer,
            &checks,
            self.settings.options.prefetch,
            &self.events,
        );
        tokio::select! {
            end = writing => match end {
                WriterEnd::Lost(reason) => End::Lost(reason),
                WriterEnd::Close(done) => End::Stop(Some(done)),
                WriterEnd::Dropped => End::Stop(None),
            },
            reason = consuming => End::Lost(reason),
            reason = failed => End::Lost(reason),
        }
    }

    /// Connect with backoff over the URLs until it works, each round from a random one
    /// with `lost` (the node just lost) last; `None` when the link is closed or dropped
    /// meanwhile. What is queued meanwhile is dropped: `send` already refuses while the
    /// link is down.
    async fn reconnect(&self, rx: &mut mpsc::Receiver<Out>, lost: Option<usize>) -> Option<Active> {
        let mut backoff = Backoff::default();
        loop {
            let sleep = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    out = rx.recv() => match out {
                        None => return None,
                        Some(Out::Close(done)) => {
                            let _ = done.send(());
                            return None;
                        }
                        Some(Out::Message(_)) => {}
                    },
                }
            }
            for i in order(self.settings.urls.len(), lost) {
                let url = &self.settings.urls[i];
                match self.open(url).await {
                    Ok(active) => return Some(active),
                    Err(e @ (OpenError::NodeInUse(_) | OpenError::Refused(_))) => {
                        error!(broker = %url, error = %e.reason(), "the broker refuses the cluster link (an operator must fix this); retrying")
                    }
                    Err(e) => {
                        warn!(broker = %url, error = %e.reason(), "cannot reach the cluster's broker yet")
                    }
                }
            }
        }
    }
}

/// Close a connection we are done with (quickly: it may be dead already).
async fn close(active: &Active, why: &str) {
    let closing = active.conn.close(200, why.into());
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
}
