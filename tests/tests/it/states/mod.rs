//! RedPepper's state flow: the manager's `custom` requests (state definitions, data,
//! data files, operation modules) and state runs.
//!
//! - `differential`: our manager's `custom` answers against the real Python
//!   manager's for the same data directories and questions.
//! - `e2e`: real processes (our programs, the Python 0.3.4 agent and manager) applying
//!   states; path traversal by an agent.

mod differential;
mod e2e;
