//! Typed configuration of the RedPepper manager and agent, read from RedPepper's
//! own `manager.yml` / `agent.yml` unchanged, plus the manager's `agents.yml`.
//!
//! # Layout
//!
//! ```text
//! lib.rs        this overview, re-exports
//! loader.rs     the one loader of both file kinds (generic over FileKind): layered
//!               with figment, defaults <- file <- include globs <- REDPEPPER_*
//!               environment <- -c KEY=VALUE (trait ConfigFile); origins for errors
//! schema.rs     the keys each program knows (unknown keys are errors; RedPepper
//!               keys we do not implement are accepted with a warning)
//! common.rs     SessionSettings: the keys both programs share (ping_*,
//!               max_message_size, hello_timeout), and their SessionConfig
//! tls.rs        TlsConfig / VerifyMode from the flat tls_* keys
//! manager.rs    ManagerConfig (+ websocket / amqp sections)
//! admission.rs  AdmissionConfig: the manager's admission section (pre-auth caps)
//! agent.rs      AgentConfig (+ websocket / amqp sections)
//! hosts.rs      HostPort: one entry of the agent's manager_host list
//! commands.rs   the commands section of both: the agent's outbox and output
//!               bounds, the manager's grace for agents that come back
//! console.rs    ConsoleConfig: api_logins and api_session_max_age (the web console)
//! values.rs     Secret, lenient value types (seconds, CIDR, ...); TransportKind is
//!               redpepper-core's, re-exported
//! agents.rs     agents.yml: AgentRegistry, AgentEntry, authenticate, AuthFailure
//! agents/cache.rs  CachedRegistry: re-reads agents.yml when it changes
//! error.rs      ConfigError
//! logging.rs    tracing subscriber set-up shared by the two programs (-l LEVEL,
//!               colours only on a terminal, level changed at reload)
//! signals.rs    SIGTERM / SIGINT stop; SIGHUP reloads (manager) or is logged and
//!               ignored (agent)
//! check.rs      CheckReport: what --check-config prints (secrets redacted)
//! service/      running as a systemd service: sd_notify readiness, the open-file
//!               limit, the hidden flags writing man pages and completions
//! ```
//!
//! # Loading
//!
//! [`ConfigFile::load`] (`ManagerConfig::load`, `AgentConfig::load`, with
//! `use redpepper_config::ConfigFile`) takes the `--config-file`
//! path (`None`: the default `/etc/redpepper/{manager,agent}.yml`, which may be
//! missing) and the `-c KEY=VALUE` arguments, and merges, later winning:
//!
//! 1. built-in defaults (documented on each field, and in `docs/CONFIG.md`);
//! 2. the file, YAML or TOML by extension (`.toml` is TOML, anything else YAML);
//! 3. files matched by its `include` globs (relative to the including file's
//!    directory), depth first, each file at most once; sections merge key by key;
//! 4. environment variables `REDPEPPER_KEY` (`REDPEPPER_BIND_PORT=7052`), nested
//!    keys with `__` (`REDPEPPER_WEBSOCKET__URL`). Variables whose first part is
//!    not a key of the program are skipped (the prefix is shared with other
//!    settings, such as a log level);
//! 5. `-c KEY=VALUE` (dotted keys for sections: `websocket.url=...`).
//!
//! In 4 and 5 the text of a string key is taken verbatim; other values are
//! parsed as YAML scalars (`7052`, `0.5`, `true`, `[tls, websocket]`). Keys that take
//! one string or a list (`manager_host`, `websocket.url`) take the text verbatim
//! unless it is a YAML flow sequence (`[mgr-a, 'mgr-b:7061']`). As in
//! RedPepper (pydantic), numeric and boolean strings are accepted for number and
//! boolean keys.
//!
//! An unknown key (top level or in a section) is an error naming the key and
//! where it came from; RedPepper keys this program does not implement (the
//! manager's `api_*`, `command_log_*`, `event_log_*`) are accepted with one
//! warning each and listed in [`LoadReport::ignored_keys`]. A bad value is an
//! error naming the key, its origin and what was expected.
//!
//! `load` then calls `validate()`, which checks that the TLS files named exist
//! (reading them is the transport's job). `load_with_report` skips that step;
//! `from_yaml_str` reads YAML text alone (no includes, environment, overrides
//! or validation), for tests.
//!
//! The key reference, with every default, is `docs/CONFIG.md`.

mod admission;
mod agent;
pub mod agents;
mod check;
mod cluster;
mod commands;
mod common;
mod console;
mod error;
mod hosts;
mod jobs;
mod loader;
pub mod logging;
mod manager;
mod schema;
pub mod service;
pub mod signals;
mod tls;
mod values;

pub use admission::AdmissionConfig;
pub use agent::{
    AgentAmqpConfig, AgentConfig, AgentWebsocketConfig, DEFAULT_AGENT_CONFIG_FILE,
    DEFAULT_TRANSPORT_PROBE_INTERVAL,
};
pub use agents::{AgentEntry, AgentRegistry, AuthFailure, CachedRegistry};
pub use check::CheckReport;
pub use cluster::{default_node_name, url_user, ClusterConfig};
pub use commands::{AgentCommandsConfig, ManagerCommandsConfig};
pub use common::SessionSettings;
pub use console::{base32_decode, ApiLogin, ConsoleConfig};
pub use error::ConfigError;
pub use hosts::HostPort;
pub use jobs::{CommandLogConfig, COMMAND_LOG_FILE_NAME};
pub use loader::{ConfigFile, IgnoredKey, LoadReport, Loaded, ENV_PREFIX};
pub use manager::{
    AmqpQueueType, ManagerAmqpConfig, ManagerConfig, ManagerWebsocketConfig,
    DEFAULT_MANAGER_CONFIG_FILE,
};
pub use redpepper_core::TransportKind;
pub use tls::{
    TlsConfig, VerifyMode, AGENT_DEFAULT_CERT_FILE, AGENT_DEFAULT_KEY_FILE,
    MANAGER_DEFAULT_CERT_FILE, MANAGER_DEFAULT_KEY_FILE,
};
pub use values::{is_non_loopback_bind, is_valid_id, plain_amqp_remote_host, Secret};
