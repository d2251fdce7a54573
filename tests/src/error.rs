//! [`HarnessError`]: what the `try_*` functions of the harness return. The
//! test-facing functions without the prefix panic with its message instead.

use std::path::PathBuf;

/// Why the harness could not set something up or a process did not do what was
/// awaited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A program could not be started.
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// The label given to the process.
        name: String,
        /// The program run.
        program: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file or directory could not be read, created or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `create`, `read`).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A local socket operation failed (picking a free port).
    #[error("{what}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A program the harness needs is not installed.
    #[error(
        "{0} is not installed: run scripts/test (it installs the Debian packages the tests \
         need) or apt-get install the package providing {0}"
    )]
    NotInstalled(String),
    /// Certificates could not be generated.
    #[error(transparent)]
    Certs(#[from] redpepper_devcerts::DevCertsError),
    /// A process exited, timed out, or reported an error instead of what was
    /// awaited; the message names it and ends with its last output lines.
    #[error("{0}")]
    Process(String),
    /// Something read from a process or from `/proc` was not what was expected.
    #[error("{0}")]
    Malformed(String),
}

impl HarnessError {
    /// An [`HarnessError::Io`] for `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| HarnessError::Io { what, path, source }
    }
}

/// Panics with `result`'s error message: the body of the panicking shims.
pub(crate) fn or_panic<T>(result: Result<T, HarnessError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}
