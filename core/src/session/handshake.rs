//! The hello handshake, both roles, then the hand-off to the driver and writer tasks.
//!
//! Agent: send AgentHello, wait `hello_timeout` for the first message: ManagerHello
//! (major version must match ours), Bye (refused, with the manager's reason), anything
//! else is a protocol error. Manager: wait `hello_timeout` for AgentHello, ask the
//! [`Authenticator`], answer ManagerHello or Bye "authentication failed" and close.
//!
//! Before the hello is accepted a peer gets little: its first message may be at most
//! [`HELLO_FRAME_LIMIT`] bytes (the transports refuse a larger first frame from its
//! header, before reading the body; this checks again for any transport), and its type
//! is peeked ([`peek_type`]) before anything is decoded, so nothing but the expected
//! hello is ever decoded. Strings the peer chose reach errors (and so logs) only through
//! [`printable`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use redpepper_codec::{decode, encode, peek_type, AgentHello, ManagerHello, Message, MessageType};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use super::config::major;
use super::driver::{Burst, Driver};
use super::handler::{Authenticator, Event, Handler};
use super::idle::CallCount;
use super::in_flight::{IdScheme, InFlight};
use super::keepalive::Keepalive;
use super::{writer, PeerHello, Role, Session, SessionConfig, Shared};
use crate::error::{SessionError, TransportError};
use crate::quiet::{printable, LogLimit};
use crate::transport::{PeerInfo, ReadLimit, Transport};

/// What RedPepper's manager answers to any failed authentication.
pub const AUTH_FAILED: &str = "authentication failed";

/// Most bytes a peer's first message (AgentHello; ManagerHello or Bye) may take: the
/// frame limit before the hello is accepted, on every transport; `max_message_size`
/// applies from the second message on. RedPepper 0.3.4's AgentHello is about 100 bytes
/// (an id, a version and a secret); this leaves room for ids and secrets far longer.
pub const HELLO_FRAME_LIMIT: usize = 16 * 1024;

/// `hello_timeout` zero means no limit (RedPepper's manager never times out a hello).
fn hello_limit(config: &SessionConfig) -> std::time::Duration {
    if config.hello_timeout.is_zero() {
        std::time::Duration::from_secs(100 * 365 * 86400)
    } else {
        config.hello_timeout
    }
}

/// Control messages the driver may queue ahead of the writer before the session is
/// considered congested.
const CONTROL_QUEUE: usize = 1024;

impl Session {
    /// Agent side: say hello over `transport` and wait for the manager's answer.
    pub async fn connect<T: Transport>(
        transport: T,
        agent_id: &str,
        credentials: &str,
        config: SessionConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<Session, SessionError> {
        let metrics = config.clone();
        Self::connect_inner(transport, agent_id, credentials, config, handler)
            .await
            .inspect_err(|e| count_failure(&metrics, e))
    }

    async fn connect_inner<T: Transport>(
        transport: T,
        agent_id: &str,
        credentials: &str,
        config: SessionConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<Session, SessionError> {
        let peer = transport.peer().clone();
        let limit = HelloLimit::lower(transport.read_limit());
        let (mut reader, mut writer) = transport.split();
        let hello = Message::AgentHello(AgentHello {
            id: agent_id.to_owned(),
            version: config.version.clone(),
            credentials: credentials.to_owned(),
        });
        let exchange = async {
            send(&mut writer, &hello).await?;
            read_hello(
                &mut reader,
                &[MessageType::ManagerHello, MessageType::Bye],
                "ManagerHello or Bye",
            )
            .await
        };
        let deadline = Instant::now() + hello_limit(&config);
        let first = match within_hello(deadline, &config, "ManagerHello", exchange).await {
            Ok(msg) => msg,
            Err(e) => {
                let _ = writer.close().await;
                return Err(e);
            }
        };
        let version = match first {
            Message::ManagerHello(ManagerHello { version }) => version,
            Message::Bye { reason } => {
                let _ = writer.close().await;
                return Err(SessionError::Refused(printable(&reason)));
            }
            other => {
                let _ = writer.close().await;
                return Err(SessionError::unexpected(
                    other.message_type(),
                    "ManagerHello or Bye",
                ));
            }
        };
        if major(&version) != major(&config.version) {
            let _ = writer.close().await;
            return Err(SessionError::IncompatibleVersion {
                role: "manager",
                theirs: printable(&version),
                ours: config.version,
            });
        }
        limit.restore();
        if version != config.version {
            tracing::debug!(%peer, manager_version = %printable(&version), "manager runs another minor version");
        }
        Ok(start(
            reader,
            writer,
            peer,
            PeerHello::Manager { version },
            Role::Agent,
            &config,
            handler,
        ))
    }

    /// Manager side: wait for the agent's hello, authenticate it, answer.
    pub async fn accept<T: Transport>(
        transport: T,
        config: SessionConfig,
        authenticator: &dyn Authenticator,
        handler: Arc<dyn Handler>,
    ) -> Result<Session, SessionError> {
        let metrics = config.clone();
        Self::accept_inner(transport, config, authenticator, handler)
            .await
            .inspect_err(|e| count_failure(&metrics, e))
    }

    async fn accept_inner<T: Transport>(
        transport: T,
        config: SessionConfig,
        authenticator: &dyn Authenticator,
        handler: Arc<dyn Handler>,
    ) -> Result<Session, SessionError> {
        let peer = transport.peer().clone();
        let read_limit = HelloLimit::lower(transport.read_limit());
        let (mut reader, mut writer) = transport.split();
        let limit = hello_limit(&config);
        let deadline = Instant::now() + limit;
        let reading = read_hello(&mut reader, &[MessageType::AgentHello], "AgentHello");
        let first = match within_hello(deadline, &config, "AgentHello", reading).await {
            Ok(msg) => msg,
            Err(e) => {
                let _ = writer.close().await;
                return Err(e);
            }
        };
        let hello = match first {
            Message::AgentHello(h) => h,
            other => {
                let _ = writer.close().await;
                return Err(SessionError::unexpected(other.message_type(), "AgentHello"));
            }
        };
        let verdict = if valid_agent_id(&hello.id) {
            authenticator.authenticate(&hello, &peer).await
        } else {
            Err("agent id is not [A-Za-z0-9_-]+".to_owned())
        };
        if let Err(why) = verdict {
            let bye = Message::Bye {
                reason: AUTH_FAILED.into(),
            };
            let _ = tokio::time::timeout(limit, async {
                let _ = send(&mut writer, &bye).await;
                let _ = writer.close().await;
            })
            .await;
            return Err(SessionError::AuthFailed {
                agent: printable(&hello.id),
                reason: why,
            });
        }
        read_limit.restore();
        let answer = Message::ManagerHello(ManagerHello {
            version: config.version.clone(),
        });
        match tokio::time::timeout_at(deadline + limit, send(&mut writer, &answer)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(SessionError::Transport(
                    "timed out sending ManagerHello".into(),
                ))
            }
        }
        let AgentHello { id, version, .. } = hello;
        Ok(start(
            reader,
            writer,
            peer,
            PeerHello::Agent { id, version },
            Role::Manager,
            &config,
            handler,
        ))
    }
}

/// The transport's read limit, lowered to [`HELLO_FRAME_LIMIT`] until the hello is
/// accepted.
struct HelloLimit(Option<(ReadLimit, usize)>);

impl HelloLimit {
    fn lower(limit: Option<ReadLimit>) -> Self {
        Self(limit.map(|l| {
            let full = l.get();
            l.set(full.min(HELLO_FRAME_LIMIT));
            (l, full)
        }))
    }

    fn restore(&self) {
        if let Some((l, full)) = &self.0 {
            l.set(*full);
        }
    }
}

/// RedPepper agent ids: `[A-Za-z0-9_-]+`.
pub fn valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn send<W>(writer: &mut W, msg: &Message) -> Result<(), SessionError>
where
    W: Sink<Bytes, Error = TransportError> + Unpin,
{
    let bytes = encode(msg).map_err(SessionError::codec)?;
    writer.send(bytes).await.map_err(SessionError::from)
}

/// Run `exchange` (which ends with the peer's first message) until `deadline`.
async fn within_hello(
    deadline: Instant,
    config: &SessionConfig,
    expected: &'static str,
    exchange: impl std::future::Future<Output = Result<Message, SessionError>>,
) -> Result<Message, SessionError> {
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(result) => result,
        Err(_) => Err(SessionError::HelloTimeout {
            expected,
            secs: config.hello_timeout.as_secs_f64(),
        }),
    }
}

/// Read the peer's first message: at most [`HELLO_FRAME_LIMIT`] bytes, and decoded
/// only if its `t` is one of `allowed` (anything else is refused unread).
async fn read_hello<R>(
    reader: &mut R,
    allowed: &[MessageType],
    expected: &str,
) -> Result<Message, SessionError>
where
    R: Stream<Item = Result<Bytes, TransportError>> + Unpin,
{
    let bytes = match reader.next().await {
        Some(Ok(bytes)) => bytes,
        Some(Err(TransportError::TooLarge { len, max })) if max <= HELLO_FRAME_LIMIT => {
            return Err(SessionError::Protocol(format!(
                "first message of {len} bytes exceeds the hello limit of {max} bytes"
            )))
        }
        Some(Err(e)) => return Err(e.into()),
        None => return Err(SessionError::PeerClosed),
    };
    if bytes.len() > HELLO_FRAME_LIMIT {
        return Err(SessionError::Protocol(format!(
            "first message of {} bytes exceeds the hello limit of {HELLO_FRAME_LIMIT} bytes",
            bytes.len()
        )));
    }
    let ty = peek_type(&bytes).map_err(SessionError::codec)?;
    if !allowed.contains(&ty) {
        return Err(SessionError::unexpected(ty, expected));
    }
    decode(&bytes).map_err(SessionError::codec)
}

/// Spawn the driver and writer tasks of an established session.
fn start<R, W>(
    reader: R,
    writer: W,
    peer: PeerInfo,
    hello: PeerHello,
    role: Role,
    config: &SessionConfig,
    handler: Arc<dyn Handler>,
) -> Session
where
    R: Stream<Item = Result<Bytes, TransportError>> + Send + Unpin + 'static,
    W: Sink<Bytes, Error = TransportError> + Send + Unpin + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (data_tx, data_rx) = mpsc::channel(config.send_queue.max(1));
    let (ctrl_tx, ctrl_rx) = mpsc::channel(CONTROL_QUEUE);
    let (done, _) = watch::channel(false);
    let session = Session {
        inner: Arc::new(Shared {
            role,
            peer,
            hello,
            call_timeout: config.call_timeout,
            max_message_size: config.max_message_size,
            ids: IdScheme::random(),
            next_id: AtomicU64::new(0),
            in_flight: CallCount::default(),
            rtt_micros: AtomicU64::new(0),
            established: SystemTime::now(),
            cmd_tx,
            data_tx,
            reason: OnceLock::new(),
            done,
            metrics: config.metrics.clone(),
        }),
    };
    if let Some(m) = &config.metrics {
        m.handshakes.fetch_add(1, Ordering::Relaxed);
    }
    let kind = session.peer().kind;
    let writer = tokio::spawn(writer::run(
        writer,
        ctrl_rx,
        data_rx,
        config.metrics.clone(),
        kind,
    ));
    handler.event(&session, &Event::Established);
    let driver = Driver {
        session: session.clone(),
        reader: Burst::new(reader),
        cmd_rx,
        ctrl_tx,
        writer,
        handler,
        keepalive: Keepalive::new(config.ping_interval, config.ping_timeout, Instant::now()),
        requests: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
        expose_errors: config.expose_errors,
        in_flight: InFlight::default(),
        quiet_refused: LogLimit::default(),
        quiet_unknown: LogLimit::default(),
    };
    tokio::spawn(driver.run());
    session
}

/// Count a failed handshake.
pub(crate) fn count_failure(config: &SessionConfig, e: &SessionError) {
    if let Some(m) = &config.metrics {
        let counter = match e {
            SessionError::AuthFailed { .. } => &m.auth_failures,
            _ => &m.handshake_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
