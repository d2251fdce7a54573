//! The agent side: [`AmqpDialer`].
//!
//! Every dial opens a broker connection of its own, declares a fresh exclusive inbox
//! (`redpepper.agent.<agent_id>.<16 hex>`), consumes it, and picks a new session id.
//! The session layer's first message (the hello) goes to the manager's hello queue with
//! `reply_to` = the inbox; the manager's first answer names its instance queue in
//! `reply_to`, where everything else goes. The manager's broker user is pinned from
//! that first answer: a later message from another user (or without `user_id`) is
//! dropped and logged (rate limited), and the session goes on. When the transport is dropped the connection is closed, which deletes
//! the inbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use futures::future::BoxFuture;
use futures::FutureExt;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use redpepper_core::error::TransportError;
use redpepper_core::transport::{BoxTransport, Dialer, PeerInfo, Transport, TransportKind};
use rustls::ClientConfig;

use super::broker::{explain, BrokerUrl};
use super::inbox::Inbox;
use super::nodes::BrokerUrls;
use super::reader::AmqpReader;
use super::state::SessionState;
use super::wire::{new_session_id, queue_name, random_suffix, Stamp};
use super::writer::{AmqpWriter, Outbound, ReturnRouter, Route};
use super::{check_max_message_size, ttl_millis, AmqpOptions, AmqpTransport};
use crate::error::TransportsError;

/// Dials the manager through a broker (agent side).
#[derive(Debug, Clone)]
pub struct AmqpDialer {
    urls: BrokerUrls,
    /// The node of the latest connection (`usize::MAX`: none yet): the next dial,
    /// which usually follows the loss of that connection, tries it last.
    last_node: Arc<AtomicUsize>,
    tls: Option<Arc<ClientConfig>>,
    manager_queue: ShortString,
    agent_id: String,
    inbox_prefix: String,
    max_message_size: usize,
    options: AmqpOptions,
    /// The manager's broker user, when configured (`amqp.manager_user`).
    manager_user: Option<String>,
}

impl AmqpDialer {
    /// A dialer for agent `agent_id` that says hello on `manager_queue` (the manager's
    /// `amqp.queue`). `tls` is needed for `amqps://` URLs (it verifies the broker).
    pub fn new(
        urls: impl Into<BrokerUrls>,
        manager_queue: &str,
        agent_id: &str,
        tls: Option<Arc<ClientConfig>>,
        max_message_size: usize,
    ) -> Result<Self, TransportsError> {
        let urls: BrokerUrls = urls.into();
        let manager_queue = queue_name("amqp.queue", manager_queue.to_owned())?;
        let inbox_prefix = format!("redpepper.agent.{agent_id}");
        // The inbox is the prefix, a dot and 16 hex digits.
        queue_name("agent_id", format!("{inbox_prefix}.{}", random_suffix()))?;
        if urls.is_tls() && tls.is_none() {
            return Err(TransportsError::setting(
                "amqp.url",
                "amqps:// needs a TLS configuration",
            ));
        }
        check_max_message_size(max_message_size, "amqp transport");
        Ok(Self {
            urls,
            last_node: Arc::new(AtomicUsize::new(usize::MAX)),
            tls,
            manager_queue,
            agent_id: agent_id.to_owned(),
            inbox_prefix,
            max_message_size,
            options: AmqpOptions::default(),
            manager_user: None,
        })
    }

    /// Replace the tuning options.
    pub fn with_options(mut self, options: AmqpOptions) -> Self {
        self.options = options;
        self
    }

    /// Take only messages from broker user `user` as the manager's (`amqp.manager_user`),
    /// instead of trusting the user of the first answer to the hello.
    pub fn with_manager_user(mut self, user: Option<String>) -> Self {
        self.manager_user = user;
        self
    }

    /// Connect to one of the broker nodes (from a random one, the node of the previous
    /// connection last; a node that fails moves on to the next), set up an inbox and
    /// return the (not yet greeted) session transport. When every node fails, the
    /// error names each with its reason (one node: its error as is).
    pub async fn connect(&self) -> Result<AmqpTransport, TransportError> {
        let last = self.last_node.load(Ordering::Relaxed);
        let lost = (last != usize::MAX).then_some(last);
        let many = self.urls.urls().len() > 1;
        let mut failures = Vec::new();
        for node in self.urls.order(lost) {
            let url = &self.urls.urls()[node];
            match self.connect_to(url).await {
                Ok(t) => {
                    self.last_node.store(node, Ordering::Relaxed);
                    if many {
                        tracing::info!(broker = %url, agent_id = %self.agent_id, "connected to broker node");
                    }
                    return Ok(t);
                }
                Err(e) => {
                    if many {
                        tracing::warn!(broker = %url, error = %e, "cannot use this broker node; trying the next");
                    }
                    failures.push(e);
                }
            }
        }
        if failures.len() == 1 {
            if let Some(e) = failures.pop() {
                return Err(e);
            }
        }
        let reasons: Vec<String> = failures.iter().map(ToString::to_string).collect();
        Err(TransportError::Connect {
            target: self.describe(),
            reason: format!("no broker node usable: {}", reasons.join("; ")),
        })
    }

    async fn connect_to(&self, url: &BrokerUrl) -> Result<AmqpTransport, TransportError> {
        let started = Instant::now();
        let timeout = self.options.connect_timeout;
        let conn = url
            .connect(
                self.tls.as_ref(),
                format!("redpepper-agent {}", self.agent_id),
                timeout,
            )
            .await?;
        let inbox = ShortString::from(format!("{}.{}", self.inbox_prefix, random_suffix()));
        let left = timeout.saturating_sub(started.elapsed());
        let (channel, consumer) = match tokio::time::timeout(left, self.set_up(&conn, &inbox)).await
        {
            Ok(Ok(set_up)) => set_up,
            Ok(Err((what, e))) => return Err(failed(url, format!("{what}: {}", explain(&e)))),
            Err(_) => {
                return Err(failed(
                    url,
                    format!(
                        "no inbox queue {inbox} within {:.1}s",
                        timeout.as_secs_f64()
                    ),
                ))
            }
        };
        Ok(self.transport(url, conn, channel, consumer, inbox))
    }

    async fn set_up(
        &self,
        conn: &Connection,
        inbox: &ShortString,
    ) -> Result<(Channel, Consumer), (String, lapin::Error)> {
        let step = |what: &str| {
            let what = what.to_owned();
            move |e| (what, e)
        };
        let channel = conn
            .create_channel()
            .await
            .map_err(step("opening a channel"))?;
        if self.options.publisher_confirms {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(step("enabling publisher confirms"))?;
        }
        channel
            .basic_qos(self.options.prefetch, BasicQosOptions::default())
            .await
            .map_err(step("setting the prefetch window"))?;
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(inbox.clone(), exclusive, FieldTable::default())
            .await
            .map_err(step(&format!("declaring inbox queue {inbox}")))?;
        let consumer = channel
            .basic_consume(
                inbox.clone(),
                "redpepper-agent".into(),
                BasicConsumeOptions {
                    exclusive: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(step(&format!("consuming inbox queue {inbox}")))?;
        Ok((channel, consumer))
    }

    fn transport(
        &self,
        url: &BrokerUrl,
        conn: Connection,
        channel: Channel,
        consumer: Consumer,
        inbox: ShortString,
    ) -> AmqpTransport {
        let session = new_session_id();
        let state = Arc::new(SessionState::new(session.clone()));
        let learned = Arc::new(OnceLock::new());
        let inbox_reader = Inbox::new(
            consumer,
            Arc::clone(&state),
            inbox.clone(),
            Arc::clone(&learned),
            self.max_message_size,
            usize::from(self.options.prefetch / 2).max(1),
        )
        .with_manager_user(self.manager_user.clone())
        .with_events(conn.events_listener());
        let guard: Arc<ConnGuard> = Arc::new(ConnGuard(Mutex::new(Some(conn))));
        let reader = AmqpReader::from_inbox(inbox_reader, Arc::clone(&state), guard.clone());
        let own = Arc::clone(&state);
        let returns: ReturnRouter = Arc::new(move |id: &str, err| {
            if id == own.session() {
                own.fail(err);
            }
        });
        let out = Outbound {
            channel,
            route: Route::Learned {
                first: self.manager_queue.clone(),
                learned,
            },
            stamp: Stamp {
                session: session.clone().into(),
                user: ShortString::from(url.user().to_owned()),
                ttl: ttl_millis(self.options.message_ttl).into(),
                first_ttl: ttl_millis(self.options.hello_ttl).into(),
            },
            state,
            broker: url.describe().to_owned(),
            returns,
            on_broken: None,
        };
        let writer = AmqpWriter::new(
            out,
            Some(inbox),
            self.max_message_size,
            self.options.publisher_confirms,
            Some(guard),
        );
        AmqpTransport {
            peer: PeerInfo::new(TransportKind::Amqp, None),
            session_id: session,
            reader,
            writer,
        }
    }
}

impl Dialer for AmqpDialer {
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
        self.connect().map(|t| t.map(Transport::boxed)).boxed()
    }

    fn describe(&self) -> String {
        format!("{} queue {}", self.urls.describe(), self.manager_queue)
    }
}

/// `connect to URL queue Q: reason` for a failure on broker node `url`.
fn failed(url: &BrokerUrl, reason: String) -> TransportError {
    TransportError::Connect {
        target: url.describe().to_owned(),
        reason,
    }
}

/// Closes the broker connection when the session's last half is gone.
struct ConnGuard(Mutex<Option<Connection>>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let conn = self.0.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(conn), Ok(rt)) = (conn, tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = conn.close(200, "session closed".into()).await;
            });
        }
    }
}
