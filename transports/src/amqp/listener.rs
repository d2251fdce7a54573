//! The manager side: [`AmqpListener`] and the broker link behind it.
//!
//! The link owns one broker connection with three channels: one consuming the hello
//! queue, one consuming this instance's queue, one publishing for every session. A
//! hello (a message on the hello queue with an unknown session id, `reply_to` and
//! `user_id`) creates a session: a table entry and an [`AmqpTransport`] that
//! [`Listener::accept`] hands out, ready at once. Every other delivery goes through the
//! [`Table`].
//!
//! When the connection or a channel fails, every session fails at once with an error
//! naming the broker, and the link reconnects with backoff (new instance queue) while
//! the listener keeps accepting. Dropping the listener stops new sessions (the hello
//! queue is deleted, so agents' hellos come back at once); the link stays up for the
//! sessions that remain and closes the connection after the last one.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture};
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use redpepper_core::error::TransportError;
use redpepper_core::transport::{BoxTransport, Connecting, Listener, TransportKind};
use rustls::ClientConfig;
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

mod hello;

use super::broker::{explain, BrokerUrl};
use super::reader::AckBatch;
use super::table::Table;
use super::wire::{queue_name, random_suffix, Envelope};
use super::{check_max_message_size, AmqpOptions};
use crate::error::TransportsError;

/// Sessions accepted from the broker but not yet taken by `accept`.
const ACCEPT_BACKLOG: usize = 1024;
/// First reconnection delay; doubles up to [`RECONNECT_MAX`] (with jitter).
const RECONNECT_BASE: Duration = Duration::from_millis(250);
/// Longest reconnection delay.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Accepts agent sessions arriving through a broker (manager side).
#[derive(Debug)]
pub struct AmqpListener {
    incoming: mpsc::Receiver<BoxTransport>,
    describe: String,
}

impl AmqpListener {
    /// Connect to the broker, declare the hello queue `queue` (the manager's
    /// `amqp.queue`) and this instance's queue, and start accepting. `tls` is needed
    /// for `amqps://` URLs. Fails when the broker cannot be reached or refuses us;
    /// once bound, broker outages are handled by reconnecting.
    pub async fn bind(
        url: BrokerUrl,
        queue: &str,
        tls: Option<Arc<ClientConfig>>,
        max_message_size: usize,
        options: AmqpOptions,
    ) -> Result<Self, TransportsError> {
        let hello_queue = queue_name("amqp.queue", queue.to_owned())?;
        queue_name("amqp.queue", format!("{queue}.{}", random_suffix()))?;
        if url.is_tls() && tls.is_none() {
            return Err(TransportsError::setting(
                "amqp.url",
                "amqps:// needs a TLS configuration",
            ));
        }
        check_max_message_size(max_message_size, "amqp listener");
        let describe = format!("{} queue {hello_queue}", url.describe());
        let (tx, incoming) = mpsc::channel(ACCEPT_BACKLOG);
        let link = Link {
            user: ShortString::from(url.user().to_owned()),
            url,
            tls,
            hello_queue,
            max: max_message_size,
            options,
            table: Arc::new(Table::default()),
            incoming: tx,
        };
        let active = link.connect().await.map_err(|e| TransportsError::Bind {
            addr: describe.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        info!(broker = %link.url, queue = %link.hello_queue, instance = %active.instance, "AMQP listener ready");
        tokio::spawn(link.run(active));
        Ok(Self { incoming, describe })
    }
}

impl Listener for AmqpListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Connecting, TransportError>> {
        Box::pin(async move {
            match self.incoming.recv().await {
                Some(t) => Ok(future::ready(Ok(t)).boxed()),
                None => Err(TransportError::Closed),
            }
        })
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Amqp
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
    url: BrokerUrl,
    tls: Option<Arc<ClientConfig>>,
    user: ShortString,
    hello_queue: ShortString,
    max: usize,
    options: AmqpOptions,
    table: Arc<Table>,
    incoming: mpsc::Sender<BoxTransport>,
}

impl Link {
    async fn connect(&self) -> Result<Active, TransportError> {
        let timeout = self.options.connect_timeout;
        let conn = self
            .url
            .connect(self.tls.as_ref(), "redpepper-manager".into(), timeout)
            .await?;
        match tokio::time::timeout(timeout, self.set_up(conn)).await {
            Ok(Ok(active)) => Ok(active),
            Ok(Err((what, e))) => Err(TransportError::Connect {
                target: self.url.describe().to_owned(),
                reason: format!("{what}: {}", hint_locked(explain(&e))),
            }),
            Err(_) => Err(TransportError::Connect {
                target: self.url.describe().to_owned(),
                reason: format!("queues not set up within {:.1}s", timeout.as_secs_f64()),
            }),
        }
    }

    async fn set_up(&self, conn: Connection) -> Result<Active, (String, lapin::Error)> {
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
        let instance = ShortString::from(format!("{}.{}", self.hello_queue, random_suffix()));
        for (ch, q) in [
            (&hello_channel, &self.hello_queue),
            (&session_channel, &instance),
        ] {
            ch.queue_declare(q.clone(), exclusive, FieldTable::default())
                .await
                .map_err(step(format!("declaring queue {q}")))?;
        }
        let exclusive_consumer = BasicConsumeOptions {
            exclusive: true,
            ..BasicConsumeOptions::default()
        };
        let hellos = hello_channel
            .basic_consume(
                self.hello_queue.clone(),
                "redpepper-manager-hellos".into(),
                exclusive_consumer,
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
            conn,
            hello_channel,
            publish,
            instance,
            hellos,
            deliveries,
            broken: Arc::new(Broken::default()),
        })
    }

    async fn run(self, mut active: Active) {
        let mut failures = 0u32;
        loop {
            let reason = match self.serve(&mut active).await {
                End::Done => {
                    close(active, "listener closed").await;
                    return;
                }
                End::Lost(reason) => reason,
            };
            let sessions = self.table.len();
            warn!(broker = %self.url, %reason, sessions, "broker connection lost: failing its sessions and reconnecting");
            self.table
                .fail_all(&format!("broker connection lost ({}): {reason}", self.url));
            // Closed explicitly: sessions still hold its publishing channel, and a
            // half-alive connection would keep the exclusive hello queue locked.
            close(active, "reconnecting").await;
            active = loop {
                let ceiling = RECONNECT_BASE
                    .saturating_mul(1u32 << failures.min(8))
                    .min(RECONNECT_MAX);
                failures = failures.saturating_add(1);
                let delay = ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                tokio::select! {
                    () = self.incoming.closed() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                match self.connect().await {
                    Ok(active) => {
                        info!(broker = %self.url, instance = %active.instance, "reconnected to the broker");
                        failures = 0;
                        break active;
                    }
                    Err(e) => warn!(error = %e, "cannot reconnect to the broker yet"),
                }
            };
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
                    self.stop_accepting(active).await;
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

    /// The listener was dropped: delete the hello queue so hellos come back at once.
    async fn stop_accepting(&self, active: &Active) {
        let deleted = active
            .hello_channel
            .queue_delete(self.hello_queue.clone(), QueueDeleteOptions::default())
            .await;
        if let Err(e) = deleted {
            warn!(queue = %self.hello_queue, error = %explain(&e), "cannot delete the hello queue");
        }
        info!(queue = %self.hello_queue, sessions = self.table.len(), "AMQP listener closed; serving the remaining sessions");
    }

    fn on_delivery(&self, d: &mut Delivery, instance: &ShortString) {
        match Envelope::open(&d.properties) {
            Ok(env) => self
                .table
                .deliver(&env, std::mem::take(&mut d.data), self.max),
            Err(why) => warn!(queue = %instance, "dropping a message that is not ours: {why}"),
        }
    }
}

/// Close a connection we are done with (quickly: it may be dead already).
async fn close(active: Active, why: &str) {
    let closing = active.conn.close(200, why.into());
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
}

/// RabbitMQ's `RESOURCE_LOCKED` on our exclusive hello queue means another connection
/// holds it: say what that usually is.
fn hint_locked(text: String) -> String {
    if text.contains("RESOURCE_LOCKED") {
        format!(
            "{text} (another connection holds this queue: is another manager running on \
             this broker and vhost, or has the broker not yet noticed that the previous \
             one is gone?)"
        )
    } else {
        text
    }
}
