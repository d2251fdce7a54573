//! The `commands:` section (ours) of both programs: how command results are kept
//! until delivered (agent) and how long a command waits for its agent to come back
//! (manager). Its meaning is the agent's `outbox` and the manager's `commands`
//! modules'.

use std::time::Duration;

use figment::Figment;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::Seconds;

/// Longest `commands.grace` accepted (a day: longer is a mistake, and far longer would
/// overflow a deadline).
const MAX_GRACE: Duration = Duration::from_secs(86400);

/// The agent's `commands:` section. Defaults: [`AgentCommandsConfig::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCommandsConfig {
    /// `commands.outbox`: most command results kept until the manager has them (held
    /// across reconnects); when full, the oldest is dropped with a warning. Default 1000.
    pub outbox: usize,
    /// `commands.outbox_bytes`: most bytes of results kept so. Default 64 MiB.
    pub outbox_bytes: usize,
    /// `commands.output_limit`: most bytes of a `command.Run`'s output kept (head and
    /// tail, the middle cut and marked). Default 262144 (256 KiB).
    pub output_limit: usize,
}

impl Default for AgentCommandsConfig {
    fn default() -> Self {
        Self {
            outbox: 1000,
            outbox_bytes: 64 * 1024 * 1024,
            output_limit: 256 * 1024,
        }
    }
}

/// The manager's `commands:` section. Defaults: [`ManagerCommandsConfig::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerCommandsConfig {
    /// `commands.grace`: seconds a command stays pending after its agent's session
    /// ended; a result arriving on a later session of the same agent within it
    /// completes the command. 0: lost as soon as the session ends. Default 300 (about
    /// five times the agent's 64 s backoff cap).
    pub grace: Duration,
}

impl Default for ManagerCommandsConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(300),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCommands {
    outbox: Option<u64>,
    outbox_bytes: Option<u64>,
    output_limit: Option<u64>,
    grace: Option<Seconds>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTop {
    commands: Option<RawCommands>,
}

fn raw(fig: &Figment) -> Result<RawCommands, ConfigError> {
    Ok(fig
        .extract_lossy::<RawTop>()
        .map_err(from_figment)?
        .commands
        .unwrap_or_default())
}

fn count(fig: &Figment, key: &str, v: Option<u64>, current: usize) -> Result<usize, ConfigError> {
    match v {
        None => Ok(current),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid(fig, key, format!("expected a count above 0, found {n}"))),
    }
}

impl AgentCommandsConfig {
    /// Overwrites the defaults in `self` with the `commands.*` keys in `fig`.
    pub(crate) fn read(mut self, fig: &Figment) -> Result<Self, ConfigError> {
        let raw = raw(fig)?;
        self.outbox = count(fig, "commands.outbox", raw.outbox, self.outbox)?;
        self.outbox_bytes = count(
            fig,
            "commands.outbox_bytes",
            raw.outbox_bytes,
            self.outbox_bytes,
        )?;
        self.output_limit = count(
            fig,
            "commands.output_limit",
            raw.output_limit,
            self.output_limit,
        )?;
        Ok(self)
    }
}

impl ManagerCommandsConfig {
    /// Overwrites the defaults in `self` with the `commands.*` keys in `fig`.
    pub(crate) fn read(mut self, fig: &Figment) -> Result<Self, ConfigError> {
        if let Some(Seconds(t)) = raw(fig)?.grace {
            if t > MAX_GRACE {
                return Err(invalid(
                    fig,
                    "commands.grace",
                    format!(
                        "expected seconds from 0 to {}, found {}",
                        MAX_GRACE.as_secs(),
                        t.as_secs_f64()
                    ),
                ));
            }
            self.grace = t;
        }
        Ok(self)
    }
}
