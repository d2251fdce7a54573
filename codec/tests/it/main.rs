//! The codec's integration tests, one binary.
//!
//! # Layout
//! - `golden`: the golden vectors (`tests/golden/vectors.txt`) both ways.
//! - `roundtrip`: generated messages round trip, and their bytes are what an independent
//!   MessagePack implementation (rmpv) writes and reads for the same map.
//! - `errors`: malformed input, every error with its text.

mod errors;
mod golden;
mod roundtrip;
