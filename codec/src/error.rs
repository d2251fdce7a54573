//! Codec errors: one enum, [`CodecError`], for both directions.
//!
//! Decoding errors name what was wrong and where: the message type and field when
//! one is known (`Request: field `method`: expected str, got int`), the byte offset
//! for malformed MessagePack. Errors found inside a field's value (truncation, bad
//! UTF-8, nesting too deep) are wrapped in [`CodecError::InField`] so the message
//! still says which field held them.

/// What was wrong with a payload, or why a message cannot be encoded.
///
/// Every variant is a protocol error for the peer that sent the payload: the
/// session layer logs it and closes the connection. [`CodecError::TooLong`],
/// [`CodecError::InvalidUtf8InValue`] and [`CodecError::TooDeep`] can also come
/// from [`encode()`](crate::encode()) when the application built a message that
/// MessagePack (or our decoder) cannot carry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload ended in the middle of a MessagePack item.
    #[error("truncated msgpack: {needed} more byte(s) needed at offset {offset}")]
    Truncated {
        /// Offset where the missing bytes should have started.
        offset: usize,
        /// How many bytes were missing (as announced by a length header).
        needed: usize,
    },
    /// The byte 0xc1, which MessagePack never uses, appeared as a marker.
    #[error("invalid msgpack: reserved marker 0xc1 at offset {offset}")]
    ReservedMarker {
        /// Offset of the marker.
        offset: usize,
    },
    /// A MessagePack `str` did not hold valid UTF-8.
    #[error("invalid UTF-8 in str at offset {offset}")]
    InvalidUtf8 {
        /// Offset of the first string byte.
        offset: usize,
    },
    /// Containers nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) inside one field.
    #[error("value nested deeper than {limit} levels")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The payload is not a MessagePack map.
    #[error("payload is not a map: got {got}")]
    NotAMap {
        /// The kind of item found instead (`array`, `int`, ...).
        got: &'static str,
    },
    /// A key of the message map (or of `kwargs`) is not a `str`.
    #[error("map key at offset {offset} is not a str: got {got}")]
    NonStringKey {
        /// Offset of the key.
        offset: usize,
        /// The kind of key found.
        got: &'static str,
    },
    /// The message map has no `t` key.
    #[error("missing message type key `t`")]
    MissingType,
    /// The `t` key does not hold an integer.
    #[error("message type key `t`: expected int, got {got}")]
    TypeNotInt {
        /// The kind of value found.
        got: &'static str,
    },
    /// The `t` key holds an integer that is not a known type code.
    #[error("unknown message type t={code}")]
    UnknownType {
        /// The code found.
        code: rmpv::Integer,
    },
    /// The map holds two `t` keys with different values.
    #[error("conflicting message type keys: t={first} and t={second}")]
    ConflictingType {
        /// The first code seen.
        first: u8,
        /// The later, different code.
        second: rmpv::Integer,
    },
    /// A required field is absent.
    #[error("{message}: missing field `{field}`")]
    MissingField {
        /// Message type name, e.g. `Request`.
        message: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A field holds a value of the wrong MessagePack kind.
    #[error("{message}: field `{field}`: expected {expected}, got {got}")]
    FieldType {
        /// Message type name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// What the protocol requires (`str`, `bool`, `int`, `array`, `map`).
        expected: &'static str,
        /// The kind found.
        got: &'static str,
    },
    /// An integer field holds a value that does not fit in `i64`.
    #[error("{message}: field `{field}`: {value} is out of range for i64")]
    IntOutOfRange {
        /// Message type name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A field holds a value of the right kind that the protocol does not allow (a
    /// negative or NaN Request `timeout`).
    #[error("{message}: field `{field}`: {reason}")]
    BadValue {
        /// Message type name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// Malformed MessagePack inside the value of a field.
    #[error("{message}: field `{field}`: {source}")]
    InField {
        /// Message type name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// What was wrong inside the field.
        source: Box<CodecError>,
    },
    /// Bytes left over after the message map.
    #[error("trailing bytes: {0} after message")]
    TrailingBytes(usize),
    /// A string, binary, array or map is longer than MessagePack can carry (2^32 - 1).
    #[error("cannot encode {what} of length {len}: MessagePack limit is 4294967295")]
    TooLong {
        /// `str`, `bin`, `array`, `map` or `ext`.
        what: &'static str,
        /// The length that does not fit.
        len: usize,
    },
    /// A `Value::String` built from invalid UTF-8 cannot be encoded as a `str`.
    #[error("cannot encode a Value::String holding invalid UTF-8")]
    InvalidUtf8InValue,
}

impl CodecError {
    /// Attach the message type and field name to an error found inside a field.
    pub(crate) fn in_field(self, message: &'static str, field: &'static str) -> Self {
        match self {
            // Already carries the names.
            Self::FieldType { .. }
            | Self::IntOutOfRange { .. }
            | Self::BadValue { .. }
            | Self::InField { .. } => self,
            other => Self::InField {
                message,
                field,
                source: Box::new(other),
            },
        }
    }
}
