//! Running as a system service, for both programs (and `redpepper-ctl` for the
//! packaging flags): what the Debian packages and their systemd units rely on.
//!
//! - [`notify`]: systemd readiness (`Type=notify`): [`notify::ready`] sends `READY=1`
//!   over `$NOTIFY_SOCKET` (a tiny sd_notify, no libsystemd), [`notify::stopping`]
//!   sends `STOPPING=1`. Without `$NOTIFY_SOCKET` both do nothing.
//! - [`nofile`]: [`nofile::raise_and_log`] raises the soft open-file limit
//!   (`RLIMIT_NOFILE`) to the hard limit and logs the figure: a manager holds one
//!   descriptor per agent connection.
//! - [`generate`]: the hidden flags `--generate-man-pages DIR` and
//!   `--generate-completions DIR` that `scripts/package` passes to the built binaries
//!   to write their man pages (clap_mangen) and bash/zsh/fish completions
//!   (clap_complete) from the programs' own `clap` definitions.

pub mod generate;
pub mod nofile;
pub mod notify;
