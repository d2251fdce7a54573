//! The AMQP cluster link: [`AmqpClusterLink`], the [`ClusterLink`] between the
//! managers of a cluster, over the same broker connection code as the AMQP transport
//! ([`BrokerUrl`], rustls for `amqps://`).
//!
//! # Topology
//!
//! ```text
//!  node mgr-a ── publish (routing key node.mgr-b | all) ──▶ [<name>.cluster]
//!                                                           (durable direct exchange)
//!                                   node.mgr-a, all ┌─────────┴─────────┐ node.mgr-b, all
//!                                                   ▼                   ▼
//!                                     [<name>.node.mgr-a]       [<name>.node.mgr-b]
//!                                     (exclusive to mgr-a)      (exclusive to mgr-b)
//! ```
//!
//! | what | name | flags |
//! |------|------|-------|
//! | exchange | `<cluster.name>.cluster` | direct, durable |
//! | a node's queue | `<cluster.name>.node.<cluster.node>` | exclusive (gone with the node's connection) |
//! | its bindings | `node.<cluster.node>` and `all` | |
//!
//! A node's queue is exclusive: it disappears the moment the node's broker connection
//! closes, so a message for a node that died comes back at once (`mandatory`) as
//! [`LinkEvent::Returned`], and a second node with the same `cluster.node` is refused
//! (`RESOURCE_LOCKED`): "node name mgr-a is already in use in cluster redpepper".
//! A broadcast reaches every node's queue, ours included; our own copy is dropped.
//!
//! # Messages
//!
//! | AMQP | use |
//! |------|-----|
//! | body | one [`Envelope`](redpepper_cluster::Envelope), at most [`MAX_MESSAGE_SIZE`] |
//! | `user_id` | the login user, validated by RabbitMQ; the receiver drops messages whose `user_id` is absent or not in `cluster.manager_users` (rate-limited warning) |
//! | `correlation_id` | the request's correlation id (`call`, `notify`), so a returned request names it |
//! | `expiration` | [`DEFAULT_MESSAGE_TTL`](super::DEFAULT_MESSAGE_TTL): nothing is delivered after a long outage |
//! | `mandatory` | always: a message for a node without a queue is returned |
//!
//! # Broker permissions (per manager user, in the cluster's vhost)
//!
//! configure `^<name>\.(cluster|node\..+)$`, write `^<name>\.(cluster|node\..+)$`
//! (publishing to the exchange, binding our queue), read
//! `^<name>\.(cluster|node\..+)$` (binding from the exchange, consuming our queue). A
//! broker user that may write to the exchange but is not in `cluster.manager_users`
//! reaches the queues, and every node drops what it sends.
//!
//! # Tasks
//!
//! One driver task per link: it owns the connection, runs the one writer (a bounded
//! queue that [`ClusterLink::send`] fills with `try_send`; batches handed to lapin in
//! order before any is awaited; publisher confirms watched by a second task, which
//! turns returned messages into [`LinkEvent::Returned`]) and the consumer (prefetch
//! window, acknowledgements with `multiple`, checks, then the bounded event channel).
//! When the connection fails it reports [`LinkEvent::Down`], reconnects with backoff
//! over `cluster.url` (starting from a random entry) and reports [`LinkEvent::Up`].
//!
//! # Layout
//!
//! ```text
//! mod.rs        this overview, AmqpClusterLink, LinkOptions
//! topology.rs   names, connecting to one of the URLs, declaring
//! writer.rs     the one writer and its confirm watcher
//! consumer.rs   the consumer: checks, then events
//! driver.rs     the driver task: serve, reconnect, close
//! ```

mod consumer;
mod driver;
mod topology;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use lapin::types::ShortString;
use redpepper_cluster::{ClusterError, ClusterLink, ClusterMessage, LinkEvent, To};
use rustls::ClientConfig;
use tokio::sync::{mpsc, oneshot};

use super::broker::BrokerUrl;
use driver::Driver;
use topology::Names;
use writer::{Out, Outgoing};

pub use redpepper_cluster::MAX_MESSAGE_SIZE;

/// How long [`ClusterLink::close`] waits for `Leaving` to be confirmed.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Tuning of the cluster link. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Messages queued for the writer before `send` fails with
    /// [`ClusterError::Backlog`]. Default 16384.
    pub send_queue: usize,
    /// Events held for the manager before the consumer waits (and the broker holds
    /// the rest, up to the prefetch window). Default 4096.
    pub events: usize,
    /// Unacknowledged deliveries the broker may push. Default 512.
    pub prefetch: u16,
    /// Limit for connecting and declaring, per URL.
    /// Default [`DEFAULT_CONNECT_TIMEOUT`](super::DEFAULT_CONNECT_TIMEOUT).
    pub connect_timeout: Duration,
    /// `expiration` of every message. Default
    /// [`DEFAULT_MESSAGE_TTL`](super::DEFAULT_MESSAGE_TTL).
    pub message_ttl: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            send_queue: 16_384,
            events: 4096,
            prefetch: 512,
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
            message_ttl: super::DEFAULT_MESSAGE_TTL,
        }
    }
}

/// What a cluster link connects to and as whom.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// `cluster.url`, parsed; tried in turn from a random one.
    pub urls: Vec<BrokerUrl>,
    /// TLS for `amqps://` URLs (verifies the broker).
    pub tls: Option<Arc<ClientConfig>>,
    /// `cluster.name`.
    pub cluster: String,
    /// `cluster.node`.
    pub node: String,
    /// `cluster.manager_users`.
    pub manager_users: Vec<String>,
    /// Tuning.
    pub options: LinkOptions,
}

/// What the driver and the link share.
#[derive(Debug)]
pub(crate) struct State {
    up: AtomicBool,
    closed: AtomicBool,
    /// The broker we are (or were last) connected to, without password.
    broker: Mutex<String>,
    /// Why the link is down.
    down_reason: Mutex<String>,
}

impl State {
    fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_up(&self, broker: &str) {
        *Self::lock(&self.broker) = broker.to_owned();
        self.up.store(true, Ordering::Release);
    }

    pub(crate) fn set_down(&self, reason: &str) {
        *Self::lock(&self.down_reason) = reason.to_owned();
        self.up.store(false, Ordering::Release);
    }
}

/// A node's link to the other managers of its cluster, through RabbitMQ.
pub struct AmqpClusterLink {
    node: String,
    all: ShortString,
    tx: mpsc::Sender<Out>,
    send_queue: usize,
    events_tx: mpsc::Sender<LinkEvent>,
    events: Mutex<Option<mpsc::Receiver<LinkEvent>>>,
    state: Arc<State>,
}

impl std::fmt::Debug for AmqpClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpClusterLink")
            .field("node", &self.node)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AmqpClusterLink {
    /// Connect to one of `settings.urls` (from a random one, then the others),
    /// declare the exchange, this node's queue and its bindings, and start the link.
    /// Fails, naming the URL(s) without password and why, when no URL works or at
    /// once when this node's name is in use in the cluster.
    pub async fn connect(settings: LinkSettings) -> Result<Arc<Self>, ClusterError> {
        let names = Names::new(&settings.cluster, &settings.node)?;
        let (tx, rx) = mpsc::channel(settings.options.send_queue.max(1));
        let (events_tx, events_rx) = mpsc::channel(settings.options.events.max(1));
        let state = Arc::new(State {
            up: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            broker: Mutex::new(String::new()),
            down_reason: Mutex::new("not connected yet".into()),
        });
        let driver = Driver::new(settings.clone(), names.clone(), events_tx.clone(), &state);
        let first = driver.connect_first().await?;
        state.set_up(first.url.describe());
        tokio::spawn(driver.run(first, rx));
        Ok(Arc::new(Self {
            node: settings.node,
            all: names.all,
            tx,
            send_queue: settings.options.send_queue.max(1),
            events_tx,
            events: Mutex::new(Some(events_rx)),
            state,
        }))
    }
}

impl ClusterLink for AmqpClusterLink {
    fn node(&self) -> &str {
        &self.node
    }

    fn send(&self, to: To<'_>, message: &ClusterMessage) -> Result<(), ClusterError> {
        if self.state.closed.load(Ordering::Acquire) {
            return Err(ClusterError::LinkDown("the link is closed".into()));
        }
        if !self.state.up.load(Ordering::Acquire) {
            let reason = State::lock(&self.state.down_reason).clone();
            return Err(ClusterError::LinkDown(reason));
        }
        let body = message.encode(&self.node)?;
        let key = match to {
            To::All => self.all.clone(),
            To::Node(node) => match topology::node_key(node) {
                Some(key) => key,
                None => {
                    // No node can have that name (no queue could): undeliverable.
                    let _ = self.events_tx.try_send(LinkEvent::Returned {
                        node: node.to_owned(),
                        corr: message.request_corr(),
                    });
                    return Ok(());
                }
            },
        };
        let out = Out::Message(Outgoing {
            key,
            corr: message.request_corr(),
            body,
        });
        self.tx.try_send(out).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ClusterError::Backlog(self.send_queue),
            mpsc::error::TrySendError::Closed(_) => {
                ClusterError::LinkDown("the link's writer has stopped".into())
            }
        })
    }

    fn take_events(&self) -> Option<mpsc::Receiver<LinkEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn is_up(&self) -> bool {
        self.state.up.load(Ordering::Acquire) && !self.state.closed.load(Ordering::Acquire)
    }

    fn describe(&self) -> String {
        format!("{}, node {}", State::lock(&self.state.broker), self.node)
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let _ = self.send(To::All, &ClusterMessage::Leaving);
        self.state.closed.store(true, Ordering::Release);
        let tx = self.tx.clone();
        async move {
            let (done, closed) = oneshot::channel();
            let _ = tokio::time::timeout(CLOSE_WAIT, async move {
                if tx.send(Out::Close(done)).await.is_ok() {
                    let _ = closed.await;
                }
            })
            .await;
        }
        .boxed()
    }
}
