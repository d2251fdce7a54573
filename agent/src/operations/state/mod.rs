//! The `state` command, with RedPepper 0.3.4's semantics (`Agent._run_command` and
//! `Agent.run_state`).
//!
//! 1. `args` is `[]` (the default state, `""`) or `[NAME]`; more is an error. The agent
//!    asks the manager it is connected to: `custom("stateDefinition", state_name=NAME)`,
//!    and the manager's error answer (e.g. `Invalid state name: '../x'`) fails the
//!    command as RedPepper's `RPCError`. The command's only kwarg is
//!    `changed_operations` (names counted as changed before the state starts).
//! 2. The whole tree is validated before anything runs or is sent: a list of
//!    single-key maps whose values are a task (a map) or a nested list; task names are
//!    the keys on the way down joined with `:`.
//! 3. Progress `0/N "Starting NAME..."`, then per task `i/N "Running TASK"` and, when it
//!    succeeded, `i+1/N "TASK done"`. Each task runs its `type` with the other keys as
//!    keyword arguments (see [`super::do_operation`]: `if` conditions see what earlier
//!    tasks changed, and a changed task marks its groups changed).
//! 4. The first failing task stops the state. One result: `Operation NAME succeeded`
//!    (or `failed`, `(changed)`) and, per task run, `Running state TASK:` and its result.
//!
//! A cancelled command (the `cancel` request) stops between tasks: the result fails
//! with `Cancelled before state TASK`.
//!
//! A malformed tree or a task without `type` fails the whole command (`Failed to
//! execute command 'state':`), as in RedPepper; a task that cannot run fails that task
//! (`Failed to execute state TASK:`) and stops the state.

pub(crate) mod condition;

use redpepper_core::{Session, Value};

use super::data::custom;
use super::pyfmt;
use super::result::{OpError, OpResult};
use super::{do_operation, progress, Command};
use condition::Changed;

/// Run a `state` command to its one result.
pub(super) async fn run_command(session: &Session, cmd: &Command) -> OpResult {
    match run(session, cmd).await {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(command = %cmd.id, "state: {e}");
            OpResult::command_failed(&cmd.cmdtype, &e)
        }
    }
}

async fn run(session: &Session, cmd: &Command) -> Result<OpResult, OpError> {
    if cmd.args.len() > 1 {
        return Err(OpError::value("State command takes at most one argument"));
    }
    let name_arg = cmd.args.first().cloned().unwrap_or_else(|| Value::from(""));
    let state_name = pyfmt::str_of(&name_arg);
    let mut changed = Changed::default();
    for (k, v) in &cmd.kwargs {
        match (k.as_str(), v) {
            (Some("changed_operations"), Value::Array(names)) => {
                for n in names {
                    changed.set(&pyfmt::str_of(n), true);
                }
            }
            (Some("changed_operations"), other) => {
                return Err(OpError::type_error(format!(
                    "{} object is not iterable",
                    pyfmt::repr_str(pyfmt::type_name(other))
                )))
            }
            _ => {
                return Err(OpError::type_error(format!(
                    "Agent.run_state() got an unexpected keyword argument {}",
                    pyfmt::repr_str(&pyfmt::str_of(k))
                )))
            }
        }
    }
    let definition = custom(
        Some(session),
        "stateDefinition",
        vec![("state_name", name_arg)],
    )
    .await?;
    let Value::Array(items) = &definition else {
        return Err(OpError::value(format!("State {state_name} is not a list")));
    };
    let mut tasks = Vec::new();
    walk(&definition, items, &mut Vec::new(), &mut tasks)?;

    let total = tasks.len();
    progress(cmd, 0, total, &format!("Starting {state_name}...")).await;
    let mut result = OpResult::new(state_name);
    for (i, (name, task)) in tasks.into_iter().enumerate() {
        if cmd.control.cancel.is_cancelled() {
            result.fail(&format!("\nCancelled before state {name}"));
            break;
        }
        progress(cmd, i, total, &format!("Running {name}")).await;
        result.add(&format!("\nRunning state {name}:"));
        let mut kwargs = task.clone();
        // Outside RedPepper's per-task `try`: a task without `type` fails the command.
        let Some(at) = kwargs.iter().position(|(k, _)| k.as_str() == Some("type")) else {
            return Err(OpError::py("KeyError", "'type'"));
        };
        let (_, cmdtype) = kwargs.remove(at);
        let outcome = match cmdtype.as_str() {
            Some(cmdtype) => {
                do_operation(Some(session), cmdtype, &[], &kwargs, &changed, &cmd.control).await
            }
            None => Err(OpError::py(
                "AttributeError",
                format!(
                    "{} object has no attribute 'split'",
                    pyfmt::repr_str(pyfmt::type_name(&cmdtype))
                ),
            )),
        };
        let task_result = outcome.unwrap_or_else(|e| {
            tracing::warn!(command = %cmd.id, task = %name, "state task failed: {e}");
            let mut r = OpResult::new(name.clone());
            r.fail(&format!("Failed to execute state {name}:\n{e}"));
            r
        });
        result.update(&task_result);
        if !result.succeeded {
            break;
        }
        changed.set(&name, task_result.changed);
        if task_result.changed {
            let parts: Vec<&str> = name.split(':').collect();
            for end in 1..parts.len() {
                changed.set(&parts[..end].join(":"), true);
            }
        }
        progress(cmd, i + 1, total, &format!("{name} done")).await;
    }
    Ok(result)
}

/// One task: its joined name and its definition (a map).
type Task<'a> = (String, &'a Vec<(Value, Value)>);

/// RedPepper's `_walk_state_tree` and the checks `run_state` makes on what it yields,
/// in the same order (so the same error comes first).
fn walk<'a>(
    whole: &Value,
    items: &'a [Value],
    parents: &mut Vec<&'a Value>,
    tasks: &mut Vec<Task<'a>>,
) -> Result<(), OpError> {
    for item in items {
        let (key, value) = match item {
            Value::Map(entries) if entries.len() == 1 => (&entries[0].0, &entries[0].1),
            _ => return Err(OpError::value("State group or name not a single-key dict")),
        };
        parents.push(key);
        match value {
            Value::Array(children) => walk(whole, children, parents, tasks)?,
            Value::Map(definition) => tasks.push((join(parents)?, definition)),
            _ => {
                let name = join(parents)?;
                return Err(OpError::type_error(format!(
                    "State {} task {name} is not a dictionary or list",
                    pyfmt::repr(whole)
                )));
            }
        }
        parents.pop();
    }
    Ok(())
}

/// `":".join(path)`: every key must be a string.
fn join(path: &[&Value]) -> Result<String, OpError> {
    let mut parts = Vec::with_capacity(path.len());
    for (i, key) in path.iter().enumerate() {
        match key {
            Value::String(s) => parts.push(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            other => {
                return Err(OpError::type_error(format!(
                    "sequence item {i}: expected str instance, {} found",
                    pyfmt::type_name(other)
                )))
            }
        }
    }
    Ok(parts.join(":"))
}

#[cfg(test)]
mod tests;
