//! [`Proc`]: a child process under test. (Just over 500 lines as one cohesive thing:
//! the `Proc` type and its waits over one shared line buffer; spawning, JSON reports and
//! `/proc` readers are in their own files.)
//!
//! The child runs in its own process group, which is killed when the `Proc` is
//! dropped (also when a test panics), so no program outlives its test. Two
//! reader threads collect its stdout and stderr lines, in arrival order, into a
//! shared buffer; a waiter thread reaps it and records its exit status.
//!
//! Tests wait for what they expect to see, never for a fixed time:
//!
//! ```no_run
//! # use redpepper_tests::{Proc, TIMEOUT};
//! # use std::process::Command;
//! let mut cmd = Command::new("sh");
//! cmd.args(["-c", "echo ready; sleep 100"]);
//! let proc = Proc::spawn("sh", cmd);
//! proc.wait_for_line(|l| l.contains("ready"), TIMEOUT).unwrap();
//! ```
//!
//! [`Proc::wait_for_line`] works like `expect`: it searches the lines after the
//! previous match and moves past the line it returns, so waiting twice for the
//! same pattern waits for two occurrences. Errors carry the last
//! [`TAIL_LINES`] lines of output, and a wait fails as soon as the process has
//! closed its output (it exited), instead of running into the timeout.
//! Set `REDPEPPER_TEST_ECHO=1` to copy every line to the test's stderr as it
//! arrives.
//!
//! The benchmark runs its measured processes as `Proc`s too: it starts them with
//! [`Proc::try_spawn_in`] (in its own process group, so Ctrl-C reaches them),
//! reads their JSON reports with [`Proc::expect`] (in `json.rs`), ends them with
//! [`Proc::finish`], and reads their memory and CPU time from `/proc`
//! ([`rss_bytes`], [`cpu_secs`], in `procfs.rs`).

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;

use std::process::{ChildStdin, Command, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

use crate::error::{or_panic, HarnessError};

mod json;
mod pause;
mod procfs;
mod spawn;

pub use pause::{wait_reaped, Paused};
pub use procfs::{cpu_secs, rss_bytes};

/// How many output lines error messages show.
pub const TAIL_LINES: usize = 50;

/// How long [`Proc::wait_exit`] waits, after the exit, for the output to be read to its
/// end.
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a process's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Where it came from.
    pub stream: Stream,
    /// The text, without the line ending.
    pub text: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        write!(f, "[{tag}] {}", self.text)
    }
}

#[derive(Default)]
struct State {
    lines: Vec<Line>,
    open_streams: usize,
    exit: Option<ExitStatus>,
    /// Index of the first line `wait_for_line` has not consumed yet.
    cursor: usize,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock, but a test thread
        // may: keep going with whatever was recorded.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.cond.notify_all();
        self.notify.notify_waiters();
    }
}

/// Which process group a child runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A new group led by the child: killing the `Proc` kills whatever the child
    /// started too (the tests' default).
    Own,
    /// The caller's group: a Ctrl-C on the terminal reaches the child as well;
    /// killing the `Proc` kills the child alone.
    Parent,
}

/// A running child process whose output is captured. Killed (with its whole
/// process group when it has its own) on drop.
pub struct Proc {
    shared: Arc<Shared>,
    pid: u32,
    group: Group,
    stdin: Mutex<Option<ChildStdin>>,
}

/// The outcome of one look at the output.
enum Poll<T> {
    Ready(T),
    Closed(String),
    Pending,
}

impl Proc {
    /// Starts `cmd` with piped stdin, stdout and stderr, in a new process group.
    /// `name` labels its output in errors and echoes.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn spawn(name: &str, cmd: Command) -> Proc {
        or_panic(Self::try_spawn(name, cmd))
    }

    /// [`Proc::spawn`] as a `Result`.
    ///
    /// # Errors
    ///
    /// When the program or a thread watching it cannot be started.
    pub fn try_spawn(name: &str, cmd: Command) -> Result<Proc, HarnessError> {
        Self::try_spawn_in(name, cmd, Group::Own)
    }

    /// The label given at spawn.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Every output line so far, stdout and stderr interleaved in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.shared
            .lock()
            .lines
            .iter()
            .map(|l| l.text.clone())
            .collect()
    }

    /// Every output line so far with its stream.
    pub fn tagged_lines(&self) -> Vec<Line> {
        self.shared.lock().lines.clone()
    }

    /// The stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let state = self.shared.lock();
        state
            .lines
            .iter()
            .filter(|l| l.stream == Stream::Stdout)
            .map(|l| l.text.clone())
            .collect()
    }

    /// The first line so far (consumed or not) that satisfies `pred`.
    pub fn find_line(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.shared
            .lock()
            .lines
            .iter()
            .find(|l| pred(&l.text))
            .map(|l| l.text.clone())
    }

    /// The last `n` lines, one per line, tagged `[out]` / `[err]`.
    pub fn tail(&self, n: usize) -> String {
        tail_of(&self.shared.lock(), n)
    }

    /// Waits for the next line (after the previous match) that satisfies `pred`
    /// and returns it; that line and the ones before it count as consumed.
    ///
    /// # Errors
    ///
    /// When `timeout` passes, or the process closes its output first. The
    /// message includes the last [`TAIL_LINES`] lines.
    pub fn wait_for_line(
        &self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        self.wait_until(timeout, |state| take_match(state, &pred))
    }

    /// The number of lines so far: a mark for [`Proc::wait_for_line_after`].
    pub fn line_count(&self) -> usize {
        self.shared.lock().lines.len()
    }

    /// Waits for a line with index `mark` or later that satisfies `pred`;
    /// returns its index and text. Does not move the [`Proc::wait_for_line`]
    /// position, so independent waits do not disturb each other.
    ///
    /// # Errors
    ///
    /// As [`Proc::wait_for_line`].
    pub fn wait_for_line_after(
        &self,
        mark: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<(usize, String), String> {
        self.wait_until(timeout, |state| find_from(state, mark, &pred))
    }

    /// [`Proc::wait_for_line`] for async tests: does not block the runtime thread.
    ///
    /// # Errors
    ///
    /// As [`Proc::wait_for_line`].
    pub async fn wait_for_line_async(
        &self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        self.wait_until_async(timeout, |state| take_match(state, &pred))
            .await
    }

    /// Waits until the stdout line after the previous match parses as JSON and
    /// satisfies `pred`; returns the parsed value. Other lines are skipped.
    ///
    /// # Errors
    ///
    /// As [`Proc::wait_for_line`].
    pub fn wait_for_json(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let line = self.wait_for_line(|l| json_matches(l, &pred), timeout)?;
        serde_json::from_str(&line).map_err(|e| format!("{}: {e}", self.name()))
    }

    /// [`Proc::wait_for_json`] for async tests.
    ///
    /// # Errors
    ///
    /// As [`Proc::wait_for_line`].
    pub async fn wait_for_json_async(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let line = self
            .wait_for_line_async(|l| json_matches(l, &pred), timeout)
            .await?;
        serde_json::from_str(&line).map_err(|e| format!("{}: {e}", self.name()))
    }

    /// Waits for the process to exit and returns its status, once its output is read
    /// to the end too: a process's last lines may still be in the pipe when it is
    /// reaped, and a test reading the lines right after must see them. (A descendant
    /// that inherited the pipes could hold them open for ever: the wait for the end of
    /// the output is at most [`OUTPUT_DRAIN`].)
    ///
    /// # Errors
    ///
    /// When it is still running after `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, String> {
        let status = self.wait_until(timeout, |state| match state.exit {
            Some(status) => Poll::Ready(status),
            None => Poll::Pending,
        })?;
        let _ = self.wait_until(OUTPUT_DRAIN, |state| {
            if state.open_streams == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        Ok(status)
    }

    /// [`Proc::wait_exit`] for async tests.
    ///
    /// # Errors
    ///
    /// As [`Proc::wait_exit`].
    pub async fn wait_exit_async(&self, timeout: Duration) -> Result<ExitStatus, String> {
        let status = self
            .wait_until_async(timeout, |state| match state.exit {
                Some(status) => Poll::Ready(status),
                None => Poll::Pending,
            })
            .await?;
        let _ = self
            .wait_until_async(OUTPUT_DRAIN, |state| {
                if state.open_streams == 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        Ok(status)
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.shared.lock().exit
    }

    /// Sends `signal` to the process (not to its group).
    ///
    /// # Errors
    ///
    /// When the signal cannot be delivered (for example, the process is gone).
    pub fn signal(&self, signal: Signal) -> Result<(), String> {
        kill(self.raw_pid(), signal).map_err(|e| format!("{}: kill {signal}: {e}", self.name()))
    }

    /// Sends `signal` to the whole process group.
    ///
    /// # Errors
    ///
    /// When no process of the group is left.
    pub fn signal_group(&self, signal: Signal) -> Result<(), String> {
        killpg(self.raw_pid(), signal).map_err(|e| format!("{}: killpg {signal}: {e}", self.name()))
    }

    /// Writes `line` and a newline to the process's stdin.
    ///
    /// # Errors
    ///
    /// When stdin was closed or the process stopped reading.
    pub fn send_line(&self, line: &str) -> Result<(), String> {
        let mut stdin = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
        let pipe = stdin
            .as_mut()
            .ok_or_else(|| format!("{}: stdin is closed", self.name()))?;
        pipe.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| pipe.flush())
            .map_err(|e| format!("{}: writing to stdin: {e}", self.name()))
    }

    /// Closes the process's stdin (it reads end of file).
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Kills the process group (the process alone when it runs in its parent's
    /// group) with SIGKILL and waits (up to 10 s) until the process is reaped.
    /// Dropping the `Proc` does the same.
    pub fn kill(&self) {
        let _ = match self.group {
            Group::Own => killpg(self.raw_pid(), Signal::SIGKILL),
            Group::Parent => kill(self.raw_pid(), Signal::SIGKILL),
        };
        let _ = self.wait_exit(Duration::from_secs(10));
    }

    /// Closes stdin (the benchmark's children exit on it), waits up to `grace` for
    /// the process to exit, then kills it.
    pub fn finish(self, grace: Duration) {
        self.close_stdin();
        let _ = self.wait_exit(grace);
        // Drop kills what is left.
    }

    fn raw_pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX))
    }

    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut poll: impl FnMut(&mut State) -> Poll<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            match poll(&mut state) {
                Poll::Ready(value) => return Ok(value),
                Poll::Closed(why) => return Err(self.failure(&state, &why)),
                Poll::Pending => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure(&state, &format!("timed out after {timeout:?}")));
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    async fn wait_until_async<T>(
        &self,
        timeout: Duration,
        mut poll: impl FnMut(&mut State) -> Poll<T>,
    ) -> Result<T, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Register before looking, so a change in between is not missed.
            notified.as_mut().enable();
            {
                let mut state = self.shared.lock();
                match poll(&mut state) {
                    Poll::Ready(value) => return Ok(value),
                    Poll::Closed(why) => return Err(self.failure(&state, &why)),
                    Poll::Pending => {}
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let state = self.shared.lock();
                return Err(self.failure(&state, &format!("timed out after {timeout:?}")));
            }
        }
    }

    fn failure(&self, state: &State, why: &str) -> String {
        let status = match state.exit {
            Some(status) => format!("exited: {status}"),
            None => "still running".to_string(),
        };
        format!(
            "{} (pid {}, {status}): {why}; last output lines:\n{}",
            self.name(),
            self.pid,
            tail_of(state, TAIL_LINES)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.close_stdin();
        if self.exit_status().is_none() {
            self.kill();
        } else if self.group == Group::Own {
            // The leader is gone; children it left in the group are not.
            let _ = killpg(self.raw_pid(), Signal::SIGKILL);
        }
    }
}

impl fmt::Debug for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name())
            .field("pid", &self.pid)
            .finish()
    }
}

fn take_match(state: &mut State, pred: &impl Fn(&str) -> bool) -> Poll<String> {
    match find_from(state, state.cursor, pred) {
        Poll::Ready((index, line)) => {
            state.cursor = index + 1;
            Poll::Ready(line)
        }
        Poll::Closed(why) => Poll::Closed(why),
        Poll::Pending => Poll::Pending,
    }
}

fn find_from(state: &State, start: usize, pred: &impl Fn(&str) -> bool) -> Poll<(usize, String)> {
    let start = start.min(state.lines.len());
    if let Some(offset) = state.lines[start..].iter().position(|l| pred(&l.text)) {
        let index = start + offset;
        return Poll::Ready((index, state.lines[index].text.clone()));
    }
    if state.open_streams == 0 {
        return Poll::Closed("output closed without a matching line".to_string());
    }
    Poll::Pending
}

fn json_matches(line: &str, pred: &impl Fn(&serde_json::Value) -> bool) -> bool {
    line.starts_with('{') && serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| pred(&v))
}

fn tail_of(state: &State, n: usize) -> String {
    let lines: VecDeque<String> = state
        .lines
        .iter()
        .rev()
        .take(n)
        .map(ToString::to_string)
        .collect::<VecDeque<_>>();
    if lines.is_empty() {
        return "  (no output)".to_string();
    }
    lines
        .into_iter()
        .rev()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
