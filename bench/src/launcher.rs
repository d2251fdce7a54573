//! How the orchestrator starts the measured processes: our own binary's hidden
//! `child` subcommands, the Python helper and system programs, each optionally
//! under `chrt -r 1`, run as the test harness' [`Proc`] in the benchmark's own
//! process group (so a Ctrl-C on the terminal reaches them too).

use std::path::{Path, PathBuf};
use std::process::Command;

use redpepper_tests::{Group, Proc};

/// Start `cmd`, labelled `name` in errors, with piped stdio; it is killed (by its
/// own pid) when the returned [`Proc`] is dropped.
pub fn spawn(name: &str, cmd: Command) -> anyhow::Result<Proc> {
    Ok(Proc::try_spawn_in(name, cmd, Group::Parent)?)
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
