//! The child process: who it runs as, reading its output within the caps, and stopping
//! its whole process group on a timeout, a cancel, or when the run is dropped.
//!
//! The child leads a process group of its own. To stop it: SIGTERM to the group,
//! [`GRACE`] to exit, then SIGKILL to the group (and to the child, should it have moved
//! to another group). A run dropped before the child ended kills the group at once
//! ([`GroupGuard`]; tokio's `kill_on_drop` alone reaches only the child itself).

use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid};
use tokio::io::AsyncWriteExt;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use super::capture::Capture;

/// How long a stopped process group has between SIGTERM and SIGKILL.
pub(super) const GRACE: Duration = Duration::from_secs(5);

/// Who the child runs as, switched in the child between fork and exec: supplementary
/// groups, then group, then user. Everything is looked up before the fork: after it
/// only async-signal-safe system calls run.
#[derive(Debug, Default)]
pub(super) struct Identity {
    /// The supplementary groups (set only when switching user).
    pub(super) groups: Option<Vec<Gid>>,
    pub(super) gid: Option<Gid>,
    pub(super) uid: Option<Uid>,
}

impl Identity {
    /// Makes `proc` switch to this identity before it executes its program.
    // The only unsafe code of the workspace (see the lint in Cargo.toml): std's
    // `Command::uid` clears the supplementary groups after any `pre_exec` could set them.
    #[allow(unsafe_code)]
    pub(super) fn apply(self, proc: &mut tokio::process::Command) {
        if self.groups.is_none() && self.gid.is_none() && self.uid.is_none() {
            return;
        }
        // SAFETY: between fork and exec the closure makes only the setgroups, setgid
        // and setuid system calls on data prepared before the fork; it neither
        // allocates nor takes a lock (an error is an OS error code, not a boxed one).
        unsafe {
            proc.pre_exec(move || self.switch());
        }
    }

    fn switch(&self) -> std::io::Result<()> {
        if let Some(groups) = &self.groups {
            match nix::unistd::setgroups(groups) {
                // Not privileged to change groups: then setgid/setuid below fail too,
                // unless the child stays the agent's own user (std's rule as well).
                Ok(()) | Err(Errno::EPERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(gid) = self.gid {
            nix::unistd::setgid(gid)?;
        }
        if let Some(uid) = self.uid {
            nix::unistd::setuid(uid)?;
        }
        Ok(())
    }
}

/// Kills the child's process group when dropped, unless disarmed (the child ended and
/// was reaped, after which its group id may be reused).
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.0 {
            // ESRCH: every member has gone already.
            let _ = killpg(pgid, signal);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Why a child was stopped before it ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Stopped {
    TimedOut,
    Cancelled,
}

/// How a waited-for child ended, with its output.
#[derive(Debug)]
pub(super) struct Ended {
    /// Its exit status, or why it was stopped.
    pub(super) outcome: Result<ExitStatus, Stopped>,
    pub(super) stdout: Capture,
    pub(super) stderr: Capture,
}

/// Feeds `input` to `child`, reads its output into `stdout` and `stderr` and waits for
/// it, stopping its group after `timeout` or when `cancel` fires. `Err` is an I/O
/// failure of the agent's own (a pipe it could not read, a child it could not wait
/// for). `child` must have been spawned as the leader of a new process group.
pub(super) async fn supervise(
    mut child: Child,
    input: Option<Vec<u8>>,
    mut stdout: Capture,
    mut stderr: Capture,
    timeout: Option<Duration>,
    cancel: &CancellationToken,
) -> std::io::Result<Ended> {
    let mut guard = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let feed = child.stdin.take().zip(input);
    let out_pipe = child.stdout.take();
    let err_pipe = child.stderr.take();
    let ended: Result<std::io::Result<ExitStatus>, Stopped> = {
        // Fed while its output is read, so a child that writes before reading all of
        // its input never fills a pipe both sides wait on. It may exit without reading:
        // a broken pipe is not our failure.
        let writer = async move {
            if let Some((mut pipe, input)) = feed {
                let _ = pipe.write_all(&input).await;
            }
        };
        let work = async {
            let (_, out, err, status) = tokio::join!(
                writer,
                stdout.read_from(out_pipe),
                stderr.read_from(err_pipe),
                child.wait()
            );
            out.and(err).and(status)
        };
        tokio::pin!(work);
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let stopped = tokio::select! {
            ended = &mut work => Ok(ended),
            () = deadline => Err(Stopped::TimedOut),
            () = cancel.cancelled() => Err(Stopped::Cancelled),
        };
        if let Err(reason) = stopped {
            tracing::debug!(pgid = ?guard.0, ?reason, "stopping a command's process group");
            guard.signal(Signal::SIGTERM);
            let ended = tokio::time::timeout(GRACE, &mut work).await.is_ok();
            guard.signal(Signal::SIGKILL);
            if !ended {
                // The output written until now; a pipe still held open by a process
                // that left the group is not waited for.
                let _ = tokio::time::timeout(GRACE, &mut work).await;
            }
        }
        stopped
    };
    match ended {
        Ok(status) => {
            guard.disarm();
            Ok(Ended {
                outcome: Ok(status?),
                stdout,
                stderr,
            })
        }
        Err(stopped) => {
            // Should the child have left its group; reaped by tokio once dropped.
            let _ = child.start_kill();
            guard.disarm();
            Ok(Ended {
                outcome: Err(stopped),
                stdout,
                stderr,
            })
        }
    }
}
