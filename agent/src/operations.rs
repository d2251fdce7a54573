//! RedPepper's `command` request and the operations this agent runs.
//!
//! The manager sends Request `command` with kwargs `{id, cmdtype, args, kwargs}`. We
//! answer at once (success, nil), then run the operation on its own task and send
//! `command_progress` (0/1 at the start, 1/1 at the end) and one `command_result`
//! `{id, success, changed, output}`, shaped as RedPepper 0.3.4 shapes them.
//!
//! Operations: `noop.Noop`, `echo.Echo(message, reverse=false)`, `command.Run(command,
//! shell=true, cwd, env, stdin, capture_stdout=true, capture_stderr=true)`.

use std::process::Stdio;

use redpepper_core::{echo_reply, CallContext, HandlerError, Router, Session, Value};
use tokio::io::AsyncWriteExt;

/// The router every agent serves: `command` and `echo`.
pub fn router() -> Router {
    Router::new()
        .method("command", |ctx| async move { start_command(ctx) })
        .method(
            "echo",
            |ctx| async move { Ok(echo_reply(ctx.args, ctx.kwargs)) },
        )
}

/// One parsed `command` request.
#[derive(Debug, Clone)]
struct Command {
    id: String,
    cmdtype: String,
    args: Vec<Value>,
    kwargs: Vec<(Value, Value)>,
}

fn parse_command(ctx: &CallContext) -> Result<Command, HandlerError> {
    let text = |name: &str| -> Result<String, HandlerError> {
        ctx.kwarg(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                HandlerError::Failed(format!("command: kwarg `{name}` must be a string"))
            })
    };
    let id = text("id")?;
    let cmdtype = text("cmdtype")?;
    let args = match ctx.kwarg("args") {
        None | Some(Value::Nil) => vec![],
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(HandlerError::Failed(
                "command: kwarg `args` must be an array".into(),
            ))
        }
    };
    let kwargs = match ctx.kwarg("kwargs") {
        None | Some(Value::Nil) => vec![],
        Some(Value::Map(m)) => m.clone(),
        Some(_) => {
            return Err(HandlerError::Failed(
                "command: kwarg `kwargs` must be a map".into(),
            ))
        }
    };
    Ok(Command {
        id,
        cmdtype,
        args,
        kwargs,
    })
}

fn start_command(ctx: CallContext) -> Result<Value, HandlerError> {
    let cmd = parse_command(&ctx)?;
    let session = ctx.session;
    tokio::spawn(async move {
        progress(&session, &cmd.id, 0, &format!("Running {}...", cmd.cmdtype)).await;
        let result = run_operation(&cmd).await;
        progress(&session, &cmd.id, 1, &format!("Finished {}", cmd.cmdtype)).await;
        let data = Value::Map(vec![
            (Value::from("id"), Value::from(cmd.id.as_str())),
            (Value::from("success"), Value::from(result.succeeded)),
            (Value::from("changed"), Value::from(result.changed)),
            (Value::from("output"), Value::from(result.to_string())),
        ]);
        if let Err(e) = session.notify("command_result", data).await {
            tracing::warn!(command = %cmd.id, error = %e, "command result not delivered");
        }
    });
    Ok(Value::Nil)
}

async fn progress(session: &Session, id: &str, current: i64, message: &str) {
    let data = Value::Map(vec![
        (Value::from("command_id"), Value::from(id)),
        (Value::from("current"), Value::from(current)),
        (Value::from("total"), Value::from(1)),
        (Value::from("message"), Value::from(message)),
    ]);
    if let Err(e) = session.notify("command_progress", data).await {
        tracing::debug!(command = %id, error = %e, "command progress not delivered");
    }
}

/// RedPepper's operation result, rendered the way RedPepper renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpResult {
    /// Operation name as shown in the output, e.g. `echo.Echo("hi")`.
    pub name: String,
    /// Output lines.
    pub output: String,
    /// Whether the operation changed something.
    pub changed: bool,
    /// Whether it succeeded.
    pub succeeded: bool,
}

impl OpResult {
    fn new(name: String) -> Self {
        Self {
            name,
            output: String::new(),
            changed: false,
            succeeded: true,
        }
    }

    fn add(&mut self, line: &str) {
        self.output.push_str(line);
        self.output.push('\n');
    }

    fn fail(&mut self, line: &str) {
        self.add(line);
        self.succeeded = false;
    }
}

impl std::fmt::Display for OpResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Operation {}{}{}:\n{}",
            self.name,
            if self.succeeded {
                " succeeded"
            } else {
                " failed"
            },
            if self.changed { " (changed)" } else { "" },
            self.output.trim_end()
        )
    }
}

/// Keyword or positional argument `pos`/`name` of an operation.
struct OpArgs<'a> {
    cmd: &'a Command,
}

impl<'a> OpArgs<'a> {
    fn get(&self, pos: usize, name: &str) -> Option<&'a Value> {
        self.cmd
            .kwargs
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
            .or_else(|| self.cmd.args.get(pos))
    }

    fn string(&self, pos: usize, name: &str) -> Result<Option<String>, String> {
        match self.get(pos, name) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => Ok(s.as_str().map(str::to_owned)),
            Some(other) => Err(format!("argument `{name}` must be a string, got {other}")),
        }
    }

    fn flag(&self, pos: usize, name: &str, default: bool) -> Result<bool, String> {
        match self.get(pos, name) {
            None | Some(Value::Nil) => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(format!("argument `{name}` must be a bool, got {other}")),
        }
    }
}

/// Run one operation to completion.
async fn run_operation(cmd: &Command) -> OpResult {
    let args = OpArgs { cmd };
    let outcome = match cmd.cmdtype.as_str() {
        "noop.Noop" => Ok(OpResult::new("no-op".into())),
        "echo.Echo" => echo(&args),
        "command.Run" => run(&args).await,
        other => Err(format!("unknown operation {other}")),
    };
    outcome.unwrap_or_else(|e| {
        let mut r = OpResult::new(cmd.cmdtype.clone());
        r.fail(&format!("Failed to execute command {:?}:", cmd.cmdtype));
        r.add(&e);
        r
    })
}

fn echo(args: &OpArgs<'_>) -> Result<OpResult, String> {
    let message = args
        .string(0, "message")?
        .ok_or("echo.Echo needs `message`")?;
    let reverse = args.flag(1, "reverse", false)?;
    let mut r = OpResult::new(format!(
        "echo.Echo(\"{message}\"{})",
        if reverse { " reverse" } else { "" }
    ));
    if reverse {
        r.add(&message.chars().rev().collect::<String>());
    } else {
        r.add(&message);
    }
    Ok(r)
}

async fn run(args: &OpArgs<'_>) -> Result<OpResult, String> {
    let command = args
        .string(0, "command")?
        .ok_or("command.Run needs `command`")?;
    let shell = args.flag(3, "shell", true)?;
    let cwd = args.string(4, "cwd")?;
    let stdin = args.string(5, "stdin")?;
    let capture_stdout = args.flag(8, "capture_stdout", true)?;
    let capture_stderr = args.flag(9, "capture_stderr", true)?;
    let mut r = OpResult::new(format!("Run(\"{command}\")"));
    let mut proc = if shell {
        let mut p = tokio::process::Command::new("/bin/sh");
        p.arg("-c").arg(&command);
        p
    } else {
        let mut words = command.split_whitespace();
        let program = words.next().ok_or("command.Run: empty command")?;
        let mut p = tokio::process::Command::new(program);
        p.args(words);
        p
    };
    if let Some(cwd) = &cwd {
        proc.current_dir(cwd);
    }
    if let Some(Value::Map(env)) = args.get(7, "env") {
        for (k, v) in env {
            let key = k.as_str().ok_or("command.Run: env keys must be strings")?;
            let val = match v {
                Value::String(s) => s.as_str().unwrap_or_default().to_owned(),
                Value::Integer(_) | Value::F32(_) | Value::F64(_) => v.to_string(),
                Value::Boolean(b) => if *b { "True" } else { "False" }.to_owned(),
                _ => return Err(format!("Environment variable {key} has invalid type")),
            };
            proc.env(key, val);
        }
    }
    proc.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(if capture_stdout {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stderr(if capture_stderr {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .kill_on_drop(true);
    let mut child = proc
        .spawn()
        .map_err(|e| format!("cannot start `{command}`: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The child may exit without reading: a broken pipe is not our failure.
        let _ = pipe.write_all(input.as_bytes()).await;
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("waiting for `{command}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stdout.trim_end().is_empty() {
        r.add(stdout.trim_end());
    }
    if !stderr.trim_end().is_empty() {
        r.add(&format!("Stderr:\n{}", stderr.trim_end()));
    }
    match out.status.code() {
        Some(0) => r.add("Exit status: 0"),
        Some(code) => r.fail(&format!("Command failed with return code {code}")),
        None => r.fail("Command was killed by a signal"),
    }
    r.changed = true;
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cmd(cmdtype: &str, kwargs: Vec<(&str, Value)>) -> Command {
        Command {
            id: "c1".into(),
            cmdtype: cmdtype.into(),
            args: vec![],
            kwargs: kwargs
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        }
    }

    #[tokio::test]
    async fn noop_and_echo_render_like_redpepper() {
        let r = run_operation(&cmd("noop.Noop", vec![])).await;
        assert_eq!(r.to_string(), "Operation no-op succeeded:\n");
        let r = run_operation(&cmd("echo.Echo", vec![("message", Value::from("hello"))])).await;
        assert_eq!(
            r.to_string(),
            "Operation echo.Echo(\"hello\") succeeded:\nhello"
        );
        let r = run_operation(&cmd(
            "echo.Echo",
            vec![
                ("message", Value::from("abc")),
                ("reverse", Value::from(true)),
            ],
        ))
        .await;
        assert!(r.succeeded);
        assert_eq!(r.output, "cba\n");
    }

    #[tokio::test]
    async fn run_reports_output_status_and_failure() {
        let r = run_operation(&cmd(
            "command.Run",
            vec![("command", Value::from("echo out; echo err >&2; exit 3"))],
        ))
        .await;
        assert!(!r.succeeded && r.changed);
        let text = r.to_string();
        assert!(
            text.contains("out") && text.contains("Stderr:\nerr"),
            "{text}"
        );
        assert!(text.contains("Command failed with return code 3"), "{text}");
        let r = run_operation(&cmd(
            "command.Run",
            vec![
                ("command", Value::from("cat; echo $FOO; pwd")),
                ("stdin", Value::from("in ")),
                ("cwd", Value::from("/tmp")),
                (
                    "env",
                    Value::Map(vec![(Value::from("FOO"), Value::from(42))]),
                ),
            ],
        ))
        .await;
        assert!(r.succeeded, "{r}");
        assert!(
            r.output.contains("in 42\n/tmp\nExit status: 0"),
            "{}",
            r.output
        );
    }

    #[tokio::test]
    async fn unknown_operation_fails_naming_it() {
        let r = run_operation(&cmd("nope.Nope", vec![])).await;
        assert!(!r.succeeded);
        assert!(r.to_string().contains("unknown operation nope.Nope"));
    }
}
