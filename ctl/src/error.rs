//! What can go wrong, each as one line an operator can act on.

use std::path::PathBuf;

/// A failure of `redpepper-ctl` itself (exit status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// No URL from the flags, environment or configuration.
    #[error(
        "no manager to talk to: pass --manager URL, set REDPEPPER_MANAGER, or point \
         --config-file at a manager configuration with admin_bind"
    )]
    NoManager,
    /// No token.
    #[error(
        "no admin token: pass --token-file PATH, set REDPEPPER_ADMIN_TOKEN, or point \
         --config-file at a manager configuration with admin_token_file"
    )]
    NoToken,
    /// A local file could not be used.
    #[error("{what} {}: {reason}", path.display())]
    File {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The manager configuration could not be read.
    #[error("manager configuration: {0}")]
    Config(String),
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
    /// The manager did not answer.
    #[error("cannot reach the manager at {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// 401.
    #[error("the manager at {url} refused the admin token (401 Unauthorized): check --token-file / REDPEPPER_ADMIN_TOKEN")]
    Unauthorized {
        /// The URL.
        url: String,
    },
    /// Any other error answer.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's code.
        code: String,
        /// The API's text.
        message: String,
    },
    /// Writing to the terminal or reading a stream failed.
    #[error("{0}")]
    Io(String),
}
