//! `redpepper-agent`: the RedPepper agent, over any configured transport.
//!
//! # Layout
//!
//! - [`run`]: [`Agent`]: dial the manager through the transport the configuration
//!   chooses (the `redpepper-transports` factory; nothing here names a concrete
//!   transport), hello, serve, reconnect after any loss. With a list of managers
//!   (`manager_host` / `websocket.url`), one dial tries each from a random one (the
//!   transports' `MultiDialer`); the backoff runs between such rounds, and the logs
//!   name the manager that answered. With a `transport` list (`[tls, websocket,
//!   amqp]`), a round walks the entries in order and the agent moves back up to a
//!   better entry once a background probe has an authenticated session there.
//! - [`backoff`]: exponential backoff with full jitter (1 s doubling to 64 s), the
//!   first retry after a stable session spread over 10 s.
//! - [`commands`]: running commands (cancel, no duplicate ids), the outbox that keeps
//!   each result until the manager confirmed it (receipt barriers), results and
//!   progress sized to `max_message_size`.
//! - [`operations`]: RedPepper's `command` request and the operations `noop.Noop`,
//!   `echo.Echo`, `command.Run`; `state` commands (the definition asked of the
//!   manager, walked, conditions and changes tracked as RedPepper 0.3.4 does); also
//!   the `echo` method.
//! - [`error`]: the [`AgentError`] enum.
//!
//! `main.rs` only parses flags, loads the configuration, sets up logging and signals
//! ([`redpepper_config::signals`]: SIGTERM / SIGINT stop with Bye, SIGHUP is ignored)
//! and calls [`Agent::run`].

pub mod backoff;
pub mod commands;
pub mod error;
pub mod operations;
pub mod run;

pub use error::AgentError;
pub use run::Agent;
