//! Child processes as the orchestrator sees them: spawned with piped stdio, their
//! stdout read line by line on a thread, their stderr's last lines kept for error
//! messages, killed (by their own pid) and reaped when dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

const STDERR_TAIL: usize = 20;

/// A running child.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// Start `cmd`, labelled `name` in errors.
    pub fn spawn(name: &str, mut cmd: Command) -> anyhow::Result<Proc> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr_pipe = child.stderr.take().context("no stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        Ok(Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "; its stderr ends with:\n{}",
                Vec::from(tail.clone()).join("\n")
            )
        }
    }

    /// Wait at most `timeout` for a line `{"key": value}` and return the value; lines
    /// with other keys are skipped, an `error` line is an error.
    pub fn expect(&mut self, key: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{} said no {key:?} within {:.0} s{}",
                    self.name,
                    timeout.as_secs_f64(),
                    self.stderr_tail()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    // Give the stderr thread a moment to collect the last words.
                    std::thread::sleep(Duration::from_millis(100));
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "{} exited ({}) before saying {key:?}{}",
                        self.name,
                        status.map_or("still running".to_owned(), |s| s.to_string()),
                        self.stderr_tail()
                    )
                }
            };
            let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(error) = object.remove("error") {
                let text = error
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_owned);
                bail!("{}: {text}{}", self.name, self.stderr_tail());
            }
            if let Some(value) = object.remove(key) {
                return Ok(value);
            }
        }
    }

    /// Send one command line to the child's stdin.
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("writing to {}", self.name))
    }

    /// Close stdin (children exit on it), wait up to `grace`, then kill.
    pub fn finish(mut self, grace: Duration) {
        self.stdin = None;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Drop kills.
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Resident set size of process `pid`, bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// CPU time (user + system, all threads) process `pid` has used so far, seconds.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<u64>()? as f64)
    };
    // /proc reports them in USER_HZ, which Linux fixes at 100 per second.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// How to start our own binary's hidden child subcommands and the Python helper.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// Our own executable.
    pub exe: PathBuf,
    /// The Python interpreter with RedPepper 0.3.4, if Python baselines are wanted.
    pub python: Option<PathBuf>,
    /// `bench/python/rp_bench.py`.
    pub script: PathBuf,
    /// Run every measured process with the real-time round-robin policy
    /// (`chrt -r 1`), so other load on the machine does not delay its wake-ups.
    pub realtime: bool,
}

impl Launcher {
    /// A system program, under `chrt -r 1` when real-time scheduling is asked for.
    pub fn system(&self, program: &str) -> Command {
        self.command(Path::new(program))
    }

    /// `program`, under `chrt -r 1` when real-time scheduling is asked for (the
    /// policy is inherited by every thread the program starts).
    fn command(&self, program: &Path) -> Command {
        if self.realtime {
            let mut cmd = Command::new("chrt");
            cmd.args(["-r", "1"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// `redpepper-bench child SUBCOMMAND ARGS...`.
    pub fn ours(&self, args: &[String]) -> Command {
        let mut cmd = self.command(&self.exe);
        cmd.arg("child").args(args);
        cmd
    }

    /// `python rp_bench.py ARGS...`, when Python is enabled.
    pub fn python(&self, args: &[String]) -> Option<Command> {
        let python = self.python.as_ref()?;
        let mut cmd = self.command(python);
        cmd.arg(&self.script).args(args);
        cmd.env("PYTHONUNBUFFERED", "1");
        Some(cmd)
    }
}

/// The Python helper script next to this crate's sources.
pub fn default_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("rp_bench.py")
}
