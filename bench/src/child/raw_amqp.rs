//! The raw AMQP baseline: lapin 4 alone, publish → consume → publish → consume through
//! the broker, with none of our transport's or session layer's code. The halves have
//! the shape of our transports' halves (a stream and a sink of whole bodies) so the
//! raw echo server and client of [`super::raw`] run on them unchanged: same tasks,
//! same `E`/`N`/`Q` tags, same JSON results.
//!
//! Per message it does what our AMQP transport (`redpepper_transports::amqp`) does on
//! the broker, with its default settings ([`AmqpOptions::default`]):
//!
//! | | raw baseline | ours |
//! |-|--------------|------|
//! | connection | lapin 4 on tokio, `amqp://` (or `amqps://` with rustls/ring), heartbeat [`DEFAULT_HEARTBEAT_SECS`] unless the URL sets one | same |
//! | client (drives) | one connection; a channel consuming its inbox, a channel publishing (confirm mode) | the manager: one connection; a channel per consumed queue, one publishing (confirm mode) |
//! | echo server | one connection, one channel (confirm mode) consuming its queue and publishing | the agent: same |
//! | queues | named with a random suffix: `redpepper.bench.raw.echo.<16 hex>` and `redpepper.bench.raw.client.<16 hex>`, exclusive, not durable, declared by their consumer | `redpepper.manager.<16 hex>` and `redpepper.agent.<id>.<16 hex>`, same flags |
//! | consumers | exclusive, manual acknowledgements, prefetch 512, one `basic.ack` with `multiple` per 256 deliveries or when the consumer has nothing ready, sent from a task of its own | same |
//! | publish | default exchange, routing key = the peer's queue, `mandatory`, properties `correlation_id` (32 hex digits), `user_id` (the login user, checked by RabbitMQ), `expiration` 60000; the client's first message also `reply_to` (its inbox), which the echo server answers to | same properties; the agent's first message (hello) carries `reply_to`, the manager's first answer too |
//! | batching | `feed` buffers; `flush` hands every buffered publish to lapin (first poll) before awaiting any, then awaits their writes in order | same (`join_all` over chunks of 30) |
//! | confirms | awaited in order by a task of their own; a returned or nacked message fails the connection's halves | same, failing the session |
//!
//! The client has the manager's channel layout and the echo server the agent's: the
//! rows compared with this baseline are mostly driven by the manager (pipelined,
//! payload). A channel is one process in RabbitMQ, so the layout changes what the
//! broker can do in parallel.
//!
//! What it leaves out is what a session needs beyond moving bodies: ours reads and
//! checks every delivery's properties (session id, type, `user_id` against the
//! session's owner, size), routes it through the manager's session table and a
//! channel to the session, and carries MessagePack payloads with ids, hello,
//! keepalive and correlation; the baseline reads only the body (and the first
//! `reply_to`).

mod writer;

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{Stream, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Acker, Channel, Connection, Consumer};
use redpepper_config::TlsConfig as BrokerTls;
use redpepper_core::transport::{BoxReader, BoxWriter};
use redpepper_core::TransportError;
use redpepper_transports::amqp::{AmqpOptions, BrokerUrl, DEFAULT_CONNECT_TIMEOUT};
use rustls::ClientConfig;
use tokio::sync::mpsc;

use self::writer::{Target, Writer};

/// A broker connection kept open as long as either half lives.
type Keep = Arc<Connection>;

/// The first failure of a connection's halves (a refused or returned message, a
/// failed acknowledgement), and the reader to wake for it.
#[derive(Default)]
struct Failure {
    error: Mutex<Option<String>>,
    waker: AtomicWaker,
}

impl Failure {
    fn fail(&self, error: String) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(error);
        drop(slot);
        self.waker.wake();
    }

    fn get(&self) -> Option<TransportError> {
        let slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.clone().map(TransportError::Other)
    }
}

/// `name` plus a dot and 16 random hex digits.
fn random_name(name: &str) -> ShortString {
    ShortString::from(format!("{name}.{:016x}", rand::random::<u64>()))
}

/// The rustls configuration for an `amqps://` URL (`tls` verifies the broker), as our
/// transports build it; `None` for `amqp://`.
pub fn broker_tls(url: &str, tls: &BrokerTls) -> anyhow::Result<Option<Arc<ClientConfig>>> {
    if !url.trim_start().starts_with("amqps://") {
        return Ok(None);
    }
    let verify = BrokerTls {
        cert_file: None,
        key_file: None,
        key_password: None,
        verify_mode: redpepper_config::VerifyMode::Required,
        ..tls.clone()
    };
    Ok(Some(redpepper_transports::tls::client_config(&verify)?))
}

/// Connect and log in exactly as our transport does ([`BrokerUrl::connect`]: TCP, then
/// our rustls for `amqps://`, the same heartbeat and frame_max defaults).
async fn connect(
    url: &str,
    tls: Option<Arc<ClientConfig>>,
    name: &str,
) -> anyhow::Result<(Connection, ShortString)> {
    let broker = BrokerUrl::parse("--amqp-url", url)?;
    let conn = broker
        .connect(tls.as_ref(), name.to_owned(), DEFAULT_CONNECT_TIMEOUT)
        .await?;
    Ok((conn, ShortString::from(broker.user().to_owned())))
}

/// Declare the exclusive queue `queue` on `channel` and consume it (exclusive
/// consumer, manual acknowledgements, our prefetch window).
async fn consume(channel: &Channel, queue: &ShortString) -> anyhow::Result<Consumer> {
    let opts = AmqpOptions::default();
    channel
        .basic_qos(opts.prefetch, BasicQosOptions::default())
        .await
        .context("setting the prefetch window")?;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.clone(), exclusive, FieldTable::default())
        .await
        .with_context(|| format!("declaring queue {queue}"))?;
    channel
        .basic_consume(
            queue.clone(),
            "redpepper-bench-raw".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming queue {queue}"))
}

/// A channel in confirm mode.
async fn confirming(conn: &Connection) -> anyhow::Result<Channel> {
    let channel = conn.create_channel().await.context("opening a channel")?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .context("enabling publisher confirms")?;
    Ok(channel)
}

/// The echo server's end (laid out as our agent: one channel): its queue (for the
/// client) and its halves. Answers go to the `reply_to` of the client's first message.
pub async fn bind(
    url: &str,
    tls: Option<Arc<ClientConfig>>,
) -> anyhow::Result<(String, BoxReader, BoxWriter)> {
    let (conn, user) = connect(url, tls, "redpepper-bench raw echo").await?;
    let queue = random_name("redpepper.bench.raw.echo");
    let channel = confirming(&conn).await?;
    let consumer = consume(&channel, &queue).await?;
    let conn: Keep = Arc::new(conn);
    let failure = Arc::new(Failure::default());
    let learned = Arc::new(OnceLock::new());
    let reader = Reader::new(
        consumer,
        &queue,
        Some(Arc::clone(&learned)),
        &failure,
        &conn,
    );
    let writer = Writer::new(
        channel,
        Target::Learned(learned),
        None,
        user,
        &failure,
        &conn,
    );
    Ok((queue.to_string(), Box::pin(reader), Box::pin(writer)))
}

/// The client's end (laid out as our manager: a consuming and a publishing channel):
/// an inbox of its own; messages go to the echo server's `queue`.
pub async fn dial(
    url: &str,
    tls: Option<Arc<ClientConfig>>,
    queue: &str,
) -> anyhow::Result<(BoxReader, BoxWriter)> {
    let (conn, user) = connect(url, tls, "redpepper-bench raw client").await?;
    let inbox = random_name("redpepper.bench.raw.client");
    let consuming = conn.create_channel().await.context("opening a channel")?;
    let consumer = consume(&consuming, &inbox).await?;
    let publishing = confirming(&conn).await?;
    let conn: Keep = Arc::new(conn);
    let failure = Arc::new(Failure::default());
    let reader = Reader::new(consumer, &inbox, None, &failure, &conn);
    let target = Target::Fixed(ShortString::from(queue.to_owned()));
    let writer = Writer::new(publishing, target, Some(inbox), user, &failure, &conn);
    Ok((Box::pin(reader), Box::pin(writer)))
}

/// Acknowledges deliveries with `multiple`, from a task of its own.
struct Acks {
    last: Option<Acker>,
    pending: usize,
    every: usize,
    tx: mpsc::UnboundedSender<Acker>,
}

impl Acks {
    fn new(queue: &ShortString, failure: &Arc<Failure>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Acker>();
        let (queue, failure) = (queue.to_string(), Arc::clone(failure));
        tokio::spawn(async move {
            while let Some(acker) = rx.recv().await {
                if let Err(e) = acker.ack(BasicAckOptions { multiple: true }).await {
                    failure.fail(format!("acknowledging deliveries of queue {queue}: {e}"));
                    return;
                }
            }
        });
        Self {
            last: None,
            pending: 0,
            every: usize::from(AmqpOptions::default().prefetch / 2).max(1),
            tx,
        }
    }

    fn note(&mut self, acker: Acker) {
        self.last = Some(acker);
        self.pending += 1;
        if self.pending >= self.every {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.pending = 0;
        if let Some(acker) = self.last.take() {
            let _ = self.tx.send(acker);
        }
    }
}

/// The bodies of a consumer's deliveries.
struct Reader {
    consumer: Consumer,
    queue: ShortString,
    acks: Acks,
    /// The echo server: where the client wants answers (its first `reply_to`).
    learn: Option<Arc<OnceLock<ShortString>>>,
    failure: Arc<Failure>,
    _keep: Keep,
}

impl Reader {
    fn new(
        consumer: Consumer,
        queue: &ShortString,
        learn: Option<Arc<OnceLock<ShortString>>>,
        failure: &Arc<Failure>,
        keep: &Keep,
    ) -> Self {
        Self {
            consumer,
            queue: queue.clone(),
            acks: Acks::new(queue, failure),
            learn,
            failure: Arc::clone(failure),
            _keep: Arc::clone(keep),
        }
    }
}

impl Stream for Reader {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.failure.waker.register(cx.waker());
        if let Some(e) = this.failure.get() {
            return Poll::Ready(Some(Err(e)));
        }
        match this.consumer.poll_next_unpin(cx) {
            Poll::Pending => {
                this.acks.flush();
                Poll::Pending
            }
            Poll::Ready(Some(Ok(delivery))) => {
                if let (Some(learn), Some(q)) = (&this.learn, delivery.properties.reply_to()) {
                    if learn.get().is_none() {
                        let _ = learn.set(q.clone());
                    }
                }
                this.acks.note(delivery.acker);
                Poll::Ready(Some(Ok(Bytes::from(delivery.data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(TransportError::Other(format!(
                "consuming queue {}: {e}",
                this.queue
            ))))),
            Poll::Ready(None) => Poll::Ready(Some(Err(TransportError::Other(format!(
                "the broker cancelled the consumer of queue {}",
                this.queue
            ))))),
        }
    }
}
