//! Merging state fragments (`merge_state`): items are single-key mappings; an item
//! whose name is already in the state replaces it in place, or, when both values are
//! lists, merges into it recursively; new names go to the end.

use redpepper_core::Value;

use super::pyfmt::{py_eq, type_name};
use super::CustomError;

const NOT_SINGLE: &str = "Array item not a single-key dict";

/// What `next(iter(existing_item))` gives for an item already in the state (only
/// the items of the merged source are checked to be single-key mappings).
fn first_of(existing: &Value) -> Result<Value, CustomError> {
    let stop = || CustomError::Hidden("StopIteration in merge_state".to_owned());
    match existing {
        Value::Map(entries) => entries.first().map(|(k, _)| k.clone()).ok_or_else(stop),
        Value::Array(items) => items.first().cloned().ok_or_else(stop),
        Value::String(s) => s
            .as_str()
            .and_then(|s| s.chars().next())
            .map(|c| Value::from(c.to_string()))
            .ok_or_else(stop),
        Value::Binary(b) => b.first().map(|x| Value::from(*x)).ok_or_else(stop),
        other => Err(CustomError::Request(format!(
            "'{}' object is not iterable",
            type_name(other)
        ))),
    }
}

/// Merge `source` into `state`.
pub(crate) fn merge_state(state: &mut Vec<Value>, source: Vec<Value>) -> Result<(), CustomError> {
    for item in source {
        let (name, value) = match &item {
            Value::Map(entries) if entries.len() == 1 => (entries[0].0.clone(), &entries[0].1),
            _ => return Err(CustomError::Request(NOT_SINGLE.to_owned())),
        };
        let mut found = None;
        for (i, existing) in state.iter().enumerate() {
            if py_eq(&first_of(existing)?, &name) {
                found = Some(i);
                break;
            }
        }
        let Some(i) = found else {
            state.push(item);
            continue;
        };
        let existing_value = match &mut state[i] {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| py_eq(k, &name))
                .map(|(_, v)| v),
            Value::String(_) => {
                return Err(CustomError::Request(
                    "string indices must be integers, not 'str'".to_owned(),
                ))
            }
            Value::Array(_) => {
                return Err(CustomError::Request(format!(
                    "list indices must be integers or slices, not {}",
                    type_name(&name)
                )))
            }
            _ => None,
        };
        match (existing_value, value) {
            (Some(Value::Array(old)), Value::Array(new)) => merge_state(old, new.clone())?,
            _ => state[i] = item,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::yaml::parse;

    fn list(yaml: &str) -> Vec<Value> {
        match parse(yaml) {
            Ok(Some(Value::Array(v))) => v,
            other => panic!("{yaml}: {other:?}"),
        }
    }

    #[test]
    fn merges_as_python() {
        // Spec §2.6, verified with RedPepper 0.3.4.
        let mut state = list("[{a: 1}, {b: [{c: 1}, {d: 2}]}]");
        merge_state(
            &mut state,
            list("[{b: [{d: 3}, {e: 4}]}, {a: [{x: 1}]}, {f: 5}]"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Value::Array(state),
            Value::Array(list(
                "[{a: [{x: 1}]}, {b: [{c: 1}, {d: 3}, {e: 4}]}, {f: 5}]"
            ))
        );

        let mut state = Vec::new();
        merge_state(&mut state, list("[{a: [x: 1]}, {a: [y: 2]}, {a: [x: 9]}]"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Value::Array(state),
            Value::Array(list("[{a: [{x: 9}, {y: 2}]}]"))
        );
    }

    #[test]
    fn errors_as_python() {
        let err = |state: &str, source: &str| {
            let mut s = list(state);
            merge_state(&mut s, list(source))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(err("[]", "[{a: 1, b: 2}]").as_deref(), Some(NOT_SINGLE));
        assert_eq!(err("[]", "[x]").as_deref(), Some(NOT_SINGLE));
        assert_eq!(
            err("[{a: [1, 2]}]", "[{a: [{b: 1}]}]").as_deref(),
            Some("'int' object is not iterable")
        );
        assert_eq!(
            err("[{a: [b]}]", "[{a: [{b: 1}]}]").as_deref(),
            Some("string indices must be integers, not 'str'")
        );
    }
}
