//! The configuration's integration tests, one binary.
//!
//! # Layout
//! - `support`: temporary config files.
//! - `agent`, `manager`, `agents_file`, `layering`, `commands`: one module per file kind or behaviour.
//! - `manager_list`: the agent's `manager_host` / `websocket.url` lists (a cluster).

mod support;

mod agent;
mod agents_file;
mod commands;
mod layering;
mod manager;
mod manager_list;
