//! RedPepper's `if` conditions (`Agent.evaluate_condition`), with its error texts.
//!
//! | condition | true when |
//! |---|---|
//! | absent / `null` | always |
//! | `true` / `false`, or the strings `"true"` / `"false"` (any case) | as said |
//! | a list | every item holds (`[]` holds) |
//! | `{not: C}` | `C` does not hold |
//! | `{true: null}` / `{false: null}` | as said |
//! | `{all: [..]}` / `{any: [..]}` | every / some item holds |
//! | `{changed: NAME}` | an earlier task `NAME` (or `...:NAME`, or a group of that name) changed something |
//! | `{cmd: SCRIPT}`, `{cmd 0,2: SCRIPT}` | `/bin/sh -c SCRIPT` exits with 0 (or one of the listed codes) |
//! | `{path: P}`, `{path exists/isfile/isdir/islink: P}` | as said (`exists`, `isfile`, `isdir` follow symlinks) |
//!
//! Each keyed form takes a `not ` prefix (`{not changed: x}`). `{py: EXPR}` is Python
//! code: not available in this agent. Any error fails the task, as in RedPepper.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::Stdio;

use redpepper_core::Value;

use crate::operations::pyfmt;
use crate::operations::result::OpError;

/// What each earlier task of a state changed, in the order first seen (a task's groups
/// are marked when it changed; `changed_operations` of the command come first).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changed(Vec<(String, bool)>);

impl Changed {
    /// Set `name`; an existing entry keeps its position.
    pub(crate) fn set(&mut self, name: &str, changed: bool) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = changed,
            None => self.0.push((name.to_owned(), changed)),
        }
    }

    /// Whether a task called `name` (or ending in `:name`) changed something.
    fn any(&self, name: &str) -> bool {
        let suffix = format!(":{name}");
        self.0
            .iter()
            .any(|(n, c)| *c && (n == name || n.ends_with(&suffix)))
    }
}

type Eval<'a> = Pin<Box<dyn Future<Output = Result<bool, OpError>> + Send + 'a>>;

/// Evaluate an `if` condition (`None`: there is none).
pub(crate) fn evaluate<'a>(condition: Option<&'a Value>, changed: &'a Changed) -> Eval<'a> {
    Box::pin(async move {
        let Some(c) = condition else { return Ok(true) };
        match c {
            Value::Nil => Ok(true),
            Value::Boolean(b) => Ok(*b),
            Value::String(s) => {
                let s = String::from_utf8_lossy(s.as_bytes()).to_lowercase();
                match s.as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    // Without the f-string prefix in RedPepper: the braces are literal.
                    _ => Err(OpError::value(
                        "Invalid standalone condition name: {condition!r}",
                    )),
                }
            }
            Value::Map(m) if m.len() > 1 => {
                Err(OpError::value("Use a list for multiple conditions"))
            }
            Value::Array(items) => all(items, changed).await,
            Value::Map(m) => match m.first() {
                Some((k, v)) => keyed(k, v, changed).await,
                None => Err(OpError::py("StopIteration", "")),
            },
            _ => Err(OpError::value("Condition must be a single key-value pair")),
        }
    })
}

async fn all(items: &[Value], changed: &Changed) -> Result<bool, OpError> {
    for item in items {
        if !evaluate(Some(item), changed).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn any(items: &[Value], changed: &Changed) -> Result<bool, OpError> {
    for item in items {
        if evaluate(Some(item), changed).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `{k: v}`.
async fn keyed(k: &Value, v: &Value, changed: &Changed) -> Result<bool, OpError> {
    let Some(key) = k.as_str() else {
        return Err(OpError::py(
            "AttributeError",
            format!(
                "{} object has no attribute 'split'",
                pyfmt::repr_str(pyfmt::type_name(k))
            ),
        ));
    };
    if key == "not" {
        return Ok(!evaluate(Some(v), changed).await?);
    }
    let mut words: Vec<&str> = key.split_whitespace().collect();
    let negate = match words.first() {
        None => return Err(OpError::py("IndexError", "list index out of range")),
        Some(&"not") => {
            words.remove(0);
            true
        }
        Some(_) => false,
    };
    if words.is_empty() {
        return Err(OpError::py("IndexError", "pop from empty list"));
    }
    let ctype = words.remove(0);
    let result = |holds: bool| Ok(holds != negate);
    // Python RedPepper writes this one without the f-string prefix (literal braces) for
    // all but `cmd` and `path`.
    let literal = || OpError::value("Invalid condition name: {k!r}");
    let named = || OpError::value(format!("Invalid condition name: {}", pyfmt::repr_str(key)));
    match ctype {
        "true" | "false" => {
            if !words.is_empty() {
                return Err(literal());
            }
            if !matches!(v, Value::Nil) {
                return Err(OpError::value(format!(
                    "Condition {ctype} does not take a value"
                )));
            }
            result(ctype == "true")
        }
        "all" | "any" => {
            if !words.is_empty() {
                return Err(literal());
            }
            let Value::Array(items) = v else {
                return Err(OpError::value(format!(
                    "Value for {ctype} condition must be a list"
                )));
            };
            let holds = if ctype == "all" {
                all(items, changed).await?
            } else {
                any(items, changed).await?
            };
            result(holds)
        }
        "changed" => {
            if !words.is_empty() {
                return Err(literal());
            }
            let Some(name) = v.as_str() else {
                return Err(OpError::value(
                    "Value for changed condition must be a string",
                ));
            };
            result(changed.any(name))
        }
        "py" => {
            if !words.is_empty() {
                return Err(literal());
            }
            Err(OpError::Agent(
                "condition py (a Python expression) is not available in this agent".into(),
            ))
        }
        "cmd" => {
            let mut codes = vec![0i64];
            if !words.is_empty() {
                codes = words
                    .remove(0)
                    .split(',')
                    .map(parse_int)
                    .collect::<Result<_, _>>()?;
            }
            if !words.is_empty() {
                return Err(named());
            }
            let Some(script) = v.as_str() else {
                return Err(OpError::value(format!(
                    "Invalid command condition value type: {}",
                    pyfmt::type_name(v)
                )));
            };
            result(
                run_script(script)
                    .await
                    .is_some_and(|rc| codes.contains(&rc)),
            )
        }
        "path" => {
            let verb = if words.is_empty() {
                "exists"
            } else {
                words.remove(0)
            };
            if !words.is_empty() {
                return Err(named());
            }
            let path = v.as_str().map(std::path::Path::new);
            let holds = match verb {
                "exists" => path.is_some_and(|p| p.exists()),
                "isfile" => path.is_some_and(|p| p.is_file()),
                "isdir" => path.is_some_and(|p| p.is_dir()),
                "islink" => path.is_some_and(|p| p.is_symlink()),
                _ => {
                    return Err(OpError::value(format!(
                        "Invalid file condition verb {verb}"
                    )))
                }
            };
            result(holds)
        }
        _ => Err(named()),
    }
}

/// Python's `int(word)`.
fn parse_int(word: &str) -> Result<i64, OpError> {
    word.trim().replace('_', "").parse().map_err(|_| {
        OpError::value(format!(
            "invalid literal for int() with base 10: {}",
            pyfmt::repr_str(word)
        ))
    })
}

/// `/bin/sh -c SCRIPT`'s exit code (a signal `N` as `-N`, as Python reports it), or
/// `None` when it could not run. Its input and output are not connected.
async fn run_script(script: &str) -> Option<i64> {
    let status = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    match status {
        Ok(s) => s
            .code()
            .map(i64::from)
            .or_else(|| s.signal().map(|n| -i64::from(n))),
        Err(e) => {
            tracing::warn!(script, error = %e, "condition command could not run");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Spec §4.6: `evaluate_condition` with `changed = {x:b: False, y:b: True, z:b: False}`.
    #[tokio::test]
    async fn conditions_and_their_errors_as_in_redpepper() {
        let mut changed = Changed::default();
        changed.set("x:b", false);
        changed.set("y:b", true);
        changed.set("z:b", false);
        let eval = |json: serde_json::Value| {
            let c = crate::operations::test_support::v(json);
            let changed = changed.clone();
            async move {
                evaluate(Some(&c), &changed)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let ok = |b: bool| -> Result<bool, String> { Ok(b) };
        let err = |s: &str| -> Result<bool, String> { Err(s.to_owned()) };
        use serde_json::json;
        let table = [
            (json!({}), err("StopIteration")),
            (
                json!(5),
                err("ValueError: Condition must be a single key-value pair"),
            ),
            (json!("True"), ok(true)),
            (json!("FALSE"), ok(false)),
            (
                json!("maybe"),
                err("ValueError: Invalid standalone condition name: {condition!r}"),
            ),
            (json!({"not true": null}), ok(false)),
            (json!({"not false": null}), ok(true)),
            (json!({"all": []}), ok(true)),
            (json!({"any": []}), ok(false)),
            (json!({"not all": [true, false]}), ok(true)),
            (
                json!({"true": 1}),
                err("ValueError: Condition true does not take a value"),
            ),
            (
                json!({"true x": null}),
                err("ValueError: Invalid condition name: {k!r}"),
            ),
            (
                json!({"cmd x": "true"}),
                err("ValueError: invalid literal for int() with base 10: 'x'"),
            ),
            (
                json!({"cmd 0 1": "true"}),
                err("ValueError: Invalid condition name: 'cmd 0 1'"),
            ),
            (json!({"changed": "b"}), ok(true)),
            (json!({"changed": "x:b"}), ok(false)),
            (json!({"path": 5}), ok(false)),
            (json!({"not": null}), ok(false)),
            (json!({"": 1}), err("IndexError: list index out of range")),
            (
                json!({"not ": null}),
                err("IndexError: pop from empty list"),
            ),
            (
                json!({"cmd": 5}),
                err("ValueError: Invalid command condition value type: int"),
            ),
            (
                json!({"bogus": 1}),
                err("ValueError: Invalid condition name: 'bogus'"),
            ),
            (
                json!({"a": 1, "b": 2}),
                err("ValueError: Use a list for multiple conditions"),
            ),
            (
                json!({"path foo": "/"}),
                err("ValueError: Invalid file condition verb foo"),
            ),
            (
                json!({"all": 1}),
                err("ValueError: Value for all condition must be a list"),
            ),
            (
                json!({"changed": 1}),
                err("ValueError: Value for changed condition must be a string"),
            ),
            (json!({"cmd": "exit 3"}), ok(false)),
            (json!({"not cmd 3": "exit 3"}), ok(false)),
            (json!({"path islink": "/nonexistent"}), ok(false)),
            (json!({"path isfile": "/"}), ok(false)),
        ];
        for (condition, want) in table {
            let shown = condition.to_string();
            assert_eq!(eval(condition).await, want, "{shown}");
        }
        // A YAML `true:` key is a bool: Python's `k.split()` fails.
        let c = Value::Map(vec![(Value::from(true), Value::Nil)]);
        assert_eq!(
            evaluate(Some(&c), &changed)
                .await
                .map_err(|e| e.to_string()),
            err("AttributeError: 'bool' object has no attribute 'split'")
        );
        assert_eq!(evaluate(None, &changed).await, Ok(true));
    }
}
