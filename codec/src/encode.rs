use crate::{CodecError, Message};

/// Encode a message to a new buffer.
pub fn encode(msg: &Message) -> Result<bytes::Bytes, CodecError> {
    let mut buf = Vec::with_capacity(64);
    encode_into(msg, &mut buf)?;
    Ok(buf.into())
}

/// Encode a message, appending to `buf`.
pub fn encode_into(_msg: &Message, _buf: &mut Vec<u8>) -> Result<(), CodecError> {
    Err(CodecError::Invalid("encoder not written yet".into()))
}
