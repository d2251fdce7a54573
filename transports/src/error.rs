//! This crate's own error: building a transport from configuration failed.
//!
//! Errors that happen on a connection (I/O, framing, handshake) are
//! [`redpepper_core::error::TransportError`]s, as the [`Transport`] trait requires.
//! [`TransportsError`] is for what goes wrong before any connection exists: reading
//! certificate and key files, checking settings, binding listeners. Each variant names
//! the configuration key and, where there is one, the file, so the message tells the
//! operator what to fix.
//!
//! [`Transport`]: redpepper_core::transport::Transport

use std::io;
use std::path::PathBuf;

/// Building a transport, dialer or listener from configuration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportsError {
    /// A configured file could not be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    ReadFile {
        /// The configuration key that names the file (for example `tls_key_file`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A configured file is unusable: bad content, unsafe permissions, encrypted key.
    #[error("{key}: {}: {reason}", path.display())]
    BadFile {
        /// The configuration key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and, where possible, how to fix it.
        reason: String,
    },
    /// A setting has an unusable value, or lacks a companion setting.
    #[error("{key}: {reason}")]
    Setting {
        /// The configuration key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the assembled TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address we tried (`host:port`).
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The configured transport is not compiled into this build.
    #[error("transport `{0}` is not available in this build yet")]
    Unavailable(String),
    /// Generating or writing development certificates failed.
    #[error("development certificates: {0}")]
    DevCerts(String),
    /// Joining the manager cluster failed (the broker named, without password).
    #[error(transparent)]
    Cluster(#[from] redpepper_cluster::ClusterError),
}

impl TransportsError {
    /// A [`TransportsError::BadFile`].
    pub(crate) fn bad_file(
        key: &'static str,
        path: impl Into<PathBuf>,
        reason: impl Into<String>,
    ) -> Self {
        Self::BadFile {
            key,
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`TransportsError::Setting`].
    pub(crate) fn setting(key: &'static str, reason: impl Into<String>) -> Self {
        Self::Setting {
            key,
            reason: reason.into(),
        }
    }
}
