//! The transports' integration tests, one binary (each test binary links the whole
//! stack: one instead of sixteen keeps the build small).
//!
//! # Layout
//! - `support`: certificates and sessions (`support`), WebSocket helpers (`support::ws`),
//!   the private RabbitMQ node (`support::amqp`).
//! - `tls`, `ws`, `amqp`: one module per transport, with submodules by feature.
//! - `factory`: the config-driven transport factory; `proxy`: HTTP CONNECT proxies.
//! - `multi`: lists of managers (`MultiDialer`), hosts with several addresses.
//! - `fuzz`: the fuzz targets' bodies on seeded random inputs (`RP_FUZZ_ITERS`).

mod support;

mod amqp;
mod factory;
mod fuzz;
mod multi;
mod proxy;
mod tls;
mod ws;
