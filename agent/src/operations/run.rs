//! `command.Run`: RedPepper's process runner, with its arguments and their positions:
//! `command, user=None, group=None, shell=True, cwd=None, stdin=None, wait=True,
//! env=None, capture_stdout=True, capture_stderr=True, encoding="utf-8"`.
//!
//! As in RedPepper (Python's `subprocess.Popen`):
//! - `command` is a string or a list of strings. With `shell` (the default) it runs as
//!   `/bin/sh -c COMMAND` (a list: its first item is the script, the rest `$0`, `$1`...);
//!   without, a list is the program and its arguments and a string is the program's
//!   name alone (no splitting on spaces).
//! - `user` and `group` (a name or a numeric id) run the process as that user and group
//!   (the user's primary group when only `user` is given, `HOME` set to the user's home).
//!   The agent must be allowed to switch to them (usually: it runs as root); when it is
//!   not, the operation fails with the reason, it never runs as the agent's own user.
//! - `wait=false` starts the process and reports `$ COMMAND &` at once; capturing output
//!   needs waiting, so it requires `capture_stdout=false, capture_stderr=false`.
//! - `encoding` decodes the output (and encodes `stdin`): `utf-8` (default), `ascii`
//!   and `latin-1` (`iso-8859-1`) are supported; undecodable bytes are replaced.

use std::process::Stdio;

use nix::unistd::{Gid, Group, Uid, User};
use redpepper_core::Value;
use tokio::io::AsyncWriteExt;

use super::{OpArgs, OpResult};

/// The text encodings `encoding` may name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Utf8,
    Ascii,
    Latin1,
}

impl Encoding {
    fn parse(name: &str) -> Result<Self, String> {
        let norm = name.to_ascii_lowercase().replace(['-', '_'], "");
        match norm.as_str() {
            "utf8" => Ok(Self::Utf8),
            "ascii" | "usascii" => Ok(Self::Ascii),
            "latin1" | "iso88591" | "l1" => Ok(Self::Latin1),
            _ => Err(format!(
                "command.Run: encoding {name:?} is not supported (utf-8, ascii, latin-1)"
            )),
        }
    }

    fn decode(self, bytes: &[u8]) -> String {
        match self {
            Self::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Self::Ascii => bytes
                .iter()
                .map(|&b| {
                    if b.is_ascii() {
                        char::from(b)
                    } else {
                        '\u{fffd}'
                    }
                })
                .collect(),
            Self::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        }
    }

    fn encode(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Utf8 => Ok(text.as_bytes().to_vec()),
            Self::Ascii | Self::Latin1 => {
                let max = if self == Self::Ascii { 0x7f } else { 0xff };
                text.chars()
                    .map(|c| {
                        u8::try_from(u32::from(c))
                            .ok()
                            .filter(|&b| u32::from(b) <= max)
                            .ok_or_else(|| format!("command.Run: stdin holds {c:?}, not encodable"))
                    })
                    .collect()
            }
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

/// `Run`'s parameters in order (positions as `args.get` reads them below).
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
];

/// Runs `command.Run`. `Err` means the process could not be run at all.
pub(super) async fn run(args: &OpArgs<'_>) -> Result<OpResult, String> {
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
    if let Some(user) = &user {
        let found = lookup_user(user)?;
        proc.uid(found.uid.as_raw());
        proc.env("HOME", &found.dir);
        if group.is_none() {
            proc.gid(found.gid.as_raw());
        }
    }
    if let Some(group) = &group {
        proc.gid(lookup_group(group)?.as_raw());
    }
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
        .stderr(piped(capture_stderr))
        .kill_on_drop(wait);
    let mut child = proc
        .spawn()
        .map_err(|e| format!("cannot start {shown:?}: {e}"))?;
    let feed = child.stdin.take().zip(stdin);
    if !wait {
        // Started in the background, as `Popen` without `communicate`: fed and reaped
        // by a task of its own so it never lingers as a zombie.
        tokio::spawn(async move {
            if let Some((mut pipe, input)) = feed {
                let _ = pipe.write_all(&input).await;
            }
            let _ = child.wait().await;
        });
        r.add(&format!("$ {shown} &"));
        return Ok(r);
    }
    // Fed while its output is read, so a child that writes before reading all of its
    // input never fills a pipe both sides wait on. It may exit without reading: a
    // broken pipe is not our failure.
    let writer = async move {
        if let Some((mut pipe, input)) = feed {
            let _ = pipe.write_all(&input).await;
        }
    };
    let (_, out) = tokio::join!(writer, child.wait_with_output());
    let out = out.map_err(|e| format!("waiting for {shown:?}: {e}"))?;
    let stdout = encoding.decode(&out.stdout);
    let stderr = encoding.decode(&out.stderr);
    if !stdout.trim_end().is_empty() {
        r.add(stdout.trim_end());
    }
    if !stderr.trim_end().is_empty() {
        r.add(&format!("Stderr:\n{}", stderr.trim_end()));
    }
    // A signal N is Python's return code -N.
    let code = out.status.code().map(i64::from).or_else(|| {
        std::os::unix::process::ExitStatusExt::signal(&out.status).map(|n| -i64::from(n))
    });
    match code {
        Some(0) => {}
        Some(code) => r.fail(&format!("Command failed with return code {code}")),
        None => r.fail("Command failed with an unknown status"),
    }
    r.changed = true;
    Ok(r)
}
