//! What `/proc` tells about a running process: its resident memory and the CPU
//! time it has used (the benchmark's memory and CPU figures).

use super::Proc;
use crate::error::HarnessError;

impl Proc {
    /// [`rss_bytes`] of this process.
    ///
    /// # Errors
    ///
    /// As [`rss_bytes`].
    pub fn rss_bytes(&self) -> Result<u64, HarnessError> {
        rss_bytes(self.pid)
    }

    /// [`cpu_secs`] of this process.
    ///
    /// # Errors
    ///
    /// As [`cpu_secs`].
    pub fn cpu_secs(&self) -> Result<f64, HarnessError> {
        cpu_secs(self.pid)
    }
}

fn read(path: String) -> Result<String, HarnessError> {
    std::fs::read_to_string(&path).map_err(HarnessError::io("read", path))
}

/// Resident set size of process `pid`, bytes (`VmRSS` of `/proc/PID/status`).
///
/// # Errors
///
/// When the process is gone or the file has no `VmRSS` line.
pub fn rss_bytes(pid: u32) -> Result<u64, HarnessError> {
    let status = read(format!("/proc/{pid}/status"))?;
    vm_rss_kib(&status)
        .map(|kib| kib * 1024)
        .ok_or_else(|| HarnessError::Malformed(format!("no VmRSS in /proc/{pid}/status")))
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
}

/// CPU time (user + system, all threads) process `pid` has used so far, seconds.
///
/// # Errors
///
/// When the process is gone or `/proc/PID/stat` is not as expected.
pub fn cpu_secs(pid: u32) -> Result<f64, HarnessError> {
    let stat = read(format!("/proc/{pid}/stat"))?;
    stat_cpu_secs(&stat)
        .ok_or_else(|| HarnessError::Malformed(format!("malformed /proc/{pid}/stat: {stat}")))
}

fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // /proc reports them in USER_HZ, which Linux fixes at 100 per second.
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        assert_eq!(vm_rss_kib("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu_secs(stat), Some(3.0));
        assert_eq!(stat_cpu_secs("42 (x) S 1"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(cpu_secs(pid).unwrap() >= 0.0);
        let err = rss_bytes(u32::MAX).unwrap_err();
        assert!(err.to_string().contains("/proc/4294967295/status"), "{err}");
    }
}
