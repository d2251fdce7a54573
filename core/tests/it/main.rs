//! The session layer's integration tests over the in-memory transport, one binary.
//!
//! # Layout
//! - `support`: session pairs over the in-memory transport.
//! - `handshake`, `keepalive_and_errors`, `rpc`, `deadlines`: one module per behaviour.

mod support;

mod deadlines;
mod handshake;
mod keepalive_and_errors;
mod rpc;
