//! RedPepper message model and MessagePack encoding.
//!
//! # Layout
//!
//! - [`message`] holds the [`Message`] enum and one struct per message type, exactly as
//!   `docs/PROTOCOL.md` lists them (type codes 10–14 and 20–22).
//! - `encode`: [`encode()`] / [`encode_into`] write a message as a MessagePack map with
//!   string keys, `t` first, then the fields in protocol order (the bytes RedPepper's
//!   Python encoder writes for the same message); [`encoded_len`] sizes it.
//! - `decode`: [`decode()`] reads one whole payload; any key order, unknown keys ignored,
//!   anything else wrong is a [`CodecError`] naming it.
//! - `write` / `read`: MessagePack primitives and dynamic [`Value`]s over a `Vec<u8>`
//!   / a byte slice. The envelope never goes through a [`Value`].
//! - `value`: [`encode_value`] / [`decode_value`]: one dynamic [`Value`] as a whole
//!   document, with the same limits (the manager cluster's messages).
//! - [`error`] holds [`CodecError`].
//! - [`corpus`]: the messages both benchmarks time (not used on the wire path).
//! - [`python`]: Python's `str()`/`repr()`, truth and type names of values, as RedPepper's
//!   texts print them (the manager's `custom` answers and the agent's state output).
//!
//! One encoder, one decoder: the envelope never becomes a dynamic value (constant key
//! bytes out, keys matched as bytes in), the output is sized first and allocated once,
//! fields are decoded in one pass.
//!
//! Not rmp-serde, as the design had it: serde impls through it encoded a `command` Request
//! 2.5x slower (782 ns vs 312; decode on par), and MessagePack both ways is part of the gap
//! between one TLS session's 251k calls/s and the raw echo's 375k (docs/PERFORMANCE.md).
//!
//! Decoding never panics and never allocates more than the payload can justify:
//! lengths are checked against the bytes present, containers preallocate a bounded
//! number of slots and nest at most [`MAX_DEPTH`] levels.
//!
//! ```
//! use redpepper_codec::{decode, encode, Message};
//!
//! let bytes = encode(&Message::Ping { data: 482913 })?;
//! assert_eq!(&bytes[..4], b"\x82\xa1t\x0c"); // {"t": 12, ...
//! assert_eq!(decode(&bytes)?, Message::Ping { data: 482913 });
//! # Ok::<(), redpepper_codec::CodecError>(())
//! ```
//!
//! The codec sees whole payloads only. Framing (the 4-byte length prefix of TLS TCP)
//! belongs to the transport that needs it; `docs/PROTOCOL.md` describes both.

pub mod corpus;
pub mod error;
pub mod message;
pub mod python;

mod decode;
mod encode;
mod peek;
mod read;
mod value;
mod write;

pub use decode::decode;
pub use encode::{encode, encode_into, encoded_len};
pub use error::CodecError;
pub use message::{
    AgentHello, Kwargs, ManagerHello, Message, MessageType, Notification, Request, Response, Value,
};
pub use peek::peek_type;
pub use value::{decode_value, encode_value};

/// Most containers (arrays, maps) nested inside one field value, counting `args`
/// and `kwargs` themselves. Deeper payloads are refused with
/// [`CodecError::TooDeep`] (and such messages are not encoded either), which
/// keeps decoding's recursion bounded.
pub const MAX_DEPTH: usize = 128;
