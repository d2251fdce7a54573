//! Encoding: a [`Message`] becomes a MessagePack map with string keys, `t` first,
//! then the fields in protocol order, byte for byte what RedPepper 0.3.4 writes
//! with `msgpack.packb(model.model_dump())`.
//!
//! The envelope is written directly (constant key bytes, no intermediate
//! [`Value`](crate::Value)); only `args`, `kwargs` values and `data` go through the
//! dynamic value writer. The output size is computed first so the buffer grows
//! at most once.

use crate::decode::{check_timeout, required_fields};
use crate::message::{AgentHello, ManagerHello, Notification, Request, Response};
use crate::write::{
    container_header_len, put_array_len, put_map_len, put_sint, put_str, put_value, sint_len,
    str_len, value_len,
};
use crate::{CodecError, Message, MessageType};

/// Encoded keys: a fixstr marker then the name.
mod key {
    pub(super) const ID: &[u8] = b"\xa2id";
    pub(super) const VERSION: &[u8] = b"\xa7version";
    pub(super) const CREDENTIALS: &[u8] = b"\xabcredentials";
    pub(super) const DATA: &[u8] = b"\xa4data";
    pub(super) const REASON: &[u8] = b"\xa6reason";
    pub(super) const METHOD: &[u8] = b"\xa6method";
    pub(super) const ARGS: &[u8] = b"\xa4args";
    pub(super) const KWARGS: &[u8] = b"\xa6kwargs";
    pub(super) const SUCCESS: &[u8] = b"\xa7success";
    pub(super) const TYPE: &[u8] = b"\xa4type";
    pub(super) const TIMEOUT: &[u8] = b"\xa7timeout";
}

/// Bytes of an optional Request `timeout`: the key, then a float 64 (marker and 8 bytes).
const TIMEOUT_LEN: usize = key::TIMEOUT.len() + 9;

/// Bytes of the map header plus `t` and its code: fixmap, `\xa1t`, fixint.
const HEADER_LEN: usize = 4;

/// Encode a message to a new buffer.
pub fn encode(msg: &Message) -> Result<bytes::Bytes, CodecError> {
    let mut buf = Vec::with_capacity(encoded_len(msg));
    write_message(msg, &mut buf)?;
    Ok(buf.into())
}

/// Encode a message, appending to `buf`. On error `buf` is left as it was.
pub fn encode_into(msg: &Message, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = buf.len();
    buf.reserve(encoded_len(msg));
    let result = write_message(msg, buf);
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// The number of bytes [`encode`] produces for `msg` (when it succeeds).
pub fn encoded_len(msg: &Message) -> usize {
    let body = match msg {
        Message::AgentHello(m) => {
            key::ID.len()
                + str_len(m.id.len())
                + key::VERSION.len()
                + str_len(m.version.len())
                + key::CREDENTIALS.len()
                + str_len(m.credentials.len())
        }
        Message::ManagerHello(m) => key::VERSION.len() + str_len(m.version.len()),
        Message::Ping { data } | Message::Pong { data } => key::DATA.len() + sint_len(*data),
        Message::Bye { reason } => key::REASON.len() + str_len(reason.len()),
        Message::Request(m) => {
            let args = m
                .args
                .iter()
                .fold(container_header_len(m.args.len()), |n, v| {
                    n.saturating_add(value_len(v, 1))
                });
            let kwargs = m
                .kwargs
                .iter()
                .fold(container_header_len(m.kwargs.len()), |n, (k, v)| {
                    n.saturating_add(str_len(k.len()))
                        .saturating_add(value_len(v, 1))
                });
            (key::ID.len() + str_len(m.id.len()) + key::METHOD.len() + str_len(m.method.len()))
                .saturating_add(key::ARGS.len() + args)
                .saturating_add(key::KWARGS.len() + kwargs)
                .saturating_add(if m.timeout.is_some() { TIMEOUT_LEN } else { 0 })
        }
        Message::Response(m) => {
            (key::ID.len() + str_len(m.id.len()) + key::SUCCESS.len() + 1 + key::DATA.len())
                .saturating_add(value_len(&m.data, 0))
        }
        Message::Notification(m) => (key::TYPE.len() + str_len(m.r#type.len()) + key::DATA.len())
            .saturating_add(value_len(&m.data, 0)),
    };
    HEADER_LEN.saturating_add(body)
}

/// Map header (the required fields of `ty` plus `t`), then `t` and its code.
#[inline]
fn header(buf: &mut Vec<u8>, ty: MessageType) {
    header_with(buf, ty, 0);
}

/// Map header with `optional` more entries than [`header`].
#[inline]
fn header_with(buf: &mut Vec<u8>, ty: MessageType, optional: u8) {
    // Every message has at most 5 fields, so the map is a fixmap and every code a
    // positive fixint.
    let entries = required_fields(ty) as u8 + 1 + optional;
    buf.extend_from_slice(&[0x80 | entries, 0xa1, b't', ty.code()]);
}

#[inline]
fn str_field(buf: &mut Vec<u8>, key: &[u8], value: &str) -> Result<(), CodecError> {
    buf.extend_from_slice(key);
    put_str(buf, value)
}

fn write_message(msg: &Message, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    match msg {
        Message::AgentHello(AgentHello {
            id,
            version,
            credentials,
        }) => {
            header(buf, MessageType::AgentHello);
            str_field(buf, key::ID, id)?;
            str_field(buf, key::VERSION, version)?;
            str_field(buf, key::CREDENTIALS, credentials)
        }
        Message::ManagerHello(ManagerHello { version }) => {
            header(buf, MessageType::ManagerHello);
            str_field(buf, key::VERSION, version)
        }
        Message::Ping { data } | Message::Pong { data } => {
            header(buf, msg.message_type());
            buf.extend_from_slice(key::DATA);
            put_sint(buf, *data);
            Ok(())
        }
        Message::Bye { reason } => {
            header(buf, MessageType::Bye);
            str_field(buf, key::REASON, reason)
        }
        Message::Request(Request {
            id,
            method,
            args,
            kwargs,
            timeout,
        }) => {
            if let Some(t) = timeout {
                check_timeout(*t)?;
            }
            header_with(buf, MessageType::Request, u8::from(timeout.is_some()));
            str_field(buf, key::ID, id)?;
            str_field(buf, key::METHOD, method)?;
            buf.extend_from_slice(key::ARGS);
            put_array_len(buf, args.len())?;
            for arg in args {
                put_value(buf, arg, 1)?;
            }
            buf.extend_from_slice(key::KWARGS);
            put_map_len(buf, kwargs.len())?;
            for (k, v) in kwargs {
                put_str(buf, k)?;
                put_value(buf, v, 1)?;
            }
            if let Some(t) = timeout {
                buf.extend_from_slice(key::TIMEOUT);
                buf.push(0xcb);
                buf.extend_from_slice(&t.to_be_bytes());
            }
            Ok(())
        }
        Message::Response(Response { id, success, data }) => {
            header(buf, MessageType::Response);
            str_field(buf, key::ID, id)?;
            buf.extend_from_slice(key::SUCCESS);
            buf.push(if *success { 0xc3 } else { 0xc2 });
            buf.extend_from_slice(key::DATA);
            put_value(buf, data, 0)
        }
        Message::Notification(Notification { r#type, data }) => {
            header(buf, MessageType::Notification);
            str_field(buf, key::TYPE, r#type)?;
            buf.extend_from_slice(key::DATA);
            put_value(buf, data, 0)
        }
    }
}
