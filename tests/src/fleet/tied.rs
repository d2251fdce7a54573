//! Processes and directories that live as long as the test process, not as long as a
//! value: what a fixture kept in a `static` (never dropped) starts.
//!
//! - [`spawn_tied`] starts a child under `setpriv --pdeathsig SIG` from one long-lived
//!   thread (Linux sends the signal when the *thread* that forked the child ends, and a
//!   test's thread ends with the test), so the child gets SIG when the test process ends.
//! - [`owned_dir`] makes a temporary directory marked with the test process's id;
//!   [`sweep_abandoned`] removes those whose process has ended (the next run does it).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{mpsc, Mutex, OnceLock};

use tempfile::TempDir;

use crate::paths::system_program;
use crate::process::Proc;

/// File in an [`owned_dir`] holding the test process's id.
const OWNER_FILE: &str = "owner.pid";

/// Runs `cmd` (as [`Proc::spawn`] does) from a thread that lives as long as the test
/// process, under `setpriv --pdeathsig SIGNAL` (`KILL`, `TERM`…): the child gets the
/// signal when the test process ends. `setpriv` execs the program: the pid is the
/// program's.
///
/// # Panics
///
/// When the spawner thread cannot be started, or the program cannot be.
pub fn spawn_tied(name: &str, signal: &str, cmd: &Command) -> Proc {
    type Request = (String, Command, mpsc::Sender<Proc>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("tied-spawner".into())
            .spawn(move || {
                while let Ok((name, cmd, reply)) = rx.recv() {
                    let _ = reply.send(Proc::spawn(&name, cmd));
                }
                // The sender lives in a static: never reached while the process runs.
            })
            .unwrap_or_else(|e| panic!("cannot start the spawner thread: {e}"));
        Mutex::new(tx)
    });
    let mut tied = Command::new(system_program("setpriv"));
    tied.args(["--pdeathsig", signal, "--"])
        .arg(cmd.get_program());
    tied.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => tied.env(k, v),
            None => tied.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        tied.current_dir(dir);
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((name.to_owned(), tied, reply_tx))
        .unwrap_or_else(|e| panic!("spawner thread gone: {e}"));
    reply_rx
        .recv()
        .unwrap_or_else(|e| panic!("spawner thread gone: {e}"))
}

/// A new temporary directory named `PREFIX…`, marked as owned by this test process,
/// after sweeping the abandoned ones of that prefix ([`sweep_abandoned`]).
///
/// # Panics
///
/// When the directory cannot be created or marked.
pub fn owned_dir(prefix: &str) -> TempDir {
    sweep_abandoned(prefix);
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a directory {prefix}…: {e}"));
    let owner = dir.path().join(OWNER_FILE);
    fs::write(&owner, std::process::id().to_string())
        .unwrap_or_else(|e| panic!("write {}: {e}", owner.display()));
    dir
}

/// Remove the [`owned_dir`]s named `PREFIX…` whose test process has ended: a fixture
/// in a `static` is never dropped (its processes stop with the test process, its
/// directory stays behind until the next run sweeps it).
pub fn sweep_abandoned(prefix: &str) {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix));
        if !ours {
            continue;
        }
        let owner = fs::read_to_string(path.join(OWNER_FILE)).unwrap_or_default();
        let alive = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive && !owner.is_empty() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}
