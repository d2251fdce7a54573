//! What the manager remembers about its fleet across restarts: the log of runs
//! (`redpepper-ctl jobs`, `job ID`) and when each agent was last seen.
//!
//! # Layout
//!
//! - [`log`]: [`JobLog`], one JSON line per finished run, rotated by size, purged by
//!   age (`command_log_*`).
//! - [`last_seen`]: [`LastSeen`], per agent id the time its session was last up, kept
//!   in memory and saved next to the job log.

pub mod last_seen;
pub mod log;

pub use last_seen::LastSeen;
pub use log::JobLog;
