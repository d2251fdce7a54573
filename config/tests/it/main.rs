//! The configuration's integration tests, one binary.
//!
//! # Layout
//! - `support`: temporary config files.
//! - `agent`, `manager`, `agents_file`, `layering`, `commands`: one module per file kind or behaviour.

mod support;

mod agent;
mod agents_file;
mod commands;
mod layering;
mod manager;
