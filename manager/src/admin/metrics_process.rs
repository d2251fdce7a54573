//! The `/metrics` lines about the program rather than its sessions: build info,
//! process figures read from `/proc/self` (Prometheus' standard `process_*` names),
//! and the state of the links the manager depends on.

use std::fmt::Write as _;

use crate::Manager;

/// Clock ticks per second of `/proc/self/stat` times (USER_HZ: 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Append the build, process and link metrics to `out`.
pub(crate) fn render(out: &mut String, manager: &Manager) {
    let _ = writeln!(
        out,
        "# HELP redpepper_build_info The running build (value 1).\n# TYPE redpepper_build_info gauge\nredpepper_build_info{{version=\"{}\",program=\"redpepper-manager\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let process = read_process();
    let mut gauge = |name: &str, kind: &str, help: &str, value: Option<String>| {
        if let Some(value) = value {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    };
    gauge(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        process.rss_bytes.map(|v| v.to_string()),
    );
    gauge(
        "process_open_fds",
        "gauge",
        "Open file descriptors.",
        process.open_fds.map(|v| v.to_string()),
    );
    gauge(
        "process_max_fds",
        "gauge",
        "The soft limit of open file descriptors.",
        process.max_fds.map(|v| v.to_string()),
    );
    gauge(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
        process.cpu_seconds.map(|v| format!("{v:.2}")),
    );
    let checks = manager.readiness();
    let _ = writeln!(
        out,
        "# HELP redpepper_link_up Whether a link the manager depends on is up (1) or down (0): agent listeners, the AMQP broker, the cluster.\n# TYPE redpepper_link_up gauge"
    );
    for check in checks {
        let _ = writeln!(
            out,
            "redpepper_link_up{{link=\"{}\"}} {}",
            check.name,
            u8::from(check.ok)
        );
    }
}

/// Figures of this process; `None` where `/proc` does not give them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessFigures {
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    pub(crate) cpu_seconds: Option<f64>,
}

pub(crate) fn read_process() -> ProcessFigures {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    ProcessFigures {
        rss_bytes: rss_of_status(&status),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
        max_fds: max_fds_of_limits(&limits),
        cpu_seconds: cpu_of_stat(&stat),
    }
}

/// `VmRSS:   12345 kB` of `/proc/self/status`, in bytes.
fn rss_of_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`, in seconds. The command
/// name (field 2) may hold spaces: fields are counted after its closing parenthesis.
fn cpu_of_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime (14) is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_fds_of_limits(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        assert_eq!(
            rss_of_status("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0";
        assert_eq!(cpu_of_stat(stat), Some(4.0));
        let limits = "Limit Soft Hard Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_fds_of_limits(limits), Some(1024));
        let now = read_process();
        assert!(now.rss_bytes.is_some_and(|b| b > 0), "{now:?}");
        assert!(now.open_fds.is_some_and(|n| n > 0), "{now:?}");
        assert!(now.cpu_seconds.is_some(), "{now:?}");
    }
}
