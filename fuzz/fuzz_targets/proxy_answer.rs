//! Fuzz the HTTP CONNECT proxy answer reader: the body and its
//! invariants are `redpepper_transports::fuzzing::proxy_answer` (also run by the property
//! tests in `transports/tests/it/fuzz.rs`).
//!
//! `cargo fuzz run proxy_answer` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    redpepper_transports::fuzzing::proxy_answer(data);
});
