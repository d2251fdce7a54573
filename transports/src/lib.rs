//! RedPepper's transports: concrete [`Transport`](redpepper_core::transport::Transport)
//! implementations, and the factory that builds the configured one.
//!
//! # Layout
//!
//! ```text
//! lib.rs        this overview, re-exports
//! error.rs      TransportsError: building a transport from configuration failed
//! factory.rs    AgentConfig -> Box<dyn Dialer>, ManagerConfig -> Vec<BoxListener>,
//!               ManagerConfig -> Arc<dyn ClusterLink> (cluster_link)
//! multi.rs      MultiDialer: a list of managers, tried in turn from a random one
//! addrs.rs      every address of one host name, in turn (TLS and WebSocket dialers)
//! tls/          the TLS TCP transport (RedPepper's own, wire compatible)
//!   mod.rs        TlsTransport (connect / accept over any byte stream)
//!   coalesce.rs   Coalesce: the write buffer that grows with traffic
//!   frame.rs      the 4-byte big-endian length prefix on LengthDelimitedCodec
//!   halves.rs     TlsReader (Stream) / TlsWriter (Sink): one frame per TLS record,
//!                 one socket write per flushed batch
//!   net.rs        TlsDialer (agent), TlsListener (manager)
//!   context.rs    rustls ServerConfig / ClientConfig from the tls_* settings
//!   files.rs      certificate, key and CA files (permissions, encrypted keys)
//!   verify.rs     relaxed server verifiers, client certificate subject
//! ws/           the WebSocket transport (ws, wss, reverse proxies, HTTP CONNECT proxies)
//!   mod.rs        WsTransport, buffer sizes and limits
//!   halves.rs     WsReader (Stream) / WsWriter (Sink): one binary message per payload
//!   accept.rs     manager side: TLS, HTTP request, upgrade or plain-text refusal
//!   head.rs       HeadBuf: the request head, parsed only once it can be complete
//!   forwarded.rs  client address from X-Forwarded-For / Forwarded of trusted proxies
//!   listener.rs   WsListener
//!   url.rs        WsUrl (websocket.url), proxy choice (explicit, environment, NO_PROXY)
//!   dial.rs       WsDialer: TCP or proxy tunnel, TLS, upgrade
//!   io.rs         WsIo: TCP or TLS under the WebSocket layer, write-stall tracking
//! amqp/         the AMQP transport: sessions routed through a RabbitMQ broker
//!   mod.rs        topology, message properties, AmqpTransport, AmqpOptions
//!   broker.rs     BrokerUrl, connecting (amqps via our rustls configuration)
//!   dialer.rs     AmqpDialer (agent); listener.rs AmqpListener (manager, reconnects)
//!   reader.rs / writer.rs / state.rs / table.rs / wire.rs  the session plumbing
//!   budget.rs     byte budgets: per session, and for sessions not yet accepted
//!   quiet.rs      rate-limited warnings for what any broker user can provoke
//!   backoff.rs    reconnection delays of the manager's broker links
//!   cluster/      AmqpClusterLink: the manager cluster's link between nodes
//!                 (redpepper_cluster::ClusterLink over the broker)
//! proxy/        HTTP CONNECT tunnelling and curl-style proxy environment rules
//! devcerts.rs   development-only CA, manager and agent certificates (rcgen)
//! fuzzing/      entry points of the fuzz targets and property tests (hidden, not a
//!               stable API): one per parser of peer-controlled bytes
//! ```
//!
//! Errors on a connection are [`redpepper_core::error::TransportError`]; errors while
//! building from configuration are [`TransportsError`]. TLS uses rustls with the ring
//! provider, passed explicitly to every configuration.

mod addrs;
/// TLS acceptor for the manager's admin HTTP listener (admin API work; not a transport).
pub mod admin_tls;
pub mod amqp;
pub mod devcerts;
mod error;
pub mod factory;
#[doc(hidden)]
pub mod fuzzing;
pub mod multi;
pub mod proxy;
pub mod tls;
pub mod ws;

pub use amqp::{AmqpDialer, AmqpListener, AmqpTransport};
pub use error::TransportsError;
pub use factory::{cluster_link, dialer, dialer_for, dialers, listeners};
pub use multi::MultiDialer;
pub use tls::{TlsDialer, TlsListener, TlsTransport};
pub use ws::{WsDialer, WsListener, WsTransport};
