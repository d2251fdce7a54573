//! Agent errors.

use redpepper_core::{SessionError, TransportError};

/// What stops an agent from connecting or starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] redpepper_config::ConfigError),
    /// The transport could not be built from the configuration.
    #[error(transparent)]
    Transports(#[from] redpepper_transports::TransportsError),
    /// Dialing the manager failed.
    #[error("connecting: {0}")]
    Transport(#[from] TransportError),
    /// The hello failed or the manager refused us.
    #[error(transparent)]
    Session(#[from] SessionError),
}
