//! Harness for the end-to-end tests: runs our `redpepper-manager` and
//! `redpepper-agent` binaries and the real RedPepper 0.3.4 (Python) as child
//! processes, with throwaway certificates and scratch directories, and lets a
//! test wait for what they print.
//!
//! Prerequisites are checked loudly: a missing binary, Python venv or helper
//! script panics with the command that fixes it. `scripts/test` provides them
//! all (it exports `REDPEPPER_BIN_DIR` and `REDPEPPER_PYTHON`).
//!
//! The benchmark (`bench/`) uses this harness too. For it, every function that can
//! fail has a `try_*` form returning [`HarnessError`]; the names without the prefix
//! are thin shims over those that panic with the error's message, as tests want.
//!
//! ```no_run
//! use redpepper_tests::*;
//! use serde_json::json;
//!
//! let dir = scratch_dir();
//! let certs = TestCerts::generate(&dir.path().join("certs"));
//! let manager_config = PyManagerConfig::new(&dir.path().join("manager"), &certs);
//! manager_config.write_agents(&[("a1", "s3cret", &["127.0.0.1/32"])]);
//! let manager = PyManager::start(&manager_config);
//! let agent = PyAgent::start(&PyAgentConfig::new(
//!     &dir.path().join("agent"), &certs, manager.port(), "a1", "s3cret",
//! ));
//! agent.wait_connected(TIMEOUT).unwrap();
//! let result = manager
//!     .command("a1", "echo.Echo", json!({"message": "hi"}), TIMEOUT)
//!     .unwrap();
//! assert_eq!(result["success"], true);
//! ```
//!
//! # Layout
//!
//! - [`paths`]: where our binaries ([`bin`]), the venv's Python ([`python`]),
//!   the helper scripts ([`python_script`]) and system programs such as nginx
//!   ([`system_program`]) are.
//! - [`error`]: [`HarnessError`], what the `try_*` functions return.
//! - [`process`]: [`Proc`], a child process in its own process group (or its
//!   parent's), killed on drop, whose output lines a test waits for and whose
//!   JSON reports the benchmark reads; [`rss_bytes`] and [`cpu_secs`] from `/proc`;
//!   [`Proc::pause`] (SIGSTOP until its [`Paused`] guard drops) and [`wait_reaped`]
//!   for the fault-injection tests.
//! - [`certs`]: [`TestCerts`], a CA plus manager and agent certificates from
//!   the workspace's one generator, `redpepper-devcerts`.
//! - [`fleet`]: [`fleet::Fleet`], one builder for a manager-and-agents world (files,
//!   certificates, admin API, transports, a cluster of managers) and its process
//!   launchers.
//! - [`net`]: [`free_port`] and [`wait_for_listen`].
//! - [`nginx`]: a private nginx as TLS-terminating WebSocket reverse proxy
//!   (also the benchmark's, tuned by [`nginx::NginxConfig`]).
//! - [`proxy`]: a private tinyproxy as HTTP CONNECT forward proxy.
//! - [`python`]: the Python peers: config writers ([`PyManagerConfig`],
//!   [`PyAgentConfig`], [`agents_yml`], [`AgentEntry`], [`yaml_str`]) and
//!   launchers ([`PyManager`], [`PyAgent`]).
//! - [`relay`]: [`relay::Relay`], a TCP relay that cuts every connection on demand
//!   (and refuses new ones for a while): network blips between agent and manager.
//! - [`rabbitmq`]: [`RabbitNode`], a private RabbitMQ node (own ports, dirs and
//!   cookie) for the AMQP tests, with users, vhosts, TLS and restarts.
//! - `tests/python/drive_manager.py`: runs the Python `Manager` in-process and
//!   reports events as JSON lines; `tests/python/raw_peer.py`: a wire-level
//!   agent-side peer that sends given messages or raw bytes.
//! - `tests/tests/it/`: the end-to-end tests (one binary, a module per feature).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod certs;
pub mod error;
pub mod fleet;
pub mod net;
pub mod nginx;
pub mod paths;
pub mod process;
pub mod proxy;
pub mod python;
pub mod rabbitmq;
pub mod relay;
mod service;

use std::time::Duration;

pub use certs::TestCerts;
pub use error::HarnessError;
pub use net::{free_port, is_listening, try_free_port, wait_for_listen};
pub use paths::{bin, python, python_script, system_program, try_system_program, workspace_root};
pub use process::{cpu_secs, rss_bytes, wait_reaped, Group, Line, Paused, Proc, Signal, Stream};
pub use python::{
    agents_yml, agents_yml_entries, python_command, raw_peer, sha256_hex, write_agents_yml,
    yaml_str, AgentEntry, PyAgent, PyAgentConfig, PyManager, PyManagerConfig,
};
pub use rabbitmq::RabbitNode;
pub use serde_json;
pub use tempfile::TempDir;

/// A generous default for every wait: CI machines are shared and slow, and
/// waits end as soon as their event happens, so a long limit costs nothing.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A command running our binary `name` (see [`bin`]), with `RUST_BACKTRACE=1`
/// so a panic in it shows where; start it with [`Proc::spawn`].
pub fn bin_command(name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin(name));
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

/// A fresh scratch directory, removed when dropped. Set
/// `REDPEPPER_TEST_KEEP=1` to keep it (its path is printed) for a post-mortem.
///
/// # Panics
///
/// When the directory cannot be created.
pub fn scratch_dir() -> TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("redpepper-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a scratch directory: {e}"));
    if std::env::var_os("REDPEPPER_TEST_KEEP").is_some_and(|v| v != "0" && !v.is_empty()) {
        dir.disable_cleanup(true);
        eprintln!("keeping scratch directory {}", dir.path().display());
    }
    dir
}
