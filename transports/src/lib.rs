//! RedPepper's transports: concrete [`Transport`](redpepper_core::transport::Transport)
//! implementations, and the factory that builds the configured one.
//!
//! # Layout
//!
//! ```text
//! lib.rs        this overview, re-exports
//! error.rs      TransportsError: building a transport from configuration failed
//! factory.rs    AgentConfig -> Box<dyn Dialer>, ManagerConfig -> Vec<BoxListener>
//! tls/          the TLS TCP transport (RedPepper's own, wire compatible)
//!   mod.rs        TlsTransport (connect / accept over any byte stream)
//!   frame.rs      the 4-byte big-endian length prefix on LengthDelimitedCodec
//!   halves.rs     TlsReader (Stream) / TlsWriter (Sink): one frame per TLS record,
//!                 one socket write per flushed batch
//!   net.rs        TlsDialer (agent), TlsListener (manager)
//!   context.rs    rustls ServerConfig / ClientConfig from the tls_* settings
//!   files.rs      certificate, key and CA files (permissions, encrypted keys)
//!   verify.rs     relaxed server verifiers, client certificate subject
//! proxy/        HTTP CONNECT tunnelling and curl-style proxy environment rules
//! devcerts.rs   development-only CA, manager and agent certificates (rcgen)
//! ```
//!
//! Errors on a connection are [`redpepper_core::error::TransportError`]; errors while
//! building from configuration are [`TransportsError`]. TLS uses rustls with the ring
//! provider, passed explicitly to every configuration.

/// TLS acceptor for the manager's admin HTTP listener (admin API work; not a transport).
pub mod admin_tls;
pub mod devcerts;
mod error;
pub mod factory;
pub mod proxy;
pub mod tls;

pub use error::TransportsError;
pub use factory::{dialer, listeners};
pub use tls::{TlsDialer, TlsListener, TlsTransport};
