//! The AMQP transport: RedPepper sessions routed through a RabbitMQ broker (AMQP 0-9-1,
//! lapin 4 on tokio; `amqp://` or `amqps://` with rustls and the ring provider).
//!
//! The session layer sees an ordinary [`Transport`](redpepper_core::transport::Transport):
//! one body per protocol message, in order, both ways. Underneath, each agent session is
//! a *virtual connection* through the broker, named by a random session id.
//!
//! # Topology
//!
//! Everything goes through the default exchange (`""`, routing key = queue name); no
//! exchange or binding is declared. Nothing is durable but the hello queue of a
//! cluster (below): sessions do not outlive the connections that carry them.
//!
//! ```text
//!  agent A ── hello (reply_to = A's inbox) ──▶ [redpepper.manager]  ◀── consumes ── manager
//!     ▲                                        (hello queue, amqp.queue,
//!     │                                         exclusive to the manager)
//!     │                                                                      │
//!     └──── [redpepper.agent.<id>.<rand>] ◀── ManagerHello (reply_to = ───────┤
//!           (A's inbox, exclusive to           the instance queue), then      │
//!            A's connection)                   everything for A               │
//!                                                                            │
//!  agent A ── everything after the hello ──▶ [redpepper.manager.<rand>] ◀────┘
//!                                            (the manager instance's queue,
//!                                             exclusive to the manager)
//! ```
//!
//! | queue | declared by | flags | consumed by |
//! |-------|-------------|-------|-------------|
//! | `amqp.queue` (`redpepper.manager`), lone manager | manager | exclusive, not durable | manager (hellos) |
//! | `amqp.queue`, managers in a cluster (`cluster` set) | every manager | durable, not exclusive | every manager, not exclusive (competing consumers) |
//! | `amqp.queue`, [`AmqpOptions::quorum_hello_queue`] (`amqp.queue_type: quorum`) | every manager | quorum (`x-queue-type`), durable, not exclusive | as in a cluster |
//! | `amqp.queue` + `.` + 16 hex digits | manager, new name per broker connection | exclusive | manager (session traffic) |
//! | `redpepper.agent.<agent_id>.` + 16 hex | agent, new name per dial | exclusive | that agent |
//!
//! **Why exclusive queues** (not `x-expires` queues that survive reconnects): a session
//! never survives the loss of the broker connection that carries it (both sides fail it
//! and the agent says hello again), so nothing is gained by a queue that outlives its
//! connection. An exclusive queue is deleted by the broker the moment its connection
//! closes, so a message for a peer that is gone comes back at once (`mandatory`, below)
//! instead of piling up until an `x-expires` timer runs out; no other connection can
//! consume from it, even a broker user with `read` permission on its name; a second
//! lone manager on the same hello queue fails loudly (`RESOURCE_LOCKED`) instead of
//! silently taking half of the hellos (managers that mean to share them form a
//! cluster, below); and non-exclusive transient queues are deprecated since
//! RabbitMQ 3.13. A fresh random name per connection avoids waiting for the broker to
//! notice a dead predecessor that still holds the old name.
//!
//! **The shared hello queue of a cluster.** When the managers form a cluster
//! (`cluster` set; [`AmqpOptions::shared_hello_queue`]), they all consume the one hello
//! queue without `exclusive`: RabbitMQ hands its messages to the consumers in turn, so
//! an agent's hello is taken by whichever manager is alive, and hellos a dead manager
//! had received but not acknowledged go to another. The queue is declared durable,
//! because non-exclusive transient (non-durable) queues are deprecated since RabbitMQ
//! 3.13; it holds only hellos, which are not persistent and expire after the agent's
//! `hello_timeout`. Each manager's instance queue stays exclusive (its sessions stay
//! its own). What changes: with no manager alive the queue remains, so a hello waits
//! (and the agent's hello times out) instead of coming back at once; a manager
//! leaving cancels its consumer and gives back the hellos pushed to it instead of
//! deleting the queue. A lone manager and a cluster manager cannot share an
//! `amqp.queue` (the flags differ: `PRECONDITION_FAILED` or `RESOURCE_LOCKED`, named in
//! the error). The cluster's own link between managers is [`cluster`].
//!
//! # Messages
//!
//! | AMQP | use |
//! |------|-----|
//! | body | one MessagePack protocol payload, no length prefix; at most `max_message_size` (checked when sending and when receiving) |
//! | `correlation_id` | the session id (32 lowercase hex digits, random per dial), on every message |
//! | `user_id` | the sender's broker user, on every message; RabbitMQ refuses a publish whose `user_id` is not the connection's login, so it is a broker-validated identity |
//! | `reply_to` | on the agent's first message (the hello): its inbox; on the manager's first answer: its instance queue |
//! | `expiration` | per-message TTL: the hello's is the agent's `hello_timeout` (a hello the agent gave up on never starts a session), every other message's [`DEFAULT_MESSAGE_TTL`] |
//! | `type` | absent on payloads; [`EOF_TYPE`] (empty body) when the sender closes its end, the broker's way of saying "connection closed" |
//! | `mandatory` | on every publish: a message the broker cannot route (the peer's queue is gone) is returned, and the session fails at once instead of waiting for a ping timeout |
//!
//! The manager demultiplexes deliveries by session id into one transport per session.
//! A message whose `user_id` is missing or differs from the user that opened the
//! session is dropped and logged, and the session goes on: another broker user can
//! neither inject into a session nor, by trying, end it. The agent likewise pins the
//! manager's user from the manager's first answer. Messages for unknown sessions,
//! messages that are not ours and malformed hellos are dropped too. Every such log line
//! is rate limited (one line per 10 s and kind, with a count of the others), since any
//! broker user can send them.
//!
//! # Delivery, acknowledgements, confirms
//!
//! Consumers use manual acknowledgements with a prefetch window
//! ([`AmqpOptions::prefetch`]), acknowledged with `multiple` once a burst has been
//! handed over. The agent reads its inbox in place, so the prefetch window bounds what
//! waits in its memory and a flood towards an agent waits in the broker (where it
//! expires). The manager hands a delivery over by putting it into the session's inbox,
//! an in-memory channel, and acknowledges it then: a flood towards the manager does
//! *not* wait in the broker but in the manager's memory, bounded per session by
//! [`AmqpOptions::session_budget`] (bytes) and [`AmqpOptions::session_buffer`]
//! (messages). A delivery that would exceed either ends that session alone, with a log
//! line naming it and the limit; the shared consumer never waits for a session.
//! Sessions not yet taken by `accept` (the hello and whatever followed it) together draw
//! on [`AmqpOptions::pending_budget`]; a hello that finds no room there, or a full accept
//! backlog ([`AmqpOptions::accept_backlog`]), is answered at once with a `Bye`
//! carrying [`BUSY_REASON`]. Publisher confirms are on by default ([`AmqpOptions::publisher_confirms`]):
//! RabbitMQ sends `basic.return` before the `basic.ack` of the same message, so a
//! confirm tells for certain whether the message reached a queue; without confirms a
//! returned message is only noticed at the next flush. The writer never waits for
//! confirms: a task per session watches them and fails the session when one reports a
//! returned or refused message. `flush` is the batch boundary: every message of a batch
//! is handed to lapin before any is awaited, so a batch leaves in few socket writes.
//!
//! # Connections, failures, reconnection
//!
//! An agent dial opens its own broker connection (closed with the session). The
//! manager keeps one connection for all sessions (three channels: hellos, session
//! traffic, publishing). lapin's automatic recovery does not survive broker restarts,
//! so it stays off: when the manager's connection or a channel fails, every session on
//! it ends at once with an error naming the broker (calls in flight fail immediately),
//! and the listener reconnects with backoff, declares its queues again and goes on
//! accepting. Agents whose own connection went too notice at once; for the others
//! (their connection is to another node of a RabbitMQ cluster, or only the manager's
//! connection broke) the reconnected listener publishes each lost session's
//! end-of-stream marker to the agent's inbox, so they too say hello again at once
//! instead of at their next ping. A broker
//! that cannot be reached when the listener is bound does not fail `bind` (the manager's
//! other listeners keep running): the listener logs an error and connects in the
//! background with the same backoff. Refusals that need an operator (login, vhost,
//! permissions, certificate, another manager on the hello queue) fail `bind`.
//!
//! # Several broker nodes
//!
//! [`BrokerUrls`] lists the nodes of one RabbitMQ cluster (`amqp.url` as a list). The
//! listener and every dial try them from a random one, the node just lost last; the
//! first node that connects and sets up the queues is used, and the log names it.
//!
//! # Peer facts
//!
//! There is no peer IP address ([`PeerInfo::remote_addr`] is `None`); the manager
//! records the broker-validated user as [`PeerInfo::broker_user`]. `agents.yml`
//! entries may pin `amqp_user`; an entry that restricts `allowed_ips` cannot
//! authenticate over AMQP unless it names `amqp_user`.
//!
//! # Layout
//!
//! ```text
//! mod.rs        this overview, AmqpOptions
//! broker.rs     BrokerUrl: parsing, redacted description, connecting (TLS via rustls)
//! nodes.rs      BrokerUrls: the nodes of a RabbitMQ cluster, the order to try them
//! wire.rs       session ids, message properties, what a delivery carries
//! state.rs      SessionState: the failure slot shared by a session's halves
//! budget.rs     byte budgets of the manager's session inboxes
//! quiet.rs      rate-limited log lines
//! reader.rs     AmqpReader (Stream), AckBatch
//! inbox.rs      the agent's inbox consumer, read and checked in place
//! writer.rs     AmqpWriter (Sink): batched mandatory publishes, confirm watcher
//! dialer.rs     AmqpDialer (agent): connection, inbox, hello
//! listener.rs   AmqpListener (manager): accept queue, broker link with reconnect
//!   hello.rs      a hello: checks, then a new session
//!   stop.rs       a dropped listener: its hello queue deleted, or left to the cluster
//!   farewell.rs   after a reconnect: the end of each lost session told to its agent
//! table.rs      the manager's session table (demultiplexing, user checks)
//! backoff.rs    Backoff: reconnection delays of the manager's broker links
//! cluster/      AmqpClusterLink: the manager cluster's link between nodes
//! ```
//!
//! [`PeerInfo::remote_addr`]: redpepper_core::transport::PeerInfo::remote_addr
//! [`PeerInfo::broker_user`]: redpepper_core::transport::PeerInfo::broker_user

mod backoff;
mod broker;
pub(crate) mod budget;
pub mod cluster;
mod dialer;
mod inbox;
mod listener;
mod nodes;
mod quiet;
mod reader;
pub(crate) mod state;
pub(crate) mod table;
pub(crate) mod wire;
mod writer;

use std::time::Duration;

use redpepper_core::transport::{PeerInfo, Transport};

pub use broker::BrokerUrl;
pub use dialer::AmqpDialer;
pub use listener::AmqpListener;
pub use nodes::BrokerUrls;
pub use reader::AmqpReader;
pub use wire::EOF_TYPE;
pub use writer::AmqpWriter;

/// Default per-message TTL (`expiration`) of everything but the hello: a message that
/// waited this long in a queue is dropped by the broker instead of being delivered
/// after a long outage. Longer than any sensible call timeout, ping interval or
/// ping timeout.
pub const DEFAULT_MESSAGE_TTL: Duration = Duration::from_secs(60);

/// The reason of the `Bye` a manager answers a hello with when it has no room for a
/// new session (full accept backlog, or the sessions waiting in it hold their byte
/// budget). The agent sees it as a refusal; trying again later is the cure.
pub const BUSY_REASON: &str = "manager busy, try again later";

/// Default TTL of the agent's hello when `hello_timeout` is 0 (no limit).
pub const DEFAULT_HELLO_TTL: Duration = Duration::from_secs(30);

/// Default limit for connecting to the broker (TCP, TLS, AMQP login, queue set-up).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Heartbeat proposed to the broker when the URL sets none (`?heartbeat=N` wins): a
/// dead path to the broker is noticed within about two heartbeats.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 15;

/// Largest AMQP frame proposed to the broker when the URL sets none (`?frame_max=N`
/// wins). lapin keeps two buffers of 32 frames per connection, zero-filled: with
/// RabbitMQ's default of 128 KiB that is 8 MiB of memory for every agent; with this,
/// 2 MiB. Larger messages simply span more frames.
pub const DEFAULT_FRAME_MAX: u32 = 32 * 1024;

/// RabbitMQ's default `max_message_size` since 4.0 (16 MiB; 128 MiB before). A larger
/// message makes the broker close the channel, so a larger `max_message_size` is
/// logged as a warning: raise the broker's limit too.
pub const BROKER_DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Tuning of the AMQP transport. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct AmqpOptions {
    /// TTL of every message but the hello. Default [`DEFAULT_MESSAGE_TTL`].
    pub message_ttl: Duration,
    /// TTL of the agent's hello (the factory uses the agent's `hello_timeout`).
    /// Default [`DEFAULT_HELLO_TTL`].
    pub hello_ttl: Duration,
    /// Put publishing channels in confirm mode and watch every confirm (see the module
    /// docs). Default `true`.
    pub publisher_confirms: bool,
    /// Unacknowledged deliveries the broker may push to a consumer. Default 512.
    pub prefetch: u16,
    /// Limit for connecting and setting up queues. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Messages a manager-side session may have received and not yet read; a session
    /// that falls further behind is failed (it would otherwise hold up every other
    /// session on the shared consumer). Default 4096.
    pub session_buffer: usize,
    /// Bytes a manager-side session may have received and not yet read (the manager
    /// acknowledges a delivery once it is in the session's inbox); a delivery that
    /// would exceed it fails the session, with a log line naming it and the budget.
    /// `None`: `max(4 * max_message_size, 8 MiB)`.
    pub session_budget: Option<usize>,
    /// Bytes that the sessions not yet taken by `accept` may hold together (their
    /// hellos and what followed). A delivery that would exceed it fails the session it
    /// is for; a hello that would is answered with [`BUSY_REASON`].
    /// `None`: `max(8 * max_message_size, 64 MiB)`.
    pub pending_budget: Option<usize>,
    /// Sessions the manager accepts from the broker before `accept` takes them; a hello
    /// beyond is answered with [`BUSY_REASON`]. Default 1024.
    pub accept_backlog: usize,
    /// Share the hello queue with the other managers of a cluster (the factory sets
    /// it when `cluster` is configured): declared durable and not exclusive, consumed
    /// without `exclusive`, so every manager takes hellos from it (competing
    /// consumers). Default `false`: the hello queue is exclusive to this manager.
    pub shared_hello_queue: bool,
    /// Declare the hello queue as a quorum queue (`x-queue-type: quorum`,
    /// `amqp.queue_type: quorum`): replicated over the nodes of a RabbitMQ cluster, so
    /// it and the hellos in it survive the loss of a node. A quorum queue cannot be
    /// exclusive, so this implies [`shared_hello_queue`](Self::shared_hello_queue)'s
    /// flags (durable, consumed without `exclusive`). Default `false` (classic).
    pub quorum_hello_queue: bool,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        Self {
            message_ttl: DEFAULT_MESSAGE_TTL,
            hello_ttl: DEFAULT_HELLO_TTL,
            publisher_confirms: true,
            prefetch: 512,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            session_buffer: 4096,
            session_budget: None,
            pending_budget: None,
            accept_backlog: 1024,
            shared_hello_queue: false,
            quorum_hello_queue: false,
        }
    }
}

/// One session over the broker, as a [`Transport`].
#[derive(Debug)]
pub struct AmqpTransport {
    peer: PeerInfo,
    session_id: String,
    reader: AmqpReader,
    writer: AmqpWriter,
}

impl AmqpTransport {
    /// The session id carried in every message of this session (`correlation_id`).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

impl Transport for AmqpTransport {
    type Reader = AmqpReader;
    type Writer = AmqpWriter;

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    fn split(self) -> (AmqpReader, AmqpWriter) {
        (self.reader, self.writer)
    }
}

/// `d` in whole milliseconds, as AMQP's `expiration` wants it (at least 1).
fn ttl_millis(d: Duration) -> String {
    d.as_millis().clamp(1, u128::from(u32::MAX)).to_string()
}

/// Warn once per transport when `max_message_size` exceeds the broker's default limit.
fn check_max_message_size(max: usize, what: &str) {
    if max > BROKER_DEFAULT_MAX_MESSAGE_SIZE {
        tracing::warn!(
            max_message_size = max,
            broker_default = BROKER_DEFAULT_MAX_MESSAGE_SIZE,
            "{what}: max_message_size exceeds RabbitMQ's default max_message_size; the \
             broker closes the channel on a larger message: raise the broker's \
             max_message_size to at least as much"
        );
    }
}
