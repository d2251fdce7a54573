//! End-to-end tests, one binary: our built programs, real services (RabbitMQ, nginx,
//! tinyproxy) and the real Python RedPepper 0.3.4 as processes.
//!
//! # Layout
//! - `support`: thin layers over `redpepper_tests::fleet::Fleet` shared by the modules
//!   (what needs our library crates, the admin fleet shared by the `admin` tests).
//! - `admin`, `amqp`, `brokers`, `cluster`, `console`, `deadlines`, `delivery`, `demo`,
//!   `fallback`, `faults`, `interop`, `operate`, `packages`, `python_peers`, `signals`,
//!   `states`, `websocket`: one module per feature.

mod support;

mod admin;
mod amqp;
mod brokers;
mod cluster;
mod console;
mod deadlines;
mod delivery;
mod demo;
mod fallback;
mod faults;
mod interop;
mod operate;
mod packages;
mod python_peers;
mod signals;
mod states;
mod websocket;
