//! Logging set-up shared by the programs: `tracing` with the level from `-l` (or
//! `RUST_LOG` when set), as text or one JSON object per line, on stderr. Colours
//! (ANSI escape codes) only when stderr is a terminal, so a log file or the journal
//! gets plain text. The level can be changed while running ([`set_level`], the
//! manager's SIGHUP).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::ConfigError;

/// The handle that swaps the installed filter (set by [`init`]).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Install the global subscriber. `level` is RedPepper's `-l` value (TRACE, DEBUG,
/// INFO, WARN/WARNING, ERROR, any case); `RUST_LOG`, when set, wins. Logs go to
/// stderr, coloured only when stderr is a terminal.
pub fn init(level: &str, json: bool) -> Result<(), ConfigError> {
    let filter = match rust_log() {
        Some(spec) => EnvFilter::try_new(&spec).map_err(|e| ConfigError::InvalidValue {
            key: "RUST_LOG".into(),
            origin: "environment".into(),
            message: format!("expected a tracing filter ({e})"),
        })?,
        None => EnvFilter::new(level_directive(level)?),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::stderr().is_terminal();
    let text = (!json).then(|| {
        fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
    });
    let json = json.then(|| {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
    });
    // A subscriber installed already (tests, embedding programs) is fine.
    if tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
    Ok(())
}

/// `RUST_LOG`, when set and not blank.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// What [`set_level`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LevelChange {
    /// The new level is in force.
    Applied,
    /// `RUST_LOG` is set: it wins, the level was left alone.
    FixedByRustLog,
    /// No subscriber of ours is installed (tests, embedding programs).
    NotInstalled,
}

/// Switch the installed subscriber to `level` (a RedPepper level name), unless
/// `RUST_LOG` is set. A bad name is an error naming `key` and leaves the level alone.
pub fn set_level(level: &str, key: &str) -> Result<LevelChange, ConfigError> {
    let directive = level_directive(level).map_err(|_| ConfigError::InvalidValue {
        key: key.into(),
        origin: "configuration".into(),
        message: format!("`{level}`: expected one of TRACE, DEBUG, INFO, WARN, ERROR"),
    })?;
    if rust_log().is_some() {
        return Ok(LevelChange::FixedByRustLog);
    }
    let Some(handle) = FILTER.get() else {
        return Ok(LevelChange::NotInstalled);
    };
    match handle.reload(EnvFilter::new(directive)) {
        Ok(()) => Ok(LevelChange::Applied),
        Err(_) => Ok(LevelChange::NotInstalled),
    }
}

/// The filter directive for a RedPepper log level name.
pub fn level_directive(level: &str) -> Result<&'static str, ConfigError> {
    Ok(match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => {
            return Err(ConfigError::InvalidValue {
                key: "--log-level".into(),
                origin: "command line".into(),
                message: "expected one of TRACE, DEBUG, INFO, WARN, ERROR".into(),
            })
        }
    })
}
