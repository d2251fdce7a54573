//! Fuzz the TLS transport's frame decoder: the body and its
//! invariants are `redpepper_transports::fuzzing::tls_frames` (also run by the property
//! tests in `transports/tests/it/fuzz.rs`).
//!
//! `cargo fuzz run tls_frames` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    redpepper_transports::fuzzing::tls_frames(data);
});
