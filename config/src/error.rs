//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or validating a configuration or
/// `agents.yml`.
///
/// Every variant that is about one key names the key and where its value came
/// from (`origin`: a file path, `environment variable REDPEPPER_…`, `command-line
/// option -c KEY`, or `built-in default`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configuration file named explicitly (`--config-file`) does not exist.
    #[error("configuration file {} not found", path.display())]
    FileNotFound {
        /// The missing file.
        path: PathBuf,
    },

    /// A file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file is not valid YAML / TOML, or is not a mapping at the top level.
    #[error("cannot parse {origin}: {message}")]
    Parse {
        /// The file (or other origin) that failed to parse.
        origin: String,
        /// The parser's message, usually with line and column.
        message: String,
    },

    /// A key that neither this program nor RedPepper knows.
    #[error("unknown key `{key}` in {origin}")]
    UnknownKey {
        /// The key, dotted for keys inside sections (`websocket.urll`).
        key: String,
        /// Where it came from.
        origin: String,
    },

    /// A key has a value of the wrong type or an invalid value.
    #[error("invalid value for `{key}` in {origin}: {message}")]
    InvalidValue {
        /// The key, dotted for keys inside sections.
        key: String,
        /// Where the value came from.
        origin: String,
        /// What was wrong and what was expected.
        message: String,
    },

    /// A `-c` argument that is not `KEY=VALUE`.
    #[error(
        "invalid override `{arg}`: expected KEY=VALUE (KEY may be dotted, e.g. websocket.url)"
    )]
    BadOverride {
        /// The argument as given.
        arg: String,
    },

    /// A file named by a key does not exist (checked by `validate()`).
    #[error("`{key}`: {} does not exist", path.display())]
    MissingFile {
        /// The key naming the file.
        key: &'static str,
        /// The path that does not exist.
        path: PathBuf,
    },

    /// An entry of `agents.yml` is invalid.
    #[error("invalid entry for agent `{agent}` in {}: {message}", path.display())]
    InvalidAgent {
        /// The agents file.
        path: PathBuf,
        /// The agent id as written in the file.
        agent: String,
        /// What is wrong.
        message: String,
    },
}
