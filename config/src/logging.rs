//! Logging set-up shared by the programs: `tracing` with the level from `-l` (or
//! `RUST_LOG` when set), as text or one JSON object per line.

use tracing_subscriber::EnvFilter;

use crate::ConfigError;

/// Install the global subscriber. `level` is RedPepper's `-l` value (TRACE, DEBUG,
/// INFO, WARN/WARNING, ERROR, any case); `RUST_LOG`, when set, wins. Logs go to stderr.
pub fn init(level: &str, json: bool) -> Result<(), ConfigError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(spec.trim()).map_err(|e| ConfigError::InvalidValue {
                key: "RUST_LOG".into(),
                origin: "environment".into(),
                message: format!("expected a tracing filter ({e})"),
            })?
        }
        _ => EnvFilter::new(level_directive(level)?),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_target(false).try_init()
    };
    // A subscriber installed already (tests, embedding programs) is fine.
    let _ = result;
    Ok(())
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
