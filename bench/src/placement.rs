//! CPU placement of the two sides of a measurement, and process limits.
//!
//! Every measured process pins itself with `sched_setaffinity` before it starts any
//! thread (our children as the first thing in `main`, the Python helpers with
//! `os.sched_setaffinity` before trio starts), so every thread it ever runs stays on
//! its core:
//!
//! | placement    | side A (listener: manager, echo server) | side B (dialer: agent, client) |
//! |--------------|------------------------------------------|--------------------------------|
//! | `same-core`  | first allowed CPU                        | the same CPU                   |
//! | `cross-core` | first allowed CPU                        | second allowed CPU             |
//!
//! On this VM a wake-up across cores costs about 35 µs, so latency figures are only
//! comparable within one placement.

use std::fmt;

use anyhow::{bail, Context};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Where the two sides run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Both sides pinned to one core.
    SameCore,
    /// Each side pinned to its own core.
    CrossCore,
}

impl Placement {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::SameCore => "same-core",
            Placement::CrossCore => "cross-core",
        }
    }

    /// The CPUs of side A and side B, from the CPUs this process may use.
    pub fn cpus(self, allowed: &[usize]) -> anyhow::Result<(usize, usize)> {
        match (self, allowed) {
            (_, []) => bail!("no CPU is allowed for this process"),
            (Placement::SameCore, [a, ..]) => Ok((*a, *a)),
            (Placement::CrossCore, [a, b, ..]) => Ok((*a, *b)),
            (Placement::CrossCore, [_]) => bail!("cross-core placement needs two CPUs"),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> anyhow::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// Pin the calling thread (and every thread it starts later) to `cpu`.
pub fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CPU {cpu} out of range"))?;
    sched_setaffinity(Pid::from_raw(0), &set).with_context(|| format!("pinning to CPU {cpu}"))
}

/// Raise the open-file limit to at least `want` (the soft limit up to the hard one,
/// the hard one too when we may). Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> anyhow::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit")?;
    if soft >= want {
        return Ok(soft);
    }
    if hard < want && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return Ok(want);
    }
    let target = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).context("setrlimit")?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_per_placement() {
        assert_eq!(Placement::SameCore.cpus(&[2, 5]).ok(), Some((2, 2)));
        assert_eq!(Placement::CrossCore.cpus(&[2, 5]).ok(), Some((2, 5)));
        assert!(Placement::CrossCore.cpus(&[0]).is_err());
        assert!(Placement::SameCore.cpus(&[]).is_err());
    }
}
