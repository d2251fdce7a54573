//! `command.Run`: RedPepper's process runner, with its arguments and their positions:
//! `command, user=None, group=None, shell=True, cwd=None, stdin=None, wait=True,
//! env=None, capture_stdout=True, capture_stderr=True, encoding="utf-8"`, and ours after
//! them: `timeout=None`.
//!
//! As in RedPepper (Python's `subprocess.Popen`):
//! - `command` is a string or a list of strings. With `shell` (the default) it runs as
//!   `/bin/sh -c COMMAND` (a list: its first item is the script, the rest `$0`, `$1`...);
//!   without, a list is the program and its arguments and a string is the program's
//!   name alone (no splitting on spaces).
//! - `user` and `group` (a name or a numeric id) run the process as that user and group
//!   (the user's primary group when only `user` is given). The agent must be allowed to
//!   switch to them (usually: it runs as root); when it is not, the operation fails
//!   with the reason, it never runs as the agent's own user. `cwd` is entered before
//!   switching, as Python does.
//! - `wait=false` starts the process and reports `$ COMMAND &` at once; capturing output
//!   needs waiting, so it requires `capture_stdout=false, capture_stderr=false`.
//! - `encoding` decodes the output (and encodes `stdin`): `utf-8` (default), `ascii`
//!   and `latin-1` (`iso-8859-1`) are supported; undecodable bytes are replaced.
//!
//! Beyond RedPepper (issue 13):
//! - Output is captured within [`RunLimits::output_limit`] bytes: split evenly between
//!   the captured streams, each keeping its first and last bytes with a line
//!   `... N bytes omitted ...` between them ([`capture`]).
//! - `timeout` (seconds, > 0) stops the process: its whole process group gets SIGTERM,
//!   then SIGKILL after a grace ([`child`]); so does `cancel`, and so does dropping the
//!   run. The result is failed: the output so far, then `Command timed out after Ns`
//!   or `Command cancelled`. A `wait=false` process is neither timed nor cancelled.
//! - The child's environment is the agent's without its secrets, or with `user` a login
//!   environment, and with `user` it gets the user's supplementary groups ([`env`]).
//!
//! Files: [`encoding`], [`capture`], [`child`], [`env`].

mod capture;
mod child;
mod encoding;
mod env;
#[cfg(test)]
mod tests;

use std::ffi::CString;
use std::process::Stdio;
use std::time::Duration;

use nix::unistd::{Gid, Group, Uid, User};
use redpepper_core::Value;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::{OpArgs, OpResult};
use capture::Capture;
use child::{Identity, Stopped};
use encoding::Encoding;

/// Limits of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunLimits {
    /// Bytes of output kept, stdout and stderr together (split evenly between the
    /// streams captured). Default: `commands.output_limit`'s, 256 KiB.
    pub output_limit: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            output_limit: redpepper_config::AgentCommandsConfig::default().output_limit,
        }
    }
}

/// The command as given: one string or a list of strings.
enum CommandLine {
    Text(String),
    List(Vec<String>),
}

impl CommandLine {
    fn parse(args: &OpArgs<'_>) -> Result<Self, String> {
        match args.get(0, "command") {
            Some(Value::String(s)) => s
                .as_str()
                .map(|s| Self::Text(s.to_owned()))
                .ok_or_else(|| "command.Run: `command` is not valid UTF-8".to_owned()),
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        format!("command.Run: `command` list items must be strings, got {v}")
                    })
                })
                .collect::<Result<_, _>>()
                .map(Self::List),
            None | Some(Value::Nil) => Err("command.Run needs `command`".into()),
            Some(other) => Err(format!(
                "command.Run: `command` must be a string or a non-empty list of strings, got {other}"
            )),
        }
    }

    /// As RedPepper renders it in `Run("...")` and `$ ... &`.
    fn shown(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::List(l) => format!("{l:?}"),
        }
    }

    fn process(&self, shell: bool) -> tokio::process::Command {
        let (program, rest): (&str, &[String]) = match self {
            Self::Text(s) if shell => {
                let mut p = tokio::process::Command::new("/bin/sh");
                p.arg("-c").arg(s);
                return p;
            }
            Self::Text(s) => (s, &[]),
            Self::List(l) if shell => {
                let mut p = tokio::process::Command::new("/bin/sh");
                p.arg("-c").args(l);
                return p;
            }
            Self::List(l) => match l.split_first() {
                Some((first, rest)) => (first, rest),
                None => ("", &[]),
            },
        };
        let mut p = tokio::process::Command::new(program);
        p.args(rest);
        p
    }
}

/// A user or group given by name or numeric id.
fn id_arg(args: &OpArgs<'_>, pos: usize, name: &str) -> Result<Option<String>, String> {
    match args.get(pos, name) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            Some("") => Ok(None),
            Some(s) => Ok(Some(s.to_owned())),
            None => Err(format!("command.Run: `{name}` is not valid UTF-8")),
        },
        Some(Value::Integer(i)) => Ok(Some(i.to_string())),
        Some(other) => Err(format!(
            "command.Run: `{name}` must be a name or a number, got {other}"
        )),
    }
}

fn lookup_user(user: &str) -> Result<User, String> {
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    };
    found
        .map_err(|e| format!("command.Run: looking up user {user:?}: {e}"))?
        .ok_or_else(|| format!("command.Run: no such user {user:?}"))
}

fn lookup_group(group: &str) -> Result<Gid, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    Group::from_name(group)
        .map_err(|e| format!("command.Run: looking up group {group:?}: {e}"))?
        .map(|g| g.gid)
        .ok_or_else(|| format!("command.Run: no such group {group:?}"))
}

/// Environment value as RedPepper stringifies it (`str(v)` for str, int, float, bool).
fn env_value(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => s
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("Environment variable {key} is not valid UTF-8")),
        Value::Integer(_) | Value::F32(_) | Value::F64(_) => Ok(v.to_string()),
        Value::Boolean(b) => Ok(if *b { "True" } else { "False" }.to_owned()),
        _ => Err(format!("Environment variable {key} has invalid type")),
    }
}

/// `Run`'s parameters in order (positions as `args.get` reads them below): RedPepper's,
/// then ours (`timeout`).
pub(super) const PARAMS: &[&str] = &[
    "command",
    "user",
    "group",
    "shell",
    "cwd",
    "stdin",
    "wait",
    "env",
    "capture_stdout",
    "capture_stderr",
    "encoding",
    "timeout",
];

/// `timeout`: seconds, an int or a float > 0; absent or None: no limit.
fn timeout_arg(args: &OpArgs<'_>) -> Result<Option<Duration>, String> {
    let secs = match args.get(11, "timeout") {
        None | Some(Value::Nil) => return Ok(None),
        Some(Value::Integer(i)) => i.as_f64(),
        Some(Value::F32(f)) => Some(f64::from(*f)),
        Some(Value::F64(f)) => Some(*f),
        Some(_) => None,
    };
    let bad = || {
        let given = args
            .get(11, "timeout")
            .map(Value::to_string)
            .unwrap_or_default();
        format!("command.Run: `timeout` must be a number of seconds > 0, got {given}")
    };
    match secs {
        Some(s) if s > 0.0 => Duration::try_from_secs_f64(s).map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// The supplementary groups of `user` with `primary`, as initgroups(3) sets them.
fn group_list(user: &User, primary: Gid) -> Result<Vec<Gid>, String> {
    let name = CString::new(user.name.as_bytes())
        .map_err(|_| format!("command.Run: user name {:?} holds a NUL", user.name))?;
    nix::unistd::getgrouplist(&name, primary)
        .map_err(|e| format!("command.Run: looking up the groups of {:?}: {e}", user.name))
}

/// Runs `command.Run`. `Err` means the process could not be run at all.
pub(crate) async fn run(
    args: &OpArgs<'_>,
    limits: &RunLimits,
    cancel: &CancellationToken,
) -> Result<OpResult, String> {
    let command = CommandLine::parse(args)?;
    let user = id_arg(args, 1, "user")?;
    let group = id_arg(args, 2, "group")?;
    let shell = args.flag(3, "shell", true)?;
    let cwd = args.string(4, "cwd")?;
    let stdin = args.string(5, "stdin")?;
    let wait = args.flag(6, "wait", true)?;
    let capture_stdout = args.flag(8, "capture_stdout", true)?;
    let capture_stderr = args.flag(9, "capture_stderr", true)?;
    let encoding = Encoding::parse(&args.string(10, "encoding")?.unwrap_or("utf-8".into()))?;
    let timeout = timeout_arg(args)?;
    if !wait && (capture_stdout || capture_stderr) {
        return Err("Cannot capture output if not waiting for command to finish".into());
    }
    let stdin = stdin.map(|s| encoding.encode(&s)).transpose()?;

    let shown = command.shown();
    let mut r = OpResult::new(format!(
        "Run(\"{shown}{}\"{})",
        if wait { "" } else { " &" },
        user.as_deref()
            .map(|u| format!(" as {u}"))
            .unwrap_or_default()
    ));
    let mut proc = command.process(shell);
    let group = group.as_deref().map(lookup_group).transpose()?;
    let (identity, vars) = match &user {
        Some(user) => {
            let found = lookup_user(user)?;
            let primary = group.unwrap_or(found.gid);
            let login = env::LoginUser {
                name: &found.name,
                root: found.uid.is_root(),
                home: &found.dir,
                shell: &found.shell,
            };
            let identity = Identity {
                groups: Some(group_list(&found, primary)?),
                gid: Some(primary),
                uid: Some(found.uid),
            };
            (identity, env::login(&login, std::env::vars_os()))
        }
        None => {
            let identity = Identity {
                gid: group,
                ..Identity::default()
            };
            (identity, env::scrubbed(std::env::vars_os()))
        }
    };
    identity.apply(&mut proc);
    proc.env_clear().envs(vars);
    if let Some(cwd) = &cwd {
        proc.current_dir(cwd);
    }
    match args.get(7, "env") {
        None | Some(Value::Nil) => {}
        Some(Value::Map(env)) => {
            for (k, v) in env {
                let key = k.as_str().ok_or("command.Run: env keys must be strings")?;
                proc.env(key, env_value(key, v)?);
            }
        }
        Some(_) => return Err("env must be a mapping of environment variables".into()),
    }
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    proc.stdin(piped(stdin.is_some()))
        .stdout(piped(capture_stdout))
        .stderr(piped(capture_stderr));
    if wait {
        proc.process_group(0).kill_on_drop(true);
    }
    let mut child = proc
        .spawn()
        .map_err(|e| format!("cannot start {shown:?}: {e}"))?;
    if !wait {
        // Started in the background, as `Popen` without `communicate`: fed and reaped
        // by a task of its own so it never lingers as a zombie. Not timed.
        let feed = child.stdin.take().zip(stdin);
        tokio::spawn(async move {
            if let Some((mut pipe, input)) = feed {
                let _ = pipe.write_all(&input).await;
            }
            let _ = child.wait().await;
        });
        r.add(&format!("$ {shown} &"));
        return Ok(r);
    }
    let streams = usize::from(capture_stdout) + usize::from(capture_stderr);
    let cap = limits.output_limit / streams.max(1);
    let ended = child::supervise(
        child,
        stdin,
        Capture::new(cap),
        Capture::new(cap),
        timeout,
        cancel,
    )
    .await
    .map_err(|e| format!("waiting for {shown:?}: {e}"))?;
    let stdout = ended.stdout.into_text(encoding);
    let stderr = ended.stderr.into_text(encoding);
    if !stdout.trim_end().is_empty() {
        r.add(stdout.trim_end());
    }
    if !stderr.trim_end().is_empty() {
        r.add(&format!("Stderr:\n{}", stderr.trim_end()));
    }
    r.changed = true;
    let status = match ended.outcome {
        Ok(status) => status,
        Err(Stopped::TimedOut) => {
            let secs = timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
            r.fail(&format!("Command timed out after {secs}s"));
            return Ok(r);
        }
        Err(Stopped::Cancelled) => {
            r.fail("Command cancelled");
            return Ok(r);
        }
    };
    // A signal N is Python's return code -N.
    let code = status
        .code()
        .map(i64::from)
        .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|n| -i64::from(n)));
    match code {
        Some(0) => {}
        Some(code) => r.fail(&format!("Command failed with return code {code}")),
        None => r.fail("Command failed with an unknown status"),
    }
    Ok(r)
}
