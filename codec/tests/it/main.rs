//! The codec's integration tests, one binary.
//!
//! # Layout
//! - `golden`: the golden vectors (`tests/golden/vectors.txt`) both ways.
//! - `roundtrip`, `errors`: encode/decode round trips and malformed input.

mod errors;
mod golden;
mod roundtrip;
