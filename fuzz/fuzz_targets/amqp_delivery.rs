//! Fuzz an AMQP delivery's properties and body (envelope, session routing): the body and its
//! invariants are `redpepper_transports::fuzzing::amqp_delivery` (also run by the property
//! tests in `transports/tests/it/fuzz.rs`).
//!
//! `cargo fuzz run amqp_delivery` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    redpepper_transports::fuzzing::amqp_delivery(data);
});
