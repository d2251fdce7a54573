//! The RedPepper message model: one enum, one struct per message type.
//!
//! Field names, types and order follow `docs/PROTOCOL.md`; the type code lives in the
//! `t` key of the encoded map (see [`MessageType`]).

pub use rmpv::Value;

/// Keyword arguments: a MessagePack map with string keys, in the sender's order.
///
/// Kept as an ordered list (not a hash map) so that re-encoding a decoded message
/// yields the same bytes and so that our encoding matches Python dict order.
pub type Kwargs = Vec<(String, Value)>;

/// Type codes carried in the `t` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Agent → manager, first message of a session.
    AgentHello = 10,
    /// Manager → agent, accepts the hello.
    ManagerHello = 11,
    /// Keepalive probe.
    Ping = 12,
    /// Keepalive answer.
    Pong = 13,
    /// Orderly close.
    Bye = 14,
    /// RPC call.
    Request = 20,
    /// RPC answer.
    Response = 21,
    /// Fire-and-forget event.
    Notification = 22,
}

impl MessageType {
    /// The type for a wire code, if it is one we know.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            10 => Self::AgentHello,
            11 => Self::ManagerHello,
            12 => Self::Ping,
            13 => Self::Pong,
            14 => Self::Bye,
            20 => Self::Request,
            21 => Self::Response,
            22 => Self::Notification,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The protocol name of this type, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::AgentHello => "AgentHello",
            Self::ManagerHello => "ManagerHello",
            Self::Ping => "Ping",
            Self::Pong => "Pong",
            Self::Bye => "Bye",
            Self::Request => "Request",
            Self::Response => "Response",
            Self::Notification => "Notification",
        }
    }
}

/// `t = 10`: the agent introduces itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHello {
    /// Agent id, `[A-Za-z0-9_-]+`.
    pub id: String,
    /// Agent software version, e.g. `0.3.4`.
    pub version: String,
    /// The agent secret (the manager compares its SHA-256).
    pub credentials: String,
}

/// `t = 11`: the manager accepts the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerHello {
    /// Manager software version.
    pub version: String,
}

/// `t = 20`: call `method` on the peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Unique per connection per sender.
    pub id: String,
    /// Method name.
    pub method: String,
    /// Positional arguments (Python peers accept strings only here).
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Kwargs,
    /// Our extension: seconds the caller waits for the answer (key `timeout`, a float,
    /// written after `kwargs` and only when set). The receiver may cancel the handler
    /// once it passes; RedPepper 0.3.4 ignores the key.
    pub timeout: Option<f64>,
}

/// `t = 21`: the answer to a [`Request`] with the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Id of the request this answers.
    pub id: String,
    /// Whether the call succeeded.
    pub success: bool,
    /// Return value, or an error string when `success` is false.
    pub data: Value,
}

/// `t = 22`: fire-and-forget event.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Event type, e.g. `command_result`.
    pub r#type: String,
    /// Event payload.
    pub data: Value,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `t = 10`.
    AgentHello(AgentHello),
    /// `t = 11`.
    ManagerHello(ManagerHello),
    /// `t = 12`: `data` is echoed back in the Pong.
    Ping {
        /// Opaque integer chosen by the pinger.
        data: i64,
    },
    /// `t = 13`.
    Pong {
        /// The `data` of the Ping this answers.
        data: i64,
    },
    /// `t = 14`.
    Bye {
        /// Human-readable reason.
        reason: String,
    },
    /// `t = 20`.
    Request(Request),
    /// `t = 21`.
    Response(Response),
    /// `t = 22`.
    Notification(Notification),
}

impl Message {
    /// The type of this message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::AgentHello(_) => MessageType::AgentHello,
            Self::ManagerHello(_) => MessageType::ManagerHello,
            Self::Ping { .. } => MessageType::Ping,
            Self::Pong { .. } => MessageType::Pong,
            Self::Bye { .. } => MessageType::Bye,
            Self::Request(_) => MessageType::Request,
            Self::Response(_) => MessageType::Response,
            Self::Notification(_) => MessageType::Notification,
        }
    }
}
