//! RedPepper's `command` request and the operations this agent runs.
//!
//! The manager sends Request `command` with kwargs `{id, cmdtype, args, kwargs}`. We
//! answer at once (success, nil), then run the operation on its own task and send
//! `command_progress` (0/1 at the start, 1/1 when the operation ran to its end) and one
//! `command_result` `{id, success, changed, output}`, shaped as RedPepper 0.3.4 shapes
//! them. An operation that cannot run at all (unknown name, bad arguments, a program
//! that cannot start) is RedPepper's exception path: no 1/1 progress, and a failed
//! result reading `Failed to execute command 'NAME':` and the reason.
//!
//! Operations: `noop.Noop`, `echo.Echo(message, reverse=false)` and `command.Run`
//! (see [`run`]).

mod run;

use redpepper_core::{echo_reply, CallContext, HandlerError, Router, Session, Value};

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
        let result = match run_operation(&cmd).await {
            Ok(result) => {
                progress(&session, &cmd.id, 1, &format!("Finished {}", cmd.cmdtype)).await;
                result
            }
            Err(failed) => {
                tracing::warn!(command = %cmd.id, operation = %cmd.cmdtype, "{failed}");
                failed
            }
        };
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

/// Run one operation to completion: `Err` is RedPepper's exception path (the
/// operation could not run), carrying the failed result to report.
async fn run_operation(cmd: &Command) -> Result<OpResult, OpResult> {
    let args = OpArgs { cmd };
    let outcome = match cmd.cmdtype.as_str() {
        "noop.Noop" => Ok(OpResult::new("no-op".into())),
        "echo.Echo" => echo(&args),
        "command.Run" => run::run(&args).await,
        other => Err(format!("unknown operation {other}")),
    };
    outcome.map_err(|e| {
        let mut r = OpResult::new(cmd.cmdtype.clone());
        r.fail(&format!(
            "Failed to execute command {}:",
            py_repr(&cmd.cmdtype)
        ));
        r.add(&e);
        r
    })
}

/// A string quoted as Python's `repr` quotes it (`'x'`, or `"x"` when it holds a
/// single quote and no double quote), as RedPepper writes names in its messages.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
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

    /// Runs an operation that must run to its end (success or not).
    async fn ran(c: Command) -> OpResult {
        match run_operation(&c).await {
            Ok(r) => r,
            Err(r) => panic!("{} could not run: {r}", c.cmdtype),
        }
    }

    /// Runs an operation that must fail to run (RedPepper's exception path).
    async fn refused(c: Command) -> String {
        match run_operation(&c).await {
            Ok(r) => panic!("{} ran: {r}", c.cmdtype),
            Err(r) => {
                assert!(!r.succeeded);
                r.to_string()
            }
        }
    }

    #[tokio::test]
    async fn noop_and_echo_render_like_redpepper() {
        let r = ran(cmd("noop.Noop", vec![])).await;
        assert_eq!(r.to_string(), "Operation no-op succeeded:\n");
        let r = ran(cmd("echo.Echo", vec![("message", Value::from("hello"))])).await;
        assert_eq!(
            r.to_string(),
            "Operation echo.Echo(\"hello\") succeeded:\nhello"
        );
        let r = ran(cmd(
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
        let r = ran(cmd(
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
        let r = ran(cmd(
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
    async fn run_without_shell_takes_a_list_or_one_program_name() {
        let list = Value::Array(vec![
            Value::from("printf"),
            Value::from("%s|%s"),
            Value::from("a b"),
            Value::from("c"),
        ]);
        let r = ran(cmd(
            "command.Run",
            vec![("command", list), ("shell", Value::from(false))],
        ))
        .await;
        assert!(r.succeeded, "{r}");
        assert!(r.output.starts_with("a b|c\n"), "{}", r.output);
        // A string without a shell is one program name, as with Python's Popen: the
        // words are not split.
        let text = refused(cmd(
            "command.Run",
            vec![
                ("command", Value::from("echo hi")),
                ("shell", Value::from(false)),
            ],
        ))
        .await;
        assert!(text.contains("cannot start \"echo hi\""), "{text}");
    }

    #[tokio::test]
    async fn run_in_the_background_and_encodings() {
        let text = refused(cmd(
            "command.Run",
            vec![
                ("command", Value::from("true")),
                ("wait", Value::from(false)),
            ],
        ))
        .await;
        assert!(
            text.contains("Cannot capture output if not waiting"),
            "{text}"
        );
        let r = ran(cmd(
            "command.Run",
            vec![
                ("command", Value::from("true")),
                ("wait", Value::from(false)),
                ("capture_stdout", Value::from(false)),
                ("capture_stderr", Value::from(false)),
            ],
        ))
        .await;
        assert_eq!(
            r.to_string(),
            "Operation Run(\"true &\") succeeded:\n$ true &"
        );
        let r = ran(cmd(
            "command.Run",
            vec![
                ("command", Value::from("printf '\\351'")),
                ("encoding", Value::from("latin-1")),
            ],
        ))
        .await;
        assert!(r.output.starts_with("\u{e9}\n"), "{:?}", r.output);
        let text = refused(cmd(
            "command.Run",
            vec![
                ("command", Value::from("true")),
                ("encoding", Value::from("ebcdic")),
            ],
        ))
        .await;
        assert!(
            text.contains("encoding \"ebcdic\" is not supported"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn run_as_a_user_never_falls_back_to_the_agents_own() {
        let text = refused(cmd(
            "command.Run",
            vec![
                ("command", Value::from("id -u")),
                ("user", Value::from("no-such-user-redpepper")),
            ],
        ))
        .await;
        assert!(
            text.contains("no such user \"no-such-user-redpepper\""),
            "{text}"
        );
        // Running as the agent's own uid works; as root (when we are not) it must fail
        // to start, never run as us.
        let me = nix::unistd::Uid::current().as_raw();
        let r = ran(cmd(
            "command.Run",
            vec![
                ("command", Value::from("id -u")),
                ("user", Value::from(i64::from(me))),
            ],
        ))
        .await;
        assert!(r.output.starts_with(&format!("{me}\n")), "{}", r.output);
        if me == 0 {
            let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
            let r = ran(cmd(
                "command.Run",
                vec![
                    ("command", Value::from("id -u; id -g; echo $HOME")),
                    ("user", Value::from("nobody")),
                ],
            ))
            .await;
            let want = format!("{}\n{}\n{}\n", nobody.uid, nobody.gid, nobody.dir.display());
            assert!(r.output.starts_with(&want), "{}", r.output);
        } else {
            let text = refused(cmd(
                "command.Run",
                vec![
                    ("command", Value::from("id -u")),
                    ("user", Value::from("root")),
                ],
            ))
            .await;
            assert!(text.contains("cannot start"), "{text}");
        }
    }

    #[tokio::test]
    async fn unknown_operation_fails_naming_it_as_redpepper_does() {
        let text = refused(cmd("nope.Nope", vec![])).await;
        assert!(
            text.contains("Failed to execute command 'nope.Nope':"),
            "{text}"
        );
        assert!(text.contains("unknown operation nope.Nope"), "{text}");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\nb'\""), "'a\\nb\\'\"'");
    }
}
