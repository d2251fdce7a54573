//! One dynamic [`Value`] as a whole MessagePack document, with the protocol's limits
//! (depth, lengths checked against the bytes present): for formats built on the
//! protocol's values, such as the manager cluster's messages.

use crate::read::Reader;
use crate::write::{put_value, value_len};
use crate::{CodecError, Value};

/// Encode `value` as one MessagePack document.
pub fn encode_value(value: &Value) -> Result<Vec<u8>, CodecError> {
    let mut buf = Vec::with_capacity(value_len(value, 0));
    put_value(&mut buf, value, 0)?;
    Ok(buf)
}

/// Decode one MessagePack document into a [`Value`]; bytes left over are an error.
pub fn decode_value(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut r = Reader::new(bytes);
    let v = r.value(0)?;
    if r.remaining() != 0 {
        return Err(CodecError::TrailingBytes(r.remaining()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_value_round_trips_and_trailing_bytes_are_refused() {
        let v = Value::Map(vec![(Value::from("k"), Value::Array(vec![Value::from(1)]))]);
        let mut bytes = encode_value(&v).unwrap();
        assert_eq!(decode_value(&bytes).unwrap(), v);
        bytes.push(0xc0);
        assert!(decode_value(&bytes).is_err());
    }
}
