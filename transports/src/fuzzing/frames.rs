//! The TLS transport's frame decoder.

use bytes::BytesMut;
use redpepper_core::error::TransportError;
use tokio_util::codec::Decoder;

use crate::tls::frame::{DecodeError, FrameDecoder, HEAD_LEN};

/// `max_message_size` values tried (picked by the low bits of the first byte).
const MAXES: [usize; 4] = [0, 7, 300, 1 << 16];

/// Read sizes tried (picked by the next bits of the first byte).
const CHUNKS: [usize; 8] = [1, 2, 3, 5, 64, 333, 4096, 1 << 20];

/// Feed `data[1..]` to a [`FrameDecoder`] in reads of one size, then end the stream.
///
/// Invariants: every frame is at most `max` bytes and is exactly the payload its
/// header announced at that point of the input; a `TooLarge` error names the
/// announced length, which exceeds `max`; `Http` only for input starting with `HTTP`;
/// the read buffer never holds much more than one read plus one frame.
pub fn tls_frames(data: &[u8]) -> &'static str {
    let Some((&opts, stream)) = data.split_first() else {
        return "empty";
    };
    let max = MAXES[usize::from(opts & 3)];
    let chunk = CHUNKS[usize::from((opts >> 2) & 7)];
    let mut decoder = FrameDecoder::new(max);
    let mut src = BytesMut::new();
    // Where the next frame header starts in `stream`.
    let mut offset = 0;
    let mut frames = 0;
    // Generous: BytesMut may double what it reserves; the point is that a header
    // announcing gigabytes must not allocate them.
    let bound = 2 * (max + HEAD_LEN + 2 * chunk) + 64;
    for piece in stream.chunks(chunk) {
        src.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(frame)) => {
                    check_frame(stream, &mut offset, &frame, max);
                    frames += 1;
                }
                Ok(None) => break,
                Err(e) => return check_error(stream, offset, e, max),
            }
            assert!(
                src.capacity() <= bound,
                "read buffer of {} bytes",
                src.capacity()
            );
        }
        assert!(
            src.capacity() <= bound,
            "read buffer of {} bytes",
            src.capacity()
        );
    }
    loop {
        match decoder.decode_eof(&mut src) {
            Ok(Some(frame)) => {
                check_frame(stream, &mut offset, &frame, max);
                frames += 1;
            }
            Ok(None) => break,
            Err(e) => return check_error(stream, offset, e, max),
        }
    }
    assert_eq!(offset, stream.len(), "a clean end must consume the input");
    if frames == 0 {
        "no-frame"
    } else {
        "frames"
    }
}

fn announced(stream: &[u8], offset: usize) -> Option<usize> {
    let head: [u8; HEAD_LEN] = stream.get(offset..offset + HEAD_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(head) as usize)
}

fn check_frame(stream: &[u8], offset: &mut usize, frame: &[u8], max: usize) {
    assert!(
        frame.len() <= max,
        "frame of {} bytes, max {max}",
        frame.len()
    );
    assert_eq!(announced(stream, *offset), Some(frame.len()), "at {offset}");
    let start = *offset + HEAD_LEN;
    assert_eq!(
        stream.get(start..start + frame.len()),
        Some(frame),
        "at {offset}"
    );
    *offset = start + frame.len();
}

fn check_error(stream: &[u8], offset: usize, e: DecodeError, max: usize) -> &'static str {
    match e {
        DecodeError::Frame(TransportError::TooLarge { len, max: m }) => {
            assert_eq!(m, max);
            assert!(len > max);
            assert_eq!(announced(stream, offset), Some(len));
            "too-large"
        }
        DecodeError::Frame(TransportError::Http) => {
            assert_eq!(offset, 0);
            assert!(stream.starts_with(b"HTTP"));
            "http"
        }
        DecodeError::Frame(TransportError::Protocol(why)) => {
            // Only at the end of the stream, inside a frame.
            assert!(stream.len() > offset, "{why}");
            super::bounded_text("frame error", &why);
            "truncated"
        }
        other => panic!("unexpected decoder error {other:?}"),
    }
}
