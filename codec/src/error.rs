//! Codec errors.

/// What was wrong with a payload (or a message that cannot be encoded).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Placeholder until the codec is written.
    #[error("invalid message: {0}")]
    Invalid(String),
}
