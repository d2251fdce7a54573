//! The open-file limit: a manager holds one descriptor per agent connection (two
//! during a TLS handshake's accept), and distributions start services with a soft
//! limit of 1024. The units raise the hard limit (`LimitNOFILE=`); the programs raise
//! their soft limit to it, so a manager started by hand gets it too.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// The open-file limit below which the manager warns at start.
pub const MANAGER_MIN: u64 = 65_536;

/// The soft and hard `RLIMIT_NOFILE` after [`raise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
///
/// # Errors
///
/// The limit cannot be read or set (a sandbox that forbids it); the message says which.
pub fn raise() -> std::io::Result<NofileLimit> {
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| std::io::Error::other(format!("cannot read the open-file limit: {e}")))?;
    if before < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|e| {
            std::io::Error::other(format!(
                "cannot raise the open-file limit from {before} to {hard}: {e}"
            ))
        })?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| std::io::Error::other(format!("cannot read the open-file limit: {e}")))?;
    Ok(NofileLimit { before, soft, hard })
}

/// [`raise`], then one log line with the figure: a warning when it failed or the limit
/// stays below `warn_below` (the manager passes [`MANAGER_MIN`]: with fewer descriptors,
/// fewer agents can connect; the agent passes 0).
pub fn raise_and_log(warn_below: u64) {
    match raise() {
        Ok(limit) => {
            let shown = |n: u64| {
                if n == RLIM_INFINITY {
                    "unlimited".to_owned()
                } else {
                    n.to_string()
                }
            };
            let soft = shown(limit.soft);
            if limit.soft < warn_below {
                tracing::warn!(
                    limit = %soft,
                    "open-file limit {soft} (the hard limit) is below {warn_below}: at most about that many connections; raise it (LimitNOFILE= in the unit, or ulimit -Hn)"
                );
            } else if limit.soft != limit.before {
                tracing::info!(limit = %soft, "open-file limit raised from {} to {soft}", shown(limit.before));
            } else {
                tracing::info!(limit = %soft, "open-file limit {soft}");
            }
        }
        Err(e) => tracing::warn!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise().unwrap();
        assert_eq!(limit.soft, limit.hard);
        assert!(limit.soft >= limit.before);
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, limit.hard);
    }
}
