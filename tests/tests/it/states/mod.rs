//! RedPepper's state flow: the manager's `custom` requests over a data directory, and
//! agents applying states.
//!
//! - `e2e`: real processes (our programs, the Python 0.3.4 agent and manager).

mod e2e;
