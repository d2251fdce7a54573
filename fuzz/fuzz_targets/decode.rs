//! Fuzz `redpepper_codec::decode`: any input must decode or fail cleanly (no
//! panic, no unbounded allocation); whatever decodes must re-encode, and the
//! re-encoded bytes must decode to the same message and be a fixed point.
//!
//! `cargo fuzz run decode` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redpepper_codec::{decode, encode, encoded_len};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(data) else {
        return;
    };
    let bytes = match encode(&msg) {
        Ok(bytes) => bytes,
        Err(e) => panic!("decoded message does not encode: {e}: {msg:?}"),
    };
    assert_eq!(encoded_len(&msg), bytes.len());
    let again = match decode(&bytes) {
        Ok(again) => again,
        Err(e) => panic!("re-encoded message does not decode: {e}: {msg:?}"),
    };
    // Debug, not ==: a NaN float is not equal to itself but prints the same.
    // (Debug also tells -0.0 from 0.0, which == does not.)
    assert_eq!(format!("{msg:?}"), format!("{again:?}"));
    let bytes_again = match encode(&again) {
        Ok(b) => b,
        Err(e) => panic!("second encode failed: {e}"),
    };
    assert_eq!(bytes, bytes_again, "encoding is not a fixed point");
});
