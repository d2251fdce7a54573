use crate::{CodecError, Message};

/// Decode one whole payload.
pub fn decode(_bytes: &[u8]) -> Result<Message, CodecError> {
    Err(CodecError::Invalid("decoder not written yet".into()))
}
