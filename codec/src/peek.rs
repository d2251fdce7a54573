//! The type of a payload without decoding it: find `t` in the top-level map, skipping
//! every other value unread (skipping allocates nothing).
//!
//! Before a peer is authenticated the manager decodes nothing but an `AgentHello`;
//! [`peek_type`] lets it refuse anything else having looked at the keys only.

use crate::decode::{key_len, read_type};
use crate::read::{kind, Reader};
use crate::{CodecError, MessageType};

/// The message type of one whole payload, read from its `t` key; the values of the
/// other keys are skipped, not decoded. The first `t` wins (a full [`decode`](crate::decode)
/// still refuses a payload whose `t` repeats with another code).
pub fn peek_type(bytes: &[u8]) -> Result<MessageType, CodecError> {
    let mut r = Reader::new(bytes);
    let (marker, _) = r.marker()?;
    let Some(entries) = r.map_len(marker)? else {
        return Err(CodecError::NotAMap { got: kind(marker) });
    };
    for _ in 0..entries {
        let len = key_len(&mut r)?;
        if r.take(len)? == b"t" {
            return read_type(&mut r);
        }
        r.skip_value()?;
    }
    Err(CodecError::MissingType)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{encode, AgentHello, Message};

    #[test]
    fn finds_t_first_or_after_other_keys() {
        let hello = Message::AgentHello(AgentHello {
            id: "a".into(),
            version: "0.3.4".into(),
            credentials: "s".into(),
        });
        assert_eq!(
            peek_type(&encode(&hello).unwrap()).unwrap(),
            MessageType::AgentHello
        );
        // {"data": [1, 2], "t": 12}
        let late = b"\x82\xa4data\x92\x01\x02\xa1t\x0c";
        assert_eq!(peek_type(late).unwrap(), MessageType::Ping);
    }

    #[test]
    fn refuses_what_is_not_a_typed_map() {
        assert!(matches!(
            peek_type(b"\x92\x01\x02"),
            Err(CodecError::NotAMap { .. })
        ));
        assert!(matches!(
            peek_type(b"\x81\xa1x\x01"),
            Err(CodecError::MissingType)
        ));
        assert!(matches!(
            peek_type(b"\x81\xa1t\x63"),
            Err(CodecError::UnknownType { .. })
        ));
        // A huge announced string before `t`: truncated, nothing allocated.
        assert!(matches!(
            peek_type(b"\x82\xa1x\xdb\xff\xff\xff\xff"),
            Err(CodecError::Truncated { .. })
        ));
    }
}
