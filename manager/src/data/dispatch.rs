//! The built-in `custom` requests with Python's argument binding: the request
//! functions are `call(conn, ...)` with `__qualname__` "request NAME", so a wrong
//! call is refused with Python's `TypeError` text ("request data() missing 1 required
//! positional argument: 'name'").

use redpepper_core::{Kwargs, Value};

use super::lookup::Miss;
use super::pyfmt::{is_identifier, is_valid_id, repr, str_repr, truthy};
use super::yaml::TIMESTAMP_EXT;
use super::{merge, CustomError, DataDir};

/// A request function's parameters after `conn`.
struct Sig {
    params: &'static [&'static str],
    /// How many of `params` have no default (the others default to None).
    required: usize,
    /// `**kwargs`.
    var_kw: bool,
}

const BUILTINS: &[(&str, Sig)] = &[
    (
        "data",
        Sig {
            params: &["name"],
            required: 1,
            var_kw: false,
        },
    ),
    (
        "dataFileContents",
        Sig {
            params: &["filename", "offset", "length"],
            required: 3,
            var_kw: false,
        },
    ),
    (
        "dataFileHash",
        Sig {
            params: &["path"],
            required: 1,
            var_kw: false,
        },
    ),
    (
        "dataFileStat",
        Sig {
            params: &["path"],
            required: 1,
            var_kw: false,
        },
    ),
    (
        "noop",
        Sig {
            params: &[],
            required: 0,
            var_kw: true,
        },
    ),
    (
        "operationModule",
        Sig {
            params: &["name", "existing_mtime", "existing_size"],
            required: 3,
            var_kw: false,
        },
    ),
    (
        "stateDefinition",
        Sig {
            params: &["state_name"],
            required: 0,
            var_kw: false,
        },
    ),
];

/// Modules of Python's `redpepper.requests` package without a `call` function.
const NOT_CALLABLE: &[&str] = &["__init__", "__pycache__"];

/// Whether `name` is a built-in request (registered requests never shadow it).
pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|(n, _)| *n == name) || NOT_CALLABLE.contains(&name)
}

/// CPython's binding of `call(conn, *args, **kwargs)`.
fn bind(name: &str, sig: &Sig, args: &[Value], kwargs: &Kwargs) -> Result<Vec<Value>, CustomError> {
    let err = |m: String| Err(CustomError::Request(format!("request {name}() {m}")));
    let mut slots: Vec<Option<Value>> = vec![None; sig.params.len()];
    for (slot, a) in slots.iter_mut().zip(args) {
        *slot = Some(a.clone());
    }
    for (k, v) in kwargs {
        if k == "conn" {
            return err(format!("got multiple values for argument '{k}'"));
        }
        match sig.params.iter().position(|p| p == k) {
            Some(i) if slots[i].is_some() => {
                return err(format!("got multiple values for argument '{k}'"))
            }
            Some(i) => slots[i] = Some(v.clone()),
            None if sig.var_kw => {}
            None => return err(format!("got an unexpected keyword argument '{k}'")),
        }
    }
    let total = 1 + sig.params.len();
    let given = 1 + args.len();
    if args.len() > sig.params.len() {
        let takes = if sig.required < sig.params.len() {
            format!("from {} to {total} positional arguments", 1 + sig.required)
        } else if total == 1 {
            "1 positional argument".to_owned()
        } else {
            format!("{total} positional arguments")
        };
        let was = if given == 1 { "was" } else { "were" };
        return err(format!("takes {takes} but {given} {was} given"));
    }
    let missing: Vec<String> = sig.params[..sig.required]
        .iter()
        .zip(&slots)
        .filter(|(_, s)| s.is_none())
        .map(|(p, _)| format!("'{p}'"))
        .collect();
    if !missing.is_empty() {
        let names = match missing.as_slice() {
            [one] => one.clone(),
            [a, b] => format!("{a} and {b}"),
            [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
            [] => String::new(),
        };
        let n = missing.len();
        let word = if n == 1 { "argument" } else { "arguments" };
        return err(format!("missing {n} required positional {word}: {names}"));
    }
    Ok(slots.into_iter().map(|s| s.unwrap_or(Value::Nil)).collect())
}

/// Answer `custom(*args, **kwargs)` (built-ins and the data directory's modules).
pub(crate) fn dispatch(
    dir: &DataDir,
    agent: &str,
    args: &[Value],
    kwargs: &Kwargs,
    max_message_size: usize,
) -> Result<Value, CustomError> {
    let Some(first) = args.first() else {
        return Err(CustomError::Hidden(
            "custom request without a name".to_owned(),
        ));
    };
    let Some(name) = first.as_str() else {
        return Err(CustomError::Hidden(format!(
            "custom request name {first} is not a string"
        )));
    };
    let rest = &args[1..];
    let Some((_, sig)) = BUILTINS.iter().find(|(n, _)| *n == name) else {
        if NOT_CALLABLE.contains(&name) {
            return Err(CustomError::Request(format!(
                "request module missing call function: {name}"
            )));
        }
        return site_module(dir, agent, name);
    };
    let a = bind(name, sig, rest, kwargs)?;
    let result = match name {
        "data" => data(dir, agent, &a[0]),
        "dataFileContents" => dir.file_contents(agent, &a[0], &a[1], &a[2], max_message_size),
        "dataFileHash" => dir.file_hash(agent, &a[0]),
        "dataFileStat" => dir.file_stat(agent, &a[0]),
        "operationModule" => dir.operation_module(&a[0], &a[1], &a[2]),
        "stateDefinition" => state_definition(dir, agent, &a[0]),
        _ => Err(CustomError::Request(
            "This is a no-op template request module.".to_owned(),
        )),
    };
    match result {
        Err(CustomError::Attribute(detail)) => {
            tracing::debug!(agent, request = name, %detail, "wrong argument type");
            Err(CustomError::Request(format!(
                "request module missing call function: {name}"
            )))
        }
        Ok(v) => sendable(v),
        other => other,
    }
}

/// A request module from `requests/{group}/{name}.py`: Python code, not run here.
fn site_module(dir: &DataDir, agent: &str, name: &str) -> Result<Value, CustomError> {
    let not_found = || CustomError::Request(format!("request module not found: {name}"));
    if !is_identifier(name) {
        return Err(not_found());
    }
    for group in dir.groups(agent)?.iter().rev() {
        let path = dir
            .path()
            .join("requests")
            .join(group)
            .join(format!("{name}.py"));
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(CustomError::Request(format!(
                "request module {name} is not supported by this manager (Python request modules \
                 run only in the Python manager; register a method through the manager's library \
                 API instead)"
            )));
        }
    }
    Err(not_found())
}

fn data(dir: &DataDir, agent: &str, name: &Value) -> Result<Value, CustomError> {
    let Some(name_str) = name.as_str() else {
        // Python compares with the special names, reads the agent's entry, then fails
        // on `name.split`.
        if !matches!(name, Value::String(_)) {
            dir.agent_entry(agent)?;
        }
        return Err(CustomError::Attribute(format!(
            "data name {name} is not a string"
        )));
    };
    match dir.data_for_agent(agent, name_str) {
        Ok(v) => Ok(v),
        Err(Miss::NotDefined(_)) => {
            Err(CustomError::Request(format!("Data not found: {name_str}")))
        }
        Err(Miss::Error(e)) => Err(e),
    }
}

fn state_definition(dir: &DataDir, agent: &str, state_name: &Value) -> Result<Value, CustomError> {
    let groups = dir.groups(agent)?;
    let path = |group: &str| -> Result<String, CustomError> {
        if !truthy(state_name) {
            return Ok(format!("state/{group}.yml"));
        }
        match state_name.as_str() {
            Some(s) if is_valid_id(s) => Ok(format!("state/{group}/{s}.yml")),
            _ => Err(CustomError::Request(format!(
                "Invalid state name: {}",
                repr(state_name)
            ))),
        }
    };
    // Checked even for an agent in no group.
    path("")?;
    let mut state = Vec::new();
    for group in &groups {
        match dir.load_or_empty(&path(group)?)? {
            Value::Array(fragment) => merge::merge_state(&mut state, fragment)?,
            _ => tracing::debug!(agent, group, "state fragment is not a list: skipped"),
        }
    }
    match dir.interpolate(agent, Value::Array(state)) {
        Ok(v) => Ok(v),
        Err(Miss::NotDefined(m)) => Err(CustomError::Request(format!(
            "Interpolation failed for state definition: {}",
            str_repr(&m)
        ))),
        Err(Miss::Error(e)) => Err(e),
    }
}

/// Refuse an answer holding a YAML timestamp (Python cannot send it: no answer).
fn sendable(v: Value) -> Result<Value, CustomError> {
    fn find(v: &Value) -> Option<String> {
        match v {
            Value::Ext(TIMESTAMP_EXT, text) => Some(String::from_utf8_lossy(text).into_owned()),
            Value::Array(items) => items.iter().find_map(find),
            Value::Map(entries) => entries
                .iter()
                .find_map(|(k, v)| find(k).or_else(|| find(v))),
            _ => None,
        }
    }
    match find(&v) {
        None => Ok(v),
        Some(ts) => Err(CustomError::Request(format!(
            "the answer holds the YAML timestamp {ts}, which RedPepper cannot send: quote it in the YAML file to make it a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, args: &[Value], kwargs: &[(&str, Value)]) -> Option<String> {
        let sig = &BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("{name}"));
        let kwargs: Kwargs = kwargs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        bind(name, sig, args, &kwargs).err().map(|e| e.to_string())
    }

    #[test]
    fn binding_errors_are_pythons() {
        // Python 3.12's texts, as RedPepper 0.3.4 sends them (spec §1.2).
        let one = || Value::from(1);
        assert_eq!(
            text("data", &[], &[("bogus", one())]).as_deref(),
            Some("request data() got an unexpected keyword argument 'bogus'")
        );
        assert_eq!(
            text("data", &[], &[]).as_deref(),
            Some("request data() missing 1 required positional argument: 'name'")
        );
        assert_eq!(
            text("noop", &[one()], &[]).as_deref(),
            Some("request noop() takes 1 positional argument but 2 were given")
        );
        assert_eq!(
            text("stateDefinition", &[one(), one()], &[]).as_deref(),
            Some(
                "request stateDefinition() takes from 1 to 2 positional arguments but 3 were given"
            )
        );
        assert_eq!(
            text("dataFileContents", &[], &[]).as_deref(),
            Some("request dataFileContents() missing 3 required positional arguments: 'filename', 'offset', and 'length'")
        );
        assert_eq!(
            text("dataFileContents", &[one()], &[]).as_deref(),
            Some("request dataFileContents() missing 2 required positional arguments: 'offset' and 'length'")
        );
        assert_eq!(
            text("data", &[one()], &[("name", one())]).as_deref(),
            Some("request data() got multiple values for argument 'name'")
        );
        assert_eq!(text("noop", &[], &[("anything", one())]), None);
    }
}
