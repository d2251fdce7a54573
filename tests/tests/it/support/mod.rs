//! Shared by the tests of this binary: thin layers over
//! [`redpepper_tests::fleet::Fleet`] for what needs our library crates or is one
//! module's own.

pub mod admin;
pub mod amqp;
pub mod manager;
pub mod python;
