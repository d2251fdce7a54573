//! The manager side: [`AmqpListener`] and the broker link behind it.
//!
//! The link owns one broker connection with three channels: one consuming the hello
//! queue, one consuming this instance's queue, one publishing for every session. A
//! hello (a message on the hello queue with an unknown session id, `reply_to` and
//! `user_id`) creates a session: a table entry and an [`AmqpTransport`] that
//! [`Listener::accept`] hands out, ready at once. Every other delivery goes through the
//! [`Table`].
//!
//! Hellos waiting to be taken by `accept` are bounded by
//! [`AmqpOptions::accept_backlog`] (the manager sets it from
//! `admission.max_pending_amqp`, and bounds the sessions it has taken and is still
//! authenticating by the same number) and by the pending byte budget; a hello beyond
//! either is answered at once with a "busy" `Bye` (see `listener/hello.rs`).
//!
//! When the connection or a channel fails, every session fails at once with an error
//! naming the broker, and the link reconnects with backoff (new instance queue) while
//! the listener keeps accepting; once reconnected it tells the agents of the lost
//! sessions that they ended (see `listener/farewell.rs`). A broker that cannot be reached when the listener is
//! bound is handled the same way: `bind` succeeds, logs an error naming the broker, and
//! the link connects in the background; only refusals that need an operator (login,
//! vhost, permissions, the broker's certificate, another manager on the hello queue)
//! make `bind` fail. Dropping the listener stops new sessions (the hello
//! queue is deleted, so agents' hellos come back at once; a cluster's shared hello
//! queue stays for the other managers: the consumer is cancelled and the hellos
//! already pushed to it are given back; see `listener/stop.rs`); the link stays up
//! for the sessions that remain and closes the connection after the last one.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture};
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use redpepper_core::error::TransportError;
use redpepper_core::transport::{Connecting, Listener, Transport, TransportKind};
use rustls::ClientConfig;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{error, info, warn};

mod farewell;
mod hello;
mod stop;

use super::backoff::Backoff;
use super::broker::{explain, BrokerUrl, ConnectFailure};
use super::budget::{default_pending_budget, default_session_budget, Pool};
use super::nodes::BrokerUrls;
use super::reader::AckBatch;
use super::table::Table;
use super::wire::{queue_name, random_suffix, Envelope};
use super::{check_max_message_size, AmqpOptions, AmqpTransport};
use crate::error::TransportsError;

/// Accepts agent sessions arriving through a broker (manager side).
#[derive(Debug)]
pub struct AmqpListener {
    incoming: mpsc::Receiver<AmqpTransport>,
    describe: String,
    connected: watch::Receiver<bool>,
}

impl AmqpListener {
    /// Connect to the broker, declare the hello queue `queue` (the manager's
    /// `amqp.queue`) and this instance's queue, and start accepting. `tls` is needed
    /// for `amqps://` URLs.
    ///
    /// Fails on what needs an operator: a bad setting, or the broker refusing our
    /// login, the vhost, a queue (permissions, or another manager holding the hello
    /// queue) or its certificate being refused. When the broker merely cannot be
    /// reached (refused, timed out, not ready), logs an error naming it and returns a
    /// listener that connects in the background, with the backoff of reconnections;
    /// once connected, broker outages are handled by reconnecting.
    pub async fn bind(
        urls: impl Into<BrokerUrls>,
        queue: &str,
        tls: Option<Arc<ClientConfig>>,
        max_message_size: usize,
        options: AmqpOptions,
    ) -> Result<Self, TransportsError> {
        let urls: BrokerUrls = urls.into();
        let hello_queue = queue_name("amqp.queue", queue.to_owned())?;
        queue_name("amqp.queue", format!("{queue}.{}", random_suffix()))?;
        if urls.is_tls() && tls.is_none() {
            return Err(TransportsError::setting(
                "amqp.url",
                "amqps:// needs a TLS configuration",
            ));
        }
        check_max_message_size(max_message_size, "amqp listener");
        let describe = format!("{} queue {hello_queue}", urls.describe());
        let (tx, incoming) = mpsc::channel(options.accept_backlog.max(1));
        let (connected_tx, connected) = watch::channel(false);
        let session_budget = options
            .session_budget
            .unwrap_or_else(|| default_session_budget(max_message_size));
        let pool = Pool::new(
            options
                .pending_budget
                .unwrap_or_else(|| default_pending_budget(max_message_size)),
        );
        let link = Link {
            user: ShortString::from(urls.user().to_owned()),
            urls,
            tls,
            hello_queue,
            max: max_message_size,
            session_budget,
            pool: Arc::new(pool),
            options,
            table: Arc::new(Table::default()),
            incoming: tx,
            connected: connected_tx,
        };
        let first = match link.connect(None).await {
            Ok(active) => {
                info!(broker = %active.url, queue = %link.hello_queue, instance = %active.instance, queue_type = link.queue_type(), "AMQP listener ready");
                Some(active)
            }
            Err(f) if f.operator => {
                return Err(TransportsError::Bind {
                    addr: describe,
                    source: io::Error::other(f.error.to_string()),
                });
            }
            Err(f) => {
                error!(broker = %link.urls.describe(), queue = %link.hello_queue, error = %f.error, "cannot reach the AMQP broker: accepting no AMQP sessions until it can be reached; connecting in the background");
                None
            }
        };
        tokio::spawn(link.run(first));
        Ok(Self {
            incoming,
            describe,
            connected,
        })
    }

    /// Whether the listener is connected to the broker now (and so accepting).
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Wait until the listener is connected to the broker (at once if it is).
    pub async fn wait_connected(&self) {
        let mut rx = self.connected.clone();
        // An error means the link is gone: nothing to wait for.
        let _ = rx.wait_for(|up| *up).await;
    }
}

impl Listener for AmqpListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Connecting, TransportError>> {
        Box::pin(async move {
            match self.incoming.recv().await {
                Some(t) => {
                    t.reader.accepted();
                    Ok(future::ready(Ok(t.boxed())).boxed())
                }
                None => Err(TransportError::Closed),
            }
        })
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Amqp
    }

    fn link_state(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        Some(self.connected.clone())
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }
}

/// Why the publishing side asked the link to reconnect.
#[derive(Debug, Default)]
struct Broken {
    reason: Mutex<Option<String>>,
    notify: Notify,
}

/// One live broker connection.
struct Active {
    /// The node it is connected to.
    url: BrokerUrl,
    /// Its index in the link's URLs.
    node: usize,
    conn: Connection,
    hello_channel: Channel,
    publish: Channel,
    instance: ShortString,
    hellos: Consumer,
    deliveries: Consumer,
    broken: Arc<Broken>,
}

/// How serving one connection ended.
enum End {
    /// The listener is gone and so are its sessions.
    Done,
    /// The connection or a channel failed.
    Lost(String),
}

struct Link {
    urls: BrokerUrls,
    tls: Option<Arc<ClientConfig>>,
    user: ShortString,
    hello_queue: ShortString,
    max: usize,
    /// Byte budget of one session's inbox.
    session_budget: usize,
    /// Byte budget of the sessions not yet accepted, together.
    pool: Arc<Pool>,
    options: AmqpOptions,
    table: Arc<Table>,
    incoming: mpsc::Sender<AmqpTransport>,
    connected: watch::Sender<bool>,
}

impl Link {
    /// `quorum` or `classic`: the hello queue's type, for log lines.
    fn queue_type(&self) -> &'static str {
        if self.options.quorum_hello_queue {
            "quorum"
        } else {
            "classic"
        }
    }

    /// Connect to one of the nodes: after `lost` (the node just lost), or from a
    /// random one. The first that connects and sets up the queues wins; when none
    /// does, a refusal that needs an operator is reported before outages.
    async fn connect(&self, lost: Option<usize>) -> Result<Active, ConnectFailure> {
        let mut failures: Vec<ConnectFailure> = Vec::new();
        for node in self.urls.order(lost) {
            let url = &self.urls.urls()[node];
            match self.connect_to(url, node).await {
                Ok(active) => return Ok(active),
                Err(f) => {
                    if self.urls.urls().len() > 1 {
                        warn!(broker = %url, error = %f.error, "cannot use this broker node; trying the next");
                    }
                    failures.push(f);
                }
            }
        }
        if failures.len() <= 1 {
            if let Some(f) = failures.pop() {
                return Err(f);
            }
        }
        let operator = failures.iter().any(|f| f.operator);
        let reasons: Vec<String> = failures.iter().map(|f| f.error.to_string()).collect();
        Err(ConnectFailure {
            error: TransportError::Connect {
                target: self.urls.describe(),
                reason: format!("no broker node usable: {}", reasons.join("; ")),
            },
            operator,
        })
    }

    async fn connect_to(&self, url: &BrokerUrl, node: usize) -> Result<Active, ConnectFailure> {
        let timeout = self.options.connect_timeout;
        let conn = url
            .connect_checked(self.tls.as_ref(), "redpepper-manager".into(), timeout)
            .await?;
        let fail = |reason: String, operator: bool| ConnectFailure {
            error: TransportError::Connect {
                target: url.describe().to_owned(),
                reason,
            },
            operator,
        };
        match tokio::time::timeout(timeout, self.set_up(conn, url, node)).await {
            Ok(Ok(active)) => Ok(active),
            Ok(Err((what, e))) => Err(fail(
                format!("{what}: {}", hint_locked(explain(&e), self.shared())),
                super::broker::needs_operator(&e),
            )),
            Err(_) => Err(fail(
                format!("queues not set up within {:.1}s", timeout.as_secs_f64()),
                false,
            )),
        }
    }

    /// Whether the hello queue is shared with other managers (a cluster's, or any
    /// quorum queue: quorum queues cannot be exclusive).
    fn shared(&self) -> bool {
        self.options.shared_hello_queue || self.options.quorum_hello_queue
    }

    async fn set_up(
        &self,
        conn: Connection,
        url: &BrokerUrl,
        node: usize,
    ) -> Result<Active, (String, lapin::Error)> {
        let step = |what: String| move |e| (what, e);
        let hello_channel = conn
            .create_channel()
            .await
            .map_err(step("opening a channel".into()))?;
        let session_channel = conn
            .create_channel()
            .await
            .map_err(step("opening a channel".into()))?;
        let publish = conn
            .create_channel()
            .await
            .map_err(step("opening a channel".into()))?;
        if self.options.publisher_confirms {
            publish
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(step("enabling publisher confirms".into()))?;
        }
        for ch in [&hello_channel, &session_channel] {
            ch.basic_qos(self.options.prefetch, BasicQosOptions::default())
                .await
                .map_err(step("setting the prefetch window".into()))?;
        }
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        // In a cluster the hello queue is shared by every manager (competing
        // consumers): durable, since non-exclusive transient queues are deprecated.
        // A quorum queue is always shared and durable (it cannot be exclusive).
        let shared = self.shared();
        let hello_queue_options = if shared {
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            }
        } else {
            exclusive
        };
        let instance = ShortString::from(format!("{}.{}", self.hello_queue, random_suffix()));
        let mut hello_args = FieldTable::default();
        if self.options.quorum_hello_queue {
            hello_args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        for (ch, q, opts, args) in [
            (
                &hello_channel,
                &self.hello_queue,
                hello_queue_options,
                hello_args,
            ),
            (
                &session_channel,
                &instance,
                exclusive,
                FieldTable::default(),
            ),
        ] {
            ch.queue_declare(q.clone(), opts, args)
                .await
                .map_err(step(format!("declaring queue {q}")))?;
        }
        let exclusive_consumer = BasicConsumeOptions {
            exclusive: true,
            ..BasicConsumeOptions::default()
        };
        let hello_consumer = BasicConsumeOptions {
            exclusive: !shared,
            ..BasicConsumeOptions::default()
        };
        let hellos = hello_channel
            .basic_consume(
                self.hello_queue.clone(),
                HELLO_CONSUMER.into(),
                hello_consumer,
                FieldTable::default(),
            )
            .await
            .map_err(step(format!("consuming queue {}", self.hello_queue)))?;
        let deliveries = session_channel
            .basic_consume(
                instance.clone(),
                "redpepper-manager-sessions".into(),
                exclusive_consumer,
                FieldTable::default(),
            )
            .await
            .map_err(step(format!("consuming queue {instance}")))?;
        Ok(Active {
            url: url.clone(),
            node,
            conn,
            hello_channel,
            publish,
            instance,
            hellos,
            deliveries,
            broken: Arc::new(Broken::default()),
        })
    }

    async fn run(self, first: Option<Active>) {
        let mut backoff = Backoff::default();
        let mut active = match first {
            Some(active) => active,
            None => match self.reconnect(&mut backoff, None).await {
                Some(active) => active,
                None => return,
            },
        };
        loop {
            self.connected.send_replace(true);
            let reason = match self.serve(&mut active).await {
                End::Done => {
                    close(active, "listener closed").await;
                    return;
                }
                End::Lost(reason) => reason,
            };
            self.connected.send_replace(false);
            let sessions = self.table.len();
            let lost = active.node;
            warn!(broker = %active.url, %reason, sessions, "broker connection lost: failing its sessions and reconnecting");
            let orphans = self.table.fail_all(&format!(
                "broker connection lost ({}): {reason}",
                active.url
            ));
            // Closed explicitly: sessions still hold its publishing channel, and a
            // half-alive connection would keep the exclusive hello queue locked.
            close(active, "reconnecting").await;
            active = match self.reconnect(&mut backoff, Some(lost)).await {
                Some(active) => active,
                None => return,
            };
            self.farewell(&active, orphans);
        }
    }

    /// Connect with backoff (250 ms doubling to 5 s, with jitter) until it works,
    /// each round trying every node, the one just `lost` last; `None` when the
    /// listener is dropped meanwhile.
    async fn reconnect(&self, backoff: &mut Backoff, lost: Option<usize>) -> Option<Active> {
        loop {
            let delay = backoff.next_delay();
            tokio::select! {
                () = self.incoming.closed() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            match self.connect(lost).await {
                Ok(active) => {
                    info!(broker = %active.url, queue = %self.hello_queue, instance = %active.instance, "connected to the broker: AMQP listener ready");
                    backoff.reset();
                    return Some(active);
                }
                Err(f) if f.operator => {
                    error!(error = %f.error, "the broker refuses the AMQP listener (an operator must fix this); retrying")
                }
                Err(f) => warn!(error = %f.error, "cannot connect to the broker yet"),
            }
        }
    }

    async fn serve(&self, active: &mut Active) -> End {
        let every = usize::from(self.options.prefetch / 2).max(1);
        let mut hello_acks = AckBatch::new(every, self.hello_queue.to_string());
        let mut session_acks = AckBatch::new(every, active.instance.to_string());
        let mut accepting = !self.incoming.is_closed();
        loop {
            tokio::select! {
                biased;
                () = active.broken.notify.notified() => {
                    let reason = active.broken.reason.lock().unwrap_or_else(|p| p.into_inner()).take();
                    return End::Lost(reason.unwrap_or_else(|| "publishing channel failed".into()));
                }
                () = self.incoming.closed(), if accepting => {
                    accepting = false;
                    hello_acks.flush();
                    self.stop_accepting(&mut *active).await;
                }
                () = self.table.wait_empty(), if !accepting => return End::Done,
                // Established sessions first, new ones after.
                next = active.deliveries.next() => match next {
                    Some(Ok(mut d)) => {
                        self.on_delivery(&mut d, &active.instance);
                        if session_acks.note(d.acker) {
                            session_acks.flush();
                        }
                    }
                    Some(Err(e)) => return End::Lost(explain(&e)),
                    None => return End::Lost(format!("the broker cancelled our consumer of {}", active.instance)),
                },
                next = active.hellos.next(), if accepting => match next {
                    Some(Ok(mut d)) => {
                        self.on_hello(&mut d, active);
                        if hello_acks.note(d.acker) {
                            hello_acks.flush();
                        }
                    }
                    Some(Err(e)) => return End::Lost(explain(&e)),
                    None => return End::Lost(format!("the broker cancelled our consumer of {}", self.hello_queue)),
                },
                // Nothing else is ready: acknowledge what was handed over.
                () = future::ready(()), if hello_acks.pending() || session_acks.pending() => {
                    hello_acks.flush();
                    session_acks.flush();
                }
            }
        }
    }

    fn on_delivery(&self, d: &mut Delivery, instance: &ShortString) {
        match Envelope::open(&d.properties) {
            Ok(env) => self
                .table
                .deliver(&env, std::mem::take(&mut d.data), self.max),
            Err(why) => {
                if let Some(others) = self.table.noise.not_ours.admit() {
                    warn!(queue = %instance, others_since_last_report = others, "dropping a message that is not ours: {why}");
                }
            }
        }
    }
}

/// Close a connection we are done with (quickly: it may be dead already).
async fn close(active: Active, why: &str) {
    let closing = active.conn.close(200, why.into());
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
}

/// The consumer tag of the hello queue's consumer.
const HELLO_CONSUMER: &str = "redpepper-manager-hellos";

/// RabbitMQ's `RESOURCE_LOCKED` on our exclusive hello queue means another connection
/// holds it: say what that usually is. On the shared hello queue of a cluster it
/// means a lone manager holds it exclusively; `PRECONDITION_FAILED` that it was
/// declared with other flags (a cluster's durable queue met by a lone manager, or the
/// other way round).
fn hint_locked(text: String, shared: bool) -> String {
    if text.contains("PRECONDITION_FAILED") {
        format!(
            "{text} (the queue exists with other flags: managers in a cluster share a \
             durable hello queue, a lone manager holds an exclusive one, and \
             amqp.queue_type quorum and classic differ; do all managers on this \
             amqp.queue have the same `cluster` and amqp.queue_type? A queue's type \
             changes only by deleting it: rabbitmqctl delete_queue)"
        )
    } else if shared && text.contains("RESOURCE_LOCKED") {
        format!(
            "{text} (a manager without `cluster` holds this hello queue exclusively: \
             every manager on this amqp.queue must be in the cluster)"
        )
    } else if text.contains("RESOURCE_LOCKED") {
        format!(
            "{text} (another connection holds this queue: is another manager running on \
             this broker and vhost, or has the broker not yet noticed that the previous \
             one is gone?)"
        )
    } else {
        text
    }
}
