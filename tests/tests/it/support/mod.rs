//! Shared by the tests of this binary.

pub mod admin;
pub mod amqp;
pub mod websocket;
