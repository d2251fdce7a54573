//! `redpepper-manager`: the RedPepper manager, serving agents over every configured
//! transport at once.
//!
//! # Layout
//!
//! - [`run`](mod@run): [`run()`]: the program's start / serve / shutdown sequence
//!   (listeners, admin API, Bye on shutdown); `main.rs` only parses flags, loads the
//!   configuration, sets up logging and signals ([`redpepper_config::signals`]) and
//!   calls it.
//! - [`server`]: [`Manager`]: binds the listeners the configuration asks for (through the
//!   `redpepper-transports` factory: nothing here names a concrete transport), accepts
//!   and authenticates agents, keeps one session per agent id (the newest wins), calls
//!   agents, runs RedPepper commands, shuts down with Bye.
//! - [`accept`]: the accept loops and each connection's way to an authenticated
//!   session.
//! - [`admission`]: the caps on connections not yet authenticated (per address, per
//!   /24 or /64, in total with the oldest evicted; AMQP's own budget).
//! - [`auth`]: [`RegistryAuthenticator`]: `agents.yml` checks (secret hash in constant
//!   time, allowed IPs, broker user), re-read when the file changes.
//! - [`cluster`]: the manager's side of a cluster: [`cluster::NodeInfo`], membership,
//!   directory and routing over a [`redpepper_cluster::ClusterLink`].
//! - [`check`]: `--check-config`: load and check everything, print the effective
//!   configuration (secrets redacted).
//! - [`revoke`]: connected agents re-checked against agents.yml (at reload and when
//!   the file changes) and disconnected with Bye "revoked"; [`Manager::disconnect`].
//! - [`reload`]: [`reload::Reloader`]: what SIGHUP re-reads (agents.yml, TLS
//!   certificates, the admin token, the log level) and what needs a restart.
//! - [`agents`]: the table of connected agents and [`AgentInfo`].
//! - [`commands`]: `command` requests and the `command_progress` / `command_result`
//!   notifications routed back to the caller.
//! - [`admin`]: the admin HTTP API ([`admin::AdminServer`]): agents, calls,
//!   broadcasts, operations with progress, notifications, server-sent events,
//!   Prometheus `/metrics`; bearer token, optional TLS.
//! - [`data`]: the answers to agents' `custom` requests (state definitions, data,
//!   data files, operation modules) from the data directory, as the Python manager
//!   gives them; [`CustomRequests`] for requests answered by Rust code.
//! - [`demo`]: the `demo` subcommand; [`demo_broker`]: the private RabbitMQ node it
//!   starts over AMQP when no broker answers.
//! - [`error`]: the [`ManagerError`] type.

pub mod accept;
pub mod admin;
pub mod admission;
pub mod agents;
pub mod auth;
pub mod check;
pub mod cluster;
pub mod commands;
pub mod data;
pub mod demo;
pub mod demo_broker;
pub mod error;
pub mod jobs;
pub mod reload;
pub mod revoke;
pub mod run;
pub mod server;

pub use agents::AgentInfo;
pub use auth::RegistryAuthenticator;
pub use commands::{CommandResult, CommandRun, CommandUpdate};
pub use data::{CustomError, CustomRequest, CustomRequests, DataDir, DataManager};
pub use error::ManagerError;
pub use redpepper_core::Value;
pub use run::{run, run_reloadable, ReloadOptions};
pub use server::{session_config, Manager, ManagerEvent};
