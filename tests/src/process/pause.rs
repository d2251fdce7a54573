//! Freezing a process for a fault-injection test: [`Proc::pause`] sends SIGSTOP and
//! returns a [`Paused`] guard that sends SIGCONT when dropped, so a test that fails
//! while a process is stopped never leaves it stopped (the `Proc` is then killed as
//! usual; SIGKILL also ends a stopped process). [`wait_reaped`] waits until a process
//! that is not ours (an agent's child) is gone from `/proc`: exited and reaped by its
//! parent.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Proc, Signal};

/// A process stopped by [`Proc::pause`]; continued (SIGCONT) on drop.
#[derive(Debug)]
#[must_use = "dropping the guard continues the process at once"]
pub struct Paused<'a> {
    proc: &'a Proc,
}

impl Proc {
    /// Stop this process (SIGSTOP, the process only, not its group: what it started
    /// keeps running) until the returned guard is dropped or [`Paused::resume`]d.
    ///
    /// # Panics
    ///
    /// When the signal cannot be sent (the process is gone).
    pub fn pause(&self) -> Paused<'_> {
        self.signal(Signal::SIGSTOP)
            .unwrap_or_else(|e| panic!("pause: {e}"));
        Paused { proc: self }
    }
}

impl Paused<'_> {
    /// Continue the process now (SIGCONT).
    pub fn resume(self) {
        drop(self);
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        // Gone already (killed): nothing to continue.
        let _ = self.proc.signal(Signal::SIGCONT);
    }
}

/// Wait until process `pid` no longer exists: it exited and its parent reaped it (a
/// zombie still has its `/proc` entry). Polls `/proc` every 20 ms.
///
/// # Errors
///
/// When it still exists after `timeout`.
pub fn wait_reaped(pid: u32, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let entry = format!("/proc/{pid}");
    while Path::new(&entry).exists() {
        if Instant::now() >= deadline {
            let status = std::fs::read_to_string(format!("{entry}/status")).unwrap_or_default();
            let state = status
                .lines()
                .find(|l| l.starts_with("State:"))
                .unwrap_or("State: ?");
            return Err(format!(
                "process {pid} still exists after {timeout:?} ({state})"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
