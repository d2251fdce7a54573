//! The length prefix of the TLS TCP transport, on top of tokio-util's
//! [`LengthDelimitedCodec`].
//!
//! ```text
//! +----------------+-----------------------------------+
//! | len: u32, BE   | payload: `len` bytes (MessagePack) |
//! +----------------+-----------------------------------+
//!   4 bytes          0 ..= max_message_size bytes
//! ```
//!
//! [`codec`] configures the codec explicitly (length field at offset 0, four bytes,
//! big-endian, no adjustment, header skipped on decode, `max_frame_length =
//! max_message_size`). [`FrameDecoder`] wraps it to give two answers the plain codec
//! cannot: the announced length of a frame that is too large
//! ([`TransportError::TooLarge`], decided from the 4-byte header alone, before any of
//! the body is read) and a stream that starts with `HTTP` ([`TransportError::Http`]).
//! The limit it checks is a [`ReadLimit`] the session lowers to
//! `HELLO_FRAME_LIMIT` (16 KiB) until the peer's hello is accepted.

use std::io;

use bytes::BytesMut;
use redpepper_core::error::TransportError;
use redpepper_core::transport::ReadLimit;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// Size of the length prefix.
pub(crate) const HEAD_LEN: usize = 4;

/// The length-delimited codec for `max_message_size`, configured field by field.
///
/// `max` above `u32::MAX` is clamped: the 4-byte prefix cannot announce more.
pub(crate) fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_type::<u32>()
        .big_endian()
        .length_adjustment(0)
        .num_skip(HEAD_LEN)
        .max_frame_length(clamp_max(max))
        .new_codec()
}

/// `max` limited to what a 4-byte length can announce.
pub(crate) fn clamp_max(max: usize) -> usize {
    max.min(u32::MAX as usize)
}

/// Why decoding stopped: the socket failed, or the bytes broke the framing rules.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// Reading from the TLS stream failed.
    Io(io::Error),
    /// The bytes are not acceptable frames.
    Frame(TransportError),
}

impl From<io::Error> for DecodeError {
    fn from(e: io::Error) -> Self {
        DecodeError::Io(e)
    }
}

/// Splits the plaintext stream into payloads; checks each header before its body.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    codec: LengthDelimitedCodec,
    /// The largest payload accepted now: `max_message_size`, lowered by the session
    /// until the peer's hello is accepted. The inner codec keeps the full maximum.
    limit: ReadLimit,
    /// The next bytes are a header (the inner codec is not in the middle of a body).
    at_head: bool,
    /// No frame header has been accepted yet (the `HTTP` check applies).
    first: bool,
}

impl FrameDecoder {
    /// A decoder accepting payloads of at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            codec: codec(max),
            limit: ReadLimit::new(clamp_max(max)),
            at_head: true,
            first: true,
        }
    }

    /// The limit this decoder applies, shared with whoever may change it.
    pub(crate) fn limit(&self) -> &ReadLimit {
        &self.limit
    }

    /// Whether no frame header has been accepted yet.
    pub(crate) fn first(&self) -> bool {
        self.first
    }

    /// Whether the decoder stands between frames (an end of stream here is clean).
    pub(crate) fn at_frame_boundary(&self) -> bool {
        self.at_head
    }
}

impl Decoder for FrameDecoder {
    type Item = BytesMut;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, DecodeError> {
        if self.at_head {
            let Some(head) = src.get(..HEAD_LEN) else {
                return Ok(None);
            };
            if self.first && head == b"HTTP" {
                return Err(DecodeError::Frame(TransportError::Http));
            }
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let max = self.limit.get();
            if len > max {
                return Err(DecodeError::Frame(TransportError::TooLarge { len, max }));
            }
            self.first = false;
        }
        // With at least a whole header in `src` the inner codec either returns the
        // frame or consumes the header and waits for the body; in the middle of a body
        // it returns the frame once complete. Either way a returned frame means the
        // next bytes are a header again.
        let frame = self.codec.decode(src)?;
        self.at_head = frame.is_some();
        Ok(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, DecodeError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if self.at_head && src.is_empty() => Ok(None),
            None => Err(DecodeError::Frame(TransportError::Protocol(format!(
                "connection closed in the middle of a frame ({} bytes of it received)",
                src.len()
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::{BufMut, Bytes};
    use tokio_util::codec::Encoder;

    use super::*;

    fn frame(payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32(payload.len() as u32);
        b.put_slice(payload);
        b
    }

    #[test]
    fn decodes_whole_and_split_frames() {
        let mut d = FrameDecoder::new(16);
        let mut src = frame(b"abc");
        src.extend_from_slice(&frame(b"")[..]);
        src.extend_from_slice(&frame(b"0123456789")[..6]);
        assert_eq!(&d.decode(&mut src).unwrap().unwrap()[..], b"abc");
        assert_eq!(&d.decode(&mut src).unwrap().unwrap()[..], b"");
        assert!(d.decode(&mut src).unwrap().is_none());
        assert!(!d.at_frame_boundary());
        src.extend_from_slice(b"23456789");
        assert_eq!(&d.decode(&mut src).unwrap().unwrap()[..], b"0123456789");
        assert!(d.at_frame_boundary());
    }

    #[test]
    fn exact_max_is_accepted_one_more_is_rejected_from_the_header() {
        let mut d = FrameDecoder::new(8);
        let mut src = frame(&[7u8; 8]);
        assert_eq!(d.decode(&mut src).unwrap().unwrap().len(), 8);
        // Only the header of a 9-byte frame: rejected without waiting for the body.
        let mut src = BytesMut::from(&9u32.to_be_bytes()[..]);
        match d.decode(&mut src) {
            Err(DecodeError::Frame(TransportError::TooLarge { len: 9, max: 8 })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_lowered_limit_applies_from_the_next_header() {
        let mut d = FrameDecoder::new(1 << 20);
        d.limit().set(16);
        let mut src = frame(&[1u8; 16]);
        assert_eq!(d.decode(&mut src).unwrap().unwrap().len(), 16);
        let mut src = BytesMut::from(&17u32.to_be_bytes()[..]);
        match d.decode(&mut src) {
            Err(DecodeError::Frame(TransportError::TooLarge { len: 17, max: 16 })) => {}
            other => panic!("unexpected {other:?}"),
        }
        let mut d = FrameDecoder::new(1 << 20);
        d.limit().set(16);
        d.limit().set(1 << 20);
        let mut src = frame(&[1u8; 1000]);
        assert_eq!(d.decode(&mut src).unwrap().unwrap().len(), 1000);
    }

    #[test]
    fn http_is_recognised_only_at_the_start() {
        let mut d = FrameDecoder::new(1 << 20);
        let mut src = BytesMut::from(&b"HTT"[..]);
        assert!(d.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(b"P/1.1 400 Bad Request\r\n");
        assert!(matches!(
            d.decode(&mut src),
            Err(DecodeError::Frame(TransportError::Http))
        ));
        let mut d = FrameDecoder::new(u32::MAX as usize);
        let mut src = frame(b"x");
        src.extend_from_slice(b"HTTP");
        assert!(d.decode(&mut src).unwrap().is_some());
        // "HTTP" later is just a (huge) length.
        assert!(d.decode(&mut src).unwrap().is_none());
    }

    #[test]
    fn eof_inside_a_frame_is_an_error_between_frames_is_clean() {
        let mut d = FrameDecoder::new(16);
        let mut src = BytesMut::new();
        assert!(d.decode_eof(&mut src).unwrap().is_none());
        let mut src = BytesMut::from(&frame(b"abcdef")[..5]);
        assert!(matches!(
            d.decode_eof(&mut src),
            Err(DecodeError::Frame(TransportError::Protocol(_)))
        ));
    }

    #[test]
    fn encoder_writes_header_and_payload_contiguously() {
        let mut c = codec(16);
        let mut dst = BytesMut::new();
        c.encode(Bytes::from_static(b"hey"), &mut dst).unwrap();
        assert_eq!(&dst[..], b"\0\0\0\x03hey");
    }
}
