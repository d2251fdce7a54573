//! RedPepper's session layer over pluggable transports.
//!
//! # Layout
//!
//! - [`transport`]: the [`Transport`] trait (a reading half and a writing half of whole
//!   payloads, plus [`PeerInfo`]), its boxed form [`BoxTransport`], and the [`Dialer`]
//!   and [`Listener`] traits that make and accept connections.
//! - [`memory`]: an in-memory transport pair for tests.
//! - [`session`]: the protocol itself: the hello handshake for both roles
//!   ([`Session::connect`], [`Session::accept`]), keepalive, calls both ways with ids
//!   and timeouts, notifications, Bye; [`Handler`], [`Router`] and [`Authenticator`] are
//!   what the owner plugs in.
//! - [`metrics`]: lock-free counters and histograms sessions update, rendered in the
//!   Prometheus text format.
//! - [`quiet`]: [`LogLimit`](quiet::LogLimit), rate-limited log lines for what a peer
//!   can provoke at will (used by the session layer, the transports and the manager).
//! - [`error`]: [`TransportError`], [`SessionError`], [`CallError`].
//!
//! Nothing here opens a socket: concrete transports live in `redpepper-transports`.

pub mod error;
pub mod memory;
pub mod metrics;
pub mod quiet;
pub mod session;
pub mod transport;

pub use error::{CallError, SessionError, TransportError};
pub use redpepper_codec as codec;
pub use redpepper_codec::{Kwargs, Notification, Request, Value};
pub use session::{
    echo_reply, valid_agent_id, Authenticator, CallContext, Event, Handler, HandlerError,
    PeerHello, Role, Router, Session, SessionConfig, AUTH_FAILED, VERSION,
};
pub use transport::{
    BoxListener, BoxTransport, Connecting, Dialer, Incoming, Listener, PeerInfo, ReadLimit,
    Transport, TransportKind,
};
