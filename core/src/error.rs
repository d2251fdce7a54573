//! Errors of the transport and session layers.

use std::io;

use redpepper_codec::{CodecError, MessageType};

/// A transport failed or received something it cannot frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection is closed (cleanly, or the other half went away).
    #[error("connection closed")]
    Closed,
    /// An I/O error on the underlying socket.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing (for example "reading from 10.0.0.5:7051").
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A frame announced or carried more than `max_message_size` bytes.
    #[error("message of {len} bytes exceeds max_message_size {max}")]
    TooLarge {
        /// Announced or actual length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The peer answered with HTTP on a port that should speak RedPepper framing.
    #[error("peer sent an HTTP response where a RedPepper frame was expected: is this port serving HTTP?")]
    Http,
    /// The peer broke the transport's own rules (a text WebSocket message, a frame cut
    /// short, a foreign AMQP message, ...).
    #[error("transport protocol error: {0}")]
    Protocol(String),
    /// TLS setup or handshake failure.
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting failed (DNS, refused, proxy refused, broker refused ...).
    #[error("connect to {target}: {reason}")]
    Connect {
        /// Where we tried to connect.
        target: String,
        /// Why it failed.
        reason: String,
    },
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    /// An I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a session could not be established or why it ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The manager refused the agent (it answered Bye with this reason).
    #[error("manager refused the session: {0}")]
    Refused(String),
    /// The authenticator rejected the agent (manager side; the agent is told only
    /// "authentication failed", this carries the check that failed, for logs).
    #[error("authentication of agent {agent:?} failed: {reason}")]
    AuthFailed {
        /// The id the agent claimed.
        agent: String,
        /// The check that failed.
        reason: String,
    },
    /// The peer announced a major version we do not speak.
    #[error("incompatible {role} version {theirs} (ours is {ours})")]
    IncompatibleVersion {
        /// "manager" or "agent".
        role: &'static str,
        /// Their version string.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// No hello arrived in time.
    #[error("no {expected} within {secs:.1}s")]
    HelloTimeout {
        /// The message we waited for.
        expected: &'static str,
        /// The limit.
        secs: f64,
    },
    /// The peer sent something the protocol does not allow at that point.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A payload could not be decoded.
    #[error("bad message: {0}")]
    Codec(String),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The peer closed the connection without Bye.
    #[error("connection closed by peer")]
    PeerClosed,
    /// The peer said Bye.
    #[error("peer said bye: {0}")]
    ByeReceived(String),
    /// We said Bye (or closed locally).
    #[error("closed: {0}")]
    Closed(String),
    /// No Pong within `ping_timeout`.
    #[error("ping timeout: no pong within {secs:.1}s")]
    PingTimeout {
        /// The limit.
        secs: f64,
    },
    /// The Pong carried other data than our Ping.
    #[error("pong data mismatch: sent {sent}, got {got}")]
    PongMismatch {
        /// Ping data.
        sent: i64,
        /// Pong data.
        got: i64,
    },
    /// The peer does not read what we send while it keeps sending.
    #[error("peer is not reading: outgoing control queue full")]
    Congested,
}

impl From<TransportError> for SessionError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Closed => SessionError::PeerClosed,
            other => SessionError::Transport(other.to_string()),
        }
    }
}

impl SessionError {
    /// A decode failure, naming the payload problem.
    pub fn codec(e: CodecError) -> Self {
        SessionError::Codec(e.to_string())
    }

    /// A message that is not allowed now.
    pub fn unexpected(got: MessageType, expected: &str) -> Self {
        SessionError::Protocol(format!("expected {expected}, got {}", got.name()))
    }
}

/// A call did not produce the peer's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The peer answered success=false with this data (usually an error string).
    #[error("remote error: {0}")]
    Remote(String),
    /// No response within the call timeout.
    #[error("call `{method}` timed out after {secs:.1}s")]
    Timeout {
        /// The method called.
        method: String,
        /// The timeout.
        secs: f64,
    },
    /// The session ended before the response arrived.
    #[error("session closed before the response: {0}")]
    SessionClosed(SessionError),
    /// The request could not be encoded or is larger than `max_message_size`.
    #[error("request not sent: {0}")]
    Encode(String),
}
