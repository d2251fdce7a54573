//! The agent's integration tests, one binary.
//!
//! # Layout
//! - `delivery`: command results kept until the manager confirmed them (outbox and
//!   receipt barrier over the in-memory transport), cut to `max_message_size`,
//!   duplicate ids refused, `cancel`.
//! - `fallback`: a `transport` list over the in-memory transport: the walk down, a
//!   refusal ending the round, the move back up without a gap.
//! - `managers`: a list of managers over real TLS (the dead one skipped).
//! - `raw`: the manager end of an in-memory connection, driven by hand.

mod delivery;
mod fallback;
mod managers;
mod raw;

/// Generous limit for anything a test waits on.
const WAIT: std::time::Duration = std::time::Duration::from_secs(120);
