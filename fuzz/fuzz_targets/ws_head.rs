//! Fuzz the WebSocket listener's request head (collected read by read, then answered): the body and its
//! invariants are `redpepper_transports::fuzzing::ws_head` (also run by the property
//! tests in `transports/tests/it/fuzz.rs`).
//!
//! `cargo fuzz run ws_head` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    redpepper_transports::fuzzing::ws_head(data);
});
