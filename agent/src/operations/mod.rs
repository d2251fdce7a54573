//! RedPepper's `command` request and the operations this agent runs.
//!
//! Results go through [`crate::commands`]: kept until the manager has them, sized to
//! the session. A `command` whose id is running already is refused (failed
//! Response); `cancel(id)` tells a running command to stop.
//!
//! The manager sends Request `command` with kwargs `{id, cmdtype, args, kwargs}`. We
//! answer at once (success, nil), then run the operation on its own task and send
//! `command_progress` (0/1 at the start, 1/1 when the operation ran to its end) and one
//! `command_result` `{id, success, changed, output}`, shaped as RedPepper 0.3.4 shapes
//! them. An operation that cannot run at all (unknown name, bad arguments, a program
//! that cannot start) is RedPepper's exception path: no 1/1 progress, and a failed
//! result reading `Failed to execute command 'NAME':` and the reason.
//!
//! `cmdtype` `state` runs a state instead: see [`state`].
//!
//! Operations: `noop.Noop`, `echo.Echo(message, reverse=false)`, `command.Run` (see
//! [`run`]), `data.Show(name)` (see [`data`]), `file.Installed`, `file.Symlinked` and
//! `file.Dir` (see [`file`]). Any other `module.Class` fails with "operation X is not
//! available in this agent" (RedPepper's custom operation modules are Python code).
//!
//! Files: [`result`] (results and errors), [`pyfmt`] (values as Python writes them).

mod data;
mod file;
mod pyfmt;
mod result;
mod run;
mod state;

use std::sync::Arc;

use redpepper_config::AgentCommandsConfig;
use redpepper_core::{echo_reply, CallContext, HandlerError, Router, Session, Value};
use tokio_util::sync::CancellationToken;

use crate::commands::outbox::send_progress;
use crate::commands::{Commands, Outcome};

use result::OpError;
pub use result::OpResult;
use state::condition::Changed;

/// The router every agent serves: `command`, `cancel` and `echo`, with its own
/// [`Commands`] (default bounds; results go out once on the session their command
/// came in on: see [`crate::commands`]).
pub fn router() -> Router {
    router_with(Commands::new(&AgentCommandsConfig::default()))
}

/// The router every agent serves, over `commands` (the [`Agent`](crate::Agent)
/// attaches its sessions to it).
pub fn router_with(commands: Arc<Commands>) -> Router {
    let for_cancel = commands.clone();
    Router::new()
        .method("command", move |ctx| {
            let commands = commands.clone();
            async move { start_command(ctx, commands) }
        })
        .method("cancel", move |ctx| {
            let commands = for_cancel.clone();
            async move { cancel(&ctx, &commands) }
        })
        .method(
            "echo",
            |ctx| async move { Ok(echo_reply(ctx.args, ctx.kwargs)) },
        )
}

/// `cancel(id)`: true when a running command was told to stop, false when no
/// command with that id runs.
fn cancel(ctx: &CallContext, commands: &Commands) -> Result<Value, HandlerError> {
    let id = ctx
        .kwarg("id")
        .or_else(|| ctx.args.first())
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::Failed("cancel: kwarg `id` must be a string".into()))?;
    let found = commands.cancel(id);
    if found {
        tracing::info!(command = %id, "command cancelled by the manager");
    }
    Ok(Value::from(found))
}

/// One parsed `command` request, and where its progress goes.
#[derive(Debug, Clone)]
struct Command {
    id: String,
    cmdtype: String,
    args: Vec<Value>,
    kwargs: Vec<(Value, Value)>,
    /// Its token and output cap, for its operations.
    control: OpControl,
    /// The session the command came in on.
    origin: Session,
    commands: Arc<Commands>,
}

fn parse_command(ctx: &CallContext, commands: Arc<Commands>) -> Result<Command, HandlerError> {
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
        control: OpControl::new(commands.output_limit()),
        origin: ctx.session.clone(),
        commands,
    })
}

fn start_command(ctx: CallContext, commands: Arc<Commands>) -> Result<Value, HandlerError> {
    let mut cmd = parse_command(&ctx, commands.clone())?;
    // A manager that sends an id again (a retry) must not run the command twice.
    let Some((token, running)) = commands.start(&cmd.id) else {
        return Err(HandlerError::Failed(format!(
            "command {} is already running",
            cmd.id
        )));
    };
    cmd.control.cancel = token;
    tokio::spawn(async move {
        let result = if cmd.cmdtype == "state" {
            state::run_command(&cmd.origin, &cmd).await
        } else {
            run_one(&cmd).await
        };
        drop(running);
        let outcome = Outcome {
            id: cmd.id.clone(),
            success: result.succeeded,
            changed: result.changed,
            output: result.to_string(),
        };
        cmd.commands.finished(&cmd.origin, outcome).await;
    });
    Ok(Value::Nil)
}

/// A command other than `state`: one operation, progress 0/1 and 1/1.
async fn run_one(cmd: &Command) -> OpResult {
    let total = 1;
    let running = format!("Running {}...", cmd.cmdtype);
    progress(cmd, 0, total, &running).await;
    let outcome = do_operation(
        Some(&cmd.origin),
        &cmd.cmdtype,
        &cmd.args,
        &cmd.kwargs,
        &Changed::default(),
        &cmd.control,
    )
    .await;
    match outcome {
        Ok(result) => {
            let finished = format!("Finished {}", cmd.cmdtype);
            progress(cmd, 1, total, &finished).await;
            result
        }
        Err(e) => {
            tracing::warn!(command = %cmd.id, operation = %cmd.cmdtype, "{e}");
            OpResult::command_failed(&cmd.cmdtype, &e)
        }
    }
}

/// One `command_progress` notification, on the agent's current session (best
/// effort), its message cut to fit the session's `max_message_size`.
async fn progress(cmd: &Command, current: usize, total: usize, message: &str) {
    let session = cmd.commands.session_for(&cmd.origin);
    send_progress(session, &cmd.id, current, total, message).await;
}

/// What a running command gives its operations.
#[derive(Debug, Clone)]
pub(crate) struct OpControl {
    /// Cancelled by the `cancel` request.
    pub(crate) cancel: CancellationToken,
    /// `commands.output_limit`: the most bytes of output an operation keeps (the
    /// output cap of `command.Run`).
    pub(crate) output_limit: usize,
}

impl OpControl {
    fn run_limits(&self) -> run::RunLimits {
        run::RunLimits {
            output_limit: self.output_limit,
        }
    }

    pub(crate) fn new(output_limit: usize) -> Self {
        Self {
            cancel: CancellationToken::new(),
            output_limit,
        }
    }
}

impl Default for OpControl {
    fn default() -> Self {
        Self::new(AgentCommandsConfig::default().output_limit)
    }
}

/// The operations this agent runs, by RedPepper type name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Noop,
    Echo,
    Run,
    DataShow,
    FileInstalled,
    FileSymlinked,
    FileDir,
}

impl Op {
    /// The operation `cmdtype` names: RedPepper's `module.Class` check first
    /// (`Invalid operation type`), then whether this agent implements it.
    fn lookup(cmdtype: &str) -> Result<Self, OpError> {
        let valid = cmdtype
            .split_once('.')
            .is_some_and(|(m, c)| is_identifier(m) && is_identifier(c));
        if !valid {
            return Err(OpError::value("Invalid operation type"));
        }
        match cmdtype {
            "noop.Noop" => Ok(Self::Noop),
            "echo.Echo" => Ok(Self::Echo),
            "command.Run" => Ok(Self::Run),
            "data.Show" => Ok(Self::DataShow),
            "file.Installed" => Ok(Self::FileInstalled),
            "file.Symlinked" => Ok(Self::FileSymlinked),
            "file.Dir" => Ok(Self::FileDir),
            _ => Err(OpError::not_available(cmdtype)),
        }
    }

    /// The Python class name, how many leading parameters are required, and every
    /// parameter in order (what `Class.__init__` takes).
    fn signature(self) -> (&'static str, usize, &'static [&'static str]) {
        match self {
            Self::Noop => ("Noop", 0, &[]),
            Self::Echo => ("Echo", 1, &["message", "reverse"]),
            Self::Run => ("Run", 1, run::PARAMS),
            Self::DataShow => ("Show", 1, &["name"]),
            Self::FileInstalled => (
                "Installed",
                2,
                &[
                    "path",
                    "source",
                    "method",
                    "overwrite",
                    "user",
                    "group",
                    "mode",
                ],
            ),
            Self::FileSymlinked => ("Symlinked", 2, &["path", "target"]),
            Self::FileDir => ("Dir", 1, &["path", "user", "group", "mode"]),
        }
    }

    /// Python's argument binding errors for `Class(*args, **kwargs)`.
    fn check_args(self, args: &OpArgs<'_>) -> Result<(), OpError> {
        let (class, required, params) = self.signature();
        for (k, _) in args.kwargs {
            let Some(k) = k.as_str() else {
                return Err(OpError::type_error("keywords must be strings"));
            };
            if !params.contains(&k) {
                return Err(OpError::type_error(format!(
                    "{class}.__init__() got an unexpected keyword argument {}",
                    pyfmt::repr_str(k)
                )));
            }
        }
        if args.args.len() > params.len() {
            let takes = if required == params.len() {
                format!("{}", params.len() + 1)
            } else {
                format!("from {} to {}", required + 1, params.len() + 1)
            };
            let plural = if params.is_empty() { "" } else { "s" };
            return Err(OpError::type_error(format!(
                "{class}.__init__() takes {takes} positional argument{plural} but {} were given",
                args.args.len() + 1
            )));
        }
        let missing: Vec<String> = (0..required)
            .filter(|&i| args.get(i, params[i]).is_none())
            .map(|i| pyfmt::repr_str(params[i]))
            .collect();
        if !missing.is_empty() {
            let names = match missing.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    format!("{} and {last}", rest.join(", "))
                }
                _ => missing.join(""),
            };
            return Err(OpError::type_error(format!(
                "{class}.__init__() missing {} required positional argument{}: {names}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" }
            )));
        }
        Ok(())
    }
}

/// Python's `str.isidentifier()`, close enough for operation names.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Keyword or positional argument `pos`/`name` of an operation.
struct OpArgs<'a> {
    args: &'a [Value],
    kwargs: &'a [(Value, Value)],
}

impl<'a> OpArgs<'a> {
    fn get(&self, pos: usize, name: &str) -> Option<&'a Value> {
        self.kwargs
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
            .or_else(|| self.args.get(pos))
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

/// RedPepper's `do_operation`: run `cmdtype` with these arguments once its `if`
/// condition (evaluated against `changed`, what earlier tasks of a state changed)
/// holds. `Err` is RedPepper's exception path: the operation could not run.
///
/// `control` carries the command's token (the `cancel` request: an operation not
/// started yet when it fires does not start) and its output cap.
pub(crate) async fn do_operation(
    session: Option<&Session>,
    cmdtype: &str,
    args: &[Value],
    kwargs: &[(Value, Value)],
    changed: &Changed,
    control: &OpControl,
) -> Result<OpResult, OpError> {
    if control.cancel.is_cancelled() {
        return Err(OpError::py("CancelledError", "the command was cancelled"));
    }
    let op = Op::lookup(cmdtype)?;
    let mut kwargs = kwargs.to_vec();
    let condition = kwargs
        .iter()
        .position(|(k, _)| k.as_str() == Some("if"))
        .map(|i| kwargs.remove(i).1);
    if !state::condition::evaluate(condition.as_ref(), changed).await? {
        let mut r = OpResult::new(cmdtype);
        r.add("Condition not met");
        return Ok(r);
    }
    let args = OpArgs {
        args,
        kwargs: &kwargs,
    };
    op.check_args(&args)?;
    match op {
        Op::Noop => Ok(OpResult::new("no-op")),
        Op::Echo => echo(&args),
        Op::Run => Ok(run::run(&args, &control.run_limits(), &control.cancel).await?),
        Op::DataShow => data::show(session, &args).await,
        Op::FileInstalled => file::installed(session, &args).await,
        Op::FileSymlinked => file::symlinked(&args),
        Op::FileDir => file::dir(&args),
    }
}

fn echo(args: &OpArgs<'_>) -> Result<OpResult, OpError> {
    let message = result::output_text(args.get(0, "message"))?;
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
mod test_support;
#[cfg(test)]
mod tests;
