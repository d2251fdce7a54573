//! The session keys both programs read (keepalive, message size, hello timeout) as one
//! typed field of both configurations, and the one place that turns them into the
//! session layer's [`SessionConfig`].

use std::time::Duration;

use figment::Figment;
use redpepper_core::{SessionConfig, VERSION};
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::Seconds;

/// The shared keys as written.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSession {
    ping_interval: Option<Seconds>,
    ping_timeout: Option<Seconds>,
    max_message_size: Option<u64>,
    hello_timeout: Option<Seconds>,
}

/// The session keys of [`ManagerConfig`](crate::ManagerConfig) and
/// [`AgentConfig`](crate::AgentConfig) (`config.session`). In the files they are
/// top-level keys, as in RedPepper. Defaults differ by program: see
/// [`SessionSettings::manager_default`] and [`SessionSettings::agent_default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// `ping_interval`: seconds between pings sent to the peer; zero disables.
    /// Default 10 s on the manager (as documented in RedPepper's manager.yml), 30 s
    /// on the agent.
    pub ping_interval: Duration,
    /// `ping_timeout`: seconds to wait for the Pong. Default 5 s.
    pub ping_timeout: Duration,
    /// `max_message_size`: largest accepted message in bytes. Default 1048576.
    pub max_message_size: usize,
    /// `hello_timeout`: seconds to wait for the peer's hello; zero means no limit.
    /// Default 3 s on the agent; 10 s on the manager (ours there: RedPepper's
    /// manager has no limit).
    pub hello_timeout: Duration,
}

impl SessionSettings {
    /// The manager's defaults.
    pub fn manager_default() -> Self {
        Self {
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            max_message_size: 1_048_576,
            hello_timeout: Duration::from_secs(10),
        }
    }

    /// The agent's defaults.
    pub fn agent_default() -> Self {
        Self {
            ping_interval: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(3),
            ..Self::manager_default()
        }
    }

    /// The session layer's settings: these four, our [`VERSION`], and
    /// [`SessionConfig`]'s defaults for everything else (the program may change
    /// those, as the manager does with `expose_errors`).
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            version: VERSION.to_owned(),
            hello_timeout: self.hello_timeout,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            max_message_size: self.max_message_size,
            ..SessionConfig::default()
        }
    }

    /// Overwrites the defaults in `self` with the keys given in `fig`, checking
    /// them.
    pub(crate) fn read(mut self, fig: &Figment) -> Result<Self, ConfigError> {
        let raw: RawSession = fig.extract_lossy().map_err(from_figment)?;
        if let Some(v) = raw.ping_interval {
            self.ping_interval = v.0;
        }
        if let Some(v) = raw.ping_timeout {
            self.ping_timeout = v.0;
        }
        if let Some(v) = raw.hello_timeout {
            self.hello_timeout = v.0;
        }
        if let Some(v) = raw.max_message_size {
            self.max_message_size = usize::try_from(v)
                .ok()
                .filter(|&n| n > 0 && u32::try_from(n).is_ok())
                .ok_or_else(|| {
                    invalid(
                        fig,
                        "max_message_size",
                        format!("expected a size in bytes from 1 to {}, found {v}", u32::MAX),
                    )
                })?;
        }
        if !self.ping_interval.is_zero() && self.ping_timeout.is_zero() {
            return Err(invalid(
                fig,
                "ping_timeout",
                "expected a positive number of seconds while pings are enabled",
            ));
        }
        Ok(self)
    }
}
