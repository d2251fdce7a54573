//! RedPepper message model and MessagePack encoding.
//!
//! # Layout
//!
//! - [`message`]: the [`Message`] enum and one struct per message type, exactly as
//!   `PROTOCOL.md` lists them (type codes 10–14 and 20–22).
//! - `encode`: [`encode`] / [`encode_into`] write a message as a MessagePack map with
//!   string keys, `t` first, then the fields in protocol order (the bytes RedPepper's
//!   Python encoder writes for the same message).
//! - `decode`: [`decode`] reads one whole payload; any key order, unknown keys ignored,
//!   anything else wrong is a [`CodecError`] naming it.
//! - [`error`]: [`CodecError`].
//!
//! The codec sees whole payloads only. Framing (the 4-byte length prefix of TLS TCP)
//! belongs to the transport that needs it.

pub mod error;
pub mod message;

mod decode;
mod encode;

pub use decode::decode;
pub use encode::{encode, encode_into};
pub use error::CodecError;
pub use message::{
    AgentHello, Kwargs, ManagerHello, Message, MessageType, Notification, Request, Response,
    Value,
};
