//! RedPepper's state flow: the manager's `custom` requests (state definitions, data,
//! data files, operation modules) and state runs.
//!
//! - `differential`: our manager's `custom` answers against the real Python
//!   manager's for the same data directories and questions.

mod differential;
