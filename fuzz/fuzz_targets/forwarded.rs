//! Fuzz the X-Forwarded-For / Forwarded parsers and the trusted-proxy walk: the body and its
//! invariants are `redpepper_transports::fuzzing::forwarded` (also run by the property
//! tests in `transports/tests/it/fuzz.rs`).
//!
//! `cargo fuzz run forwarded` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    redpepper_transports::fuzzing::forwarded(data);
});
