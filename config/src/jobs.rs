//! The manager's command log (RedPepper's `command_log_*` keys): where each run's
//! outcome is kept, how big the log may grow and how long entries are kept.
//!
//! RedPepper 0.3.4 keeps its command log in SQLite (`command_log_file`, default
//! `/var/lib/redpepper-manager/commands.sqlite`), purges entries older than
//! `command_log_max_age` seconds (default 2592000, 30 days) every
//! `command_log_purge_interval` seconds (default 86400). We honour the same three keys;
//! our log is JSON lines, so a `command_log_file` ending in `.sqlite` (a RedPepper
//! configuration reused as-is) is written next to it with the extension `.jsonl`
//! instead, never over a SQLite file. Ours: `command_log_max_bytes` (a file is rotated
//! past it) and `command_log_max_files` (rotated files kept), which bound the log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::{Seconds, Str};

/// The command log's settings. Defaults: [`CommandLogConfig::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLogConfig {
    /// `command_log_file`: the log file. Default none: `DATA_BASE_DIR/commands.jsonl`
    /// (see [`CommandLogConfig::path`]).
    pub file: Option<PathBuf>,
    /// `command_log_max_age`: entries older than this are dropped. Default 30 days;
    /// 0 keeps entries until rotation drops them.
    pub max_age: Duration,
    /// `command_log_purge_interval`: how often old entries are dropped. Default one
    /// day; 0 never purges (rotation still bounds the log).
    pub purge_interval: Duration,
    /// `command_log_max_bytes` (ours): a log file past this size is rotated. Default
    /// 16 MiB.
    pub max_bytes: u64,
    /// `command_log_max_files` (ours): rotated files kept besides the current one.
    /// Default 4.
    pub max_files: usize,
}

impl Default for CommandLogConfig {
    fn default() -> Self {
        Self {
            file: None,
            max_age: Duration::from_secs(2_592_000),
            purge_interval: Duration::from_secs(86_400),
            max_bytes: 16 * 1024 * 1024,
            max_files: 4,
        }
    }
}

/// The log's file name in the data directory when `command_log_file` is not set.
pub const COMMAND_LOG_FILE_NAME: &str = "commands.jsonl";

impl CommandLogConfig {
    /// The file the log is written to: `command_log_file` (its `.sqlite` / `.db`
    /// extension replaced by `.jsonl`), else `data_base_dir/commands.jsonl`.
    pub fn path(&self, data_base_dir: &Path) -> PathBuf {
        match &self.file {
            None => data_base_dir.join(COMMAND_LOG_FILE_NAME),
            Some(f) => match f.extension().and_then(|e| e.to_str()) {
                Some("sqlite" | "sqlite3" | "db") => f.with_extension("jsonl"),
                _ => f.clone(),
            },
        }
    }

    /// Overwrites the defaults in `self` with the `command_log_*` keys in `fig`.
    pub(crate) fn read(mut self, fig: &Figment) -> Result<Self, ConfigError> {
        let raw: RawLog = fig.extract_lossy().map_err(from_figment)?;
        if let Some(f) = raw.command_log_file.filter(|f| !f.0.is_empty()) {
            self.file = Some(PathBuf::from(f.0));
        }
        if let Some(Seconds(t)) = raw.command_log_max_age {
            self.max_age = t;
        }
        if let Some(Seconds(t)) = raw.command_log_purge_interval {
            self.purge_interval = t;
        }
        if let Some(n) = raw.command_log_max_bytes {
            if n < 4096 {
                return Err(invalid(
                    fig,
                    "command_log_max_bytes",
                    format!("expected at least 4096 bytes, found {n}"),
                ));
            }
            self.max_bytes = n;
        }
        if let Some(n) = raw.command_log_max_files {
            self.max_files = usize::try_from(n)
                .ok()
                .filter(|&n| (1..=1000).contains(&n))
                .ok_or_else(|| {
                    invalid(
                        fig,
                        "command_log_max_files",
                        format!("expected a count from 1 to 1000, found {n}"),
                    )
                })?;
        }
        Ok(self)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLog {
    command_log_file: Option<Str>,
    command_log_max_age: Option<Seconds>,
    command_log_purge_interval: Option<Seconds>,
    command_log_max_bytes: Option<u64>,
    command_log_max_files: Option<u64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use figment::providers::{Format, Yaml};

    fn read(yaml: &str) -> Result<CommandLogConfig, ConfigError> {
        CommandLogConfig::default().read(&Figment::from(Yaml::string(yaml)))
    }

    #[test]
    fn redpeppers_keys_are_honoured() {
        let c = read(
            "command_log_file: /var/lib/redpepper-manager/commands.sqlite\n\
             command_log_max_age: 3600\ncommand_log_purge_interval: 60\n",
        )
        .unwrap();
        assert_eq!(c.max_age, Duration::from_secs(3600));
        assert_eq!(c.purge_interval, Duration::from_secs(60));
        // Never written over RedPepper's SQLite file.
        assert_eq!(
            c.path(Path::new("/data")),
            PathBuf::from("/var/lib/redpepper-manager/commands.jsonl")
        );
        let d = read("{}").unwrap();
        assert_eq!(d, CommandLogConfig::default());
        assert_eq!(
            d.path(Path::new("/data")),
            PathBuf::from("/data/commands.jsonl")
        );
    }

    #[test]
    fn bounds_are_checked_naming_the_key() {
        let e = read("command_log_max_files: 0\n").unwrap_err();
        assert!(e.to_string().contains("command_log_max_files"), "{e}");
        let e = read("command_log_max_bytes: 10\n").unwrap_err();
        assert!(e.to_string().contains("command_log_max_bytes"), "{e}");
        assert_eq!(read("command_log_max_files: 2\n").unwrap().max_files, 2);
    }
}
