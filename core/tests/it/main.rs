//! The session layer's integration tests over the in-memory transport, one binary.
//!
//! # Layout
//! - `support`: session pairs over the in-memory transport.
//! - `barrier`, `deadlines`, `handshake`, `idle`, `keepalive_and_errors`, `rpc`: one
//!   module per behaviour.

mod support;

mod barrier;
mod deadlines;
mod handshake;
mod idle;
mod keepalive_and_errors;
mod rpc;
