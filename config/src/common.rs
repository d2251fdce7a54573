//! Keys shared by the manager and the agent: keepalive, message size, hello
//! timeout.

use std::time::Duration;

use figment::Figment;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::Seconds;

/// The shared keys as written.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCommon {
    ping_interval: Option<Seconds>,
    ping_timeout: Option<Seconds>,
    max_message_size: Option<u64>,
    hello_timeout: Option<Seconds>,
}

/// The shared settings of one program, starting from that program's defaults.
pub(crate) struct Common {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub max_message_size: usize,
    pub hello_timeout: Duration,
}

impl Common {
    /// Overwrites the defaults in `self` with the keys given in `fig`, checking
    /// them.
    pub(crate) fn read(mut self, fig: &Figment) -> Result<Self, ConfigError> {
        let raw: RawCommon = fig.extract_lossy().map_err(from_figment)?;
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
