//! The agent's integration tests, one binary.
//!
//! # Layout
//! - `delivery`: command results kept until the manager confirmed them (outbox and
//!   receipt barrier over the in-memory transport), cut to `max_message_size`,
//!   duplicate ids refused, `cancel`.
//! - `managers`: a list of managers over real TLS (the dead one skipped).

mod delivery;
mod managers;
