//! Data lookup: `agents.yml` entry data first, then the groups' `data/{group}.yml`
//! from the last group back; each dotted name resolved whole in one source (no deep
//! merge). `<agent_id>` and `<groups>` are the agent's id and group list.

use redpepper_core::Value;

use super::pyfmt::{is_valid_id, str_repr};
use super::{CustomError, DataDir};

/// Why a name has no value.
#[derive(Debug)]
pub(crate) enum Miss {
    /// Python's `KeyError(f"data {name!r} not defined for {agent}")`: the message.
    NotDefined(String),
    /// Anything else.
    Error(CustomError),
}

impl From<CustomError> for Miss {
    fn from(e: CustomError) -> Self {
        Miss::Error(e)
    }
}

/// `get_data_from_mapping`: follow `name`'s dot-separated keys through mappings
/// (string keys only; lists are not indexed).
pub(crate) fn lookup<'a>(mut obj: &'a Value, name: &str) -> Option<&'a Value> {
    for key in name.split('.') {
        let Value::Map(entries) = obj else {
            return None;
        };
        obj = entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)?;
    }
    Some(obj)
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

impl DataDir {
    /// The agent's `agents.yml` entry (an empty map if the id is invalid, the file is
    /// not a mapping, or the entry is missing or not a mapping).
    pub(crate) fn agent_entry(&self, agent: &str) -> Result<Value, CustomError> {
        let empty = Value::Map(Vec::new());
        if !is_valid_id(agent) {
            return Ok(empty);
        }
        let file = self.load_or_empty("agents.yml")?;
        match get(&file, agent) {
            Some(entry @ Value::Map(_)) => Ok(entry.clone()),
            _ => Ok(empty),
        }
    }

    /// `get_data_for_agent`.
    pub(crate) fn data_for_agent(&self, agent: &str, name: &str) -> Result<Value, Miss> {
        if name == "<agent_id>" {
            return Ok(Value::from(agent));
        }
        if name == "<groups>" {
            let groups = self.groups(agent)?;
            return Ok(Value::Array(groups.into_iter().map(Value::from).collect()));
        }
        let entry = self.agent_entry(agent)?;
        let empty = Value::Map(Vec::new());
        let data = get(&entry, "data").unwrap_or(&empty);
        if let Some(v) = lookup(data, name) {
            return Ok(v.clone());
        }
        for group in self.groups(agent)?.iter().rev() {
            let group_data = self.load_or_empty(&format!("data/{group}.yml"))?;
            if let Some(v) = lookup(&group_data, name) {
                return Ok(v.clone());
            }
        }
        Err(Miss::NotDefined(format!(
            "data {} not defined for {agent}",
            str_repr(name)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn dotted_names_follow_mappings_only() {
        let v = map(&[
            ("site", map(&[("port", Value::from(80))])),
            ("list", Value::Array(vec![Value::from(1)])),
            ("", Value::from("empty key")),
            ("n", Value::Nil),
        ]);
        assert_eq!(lookup(&v, "site.port"), Some(&Value::from(80)));
        assert_eq!(lookup(&v, "site.port.x"), None);
        assert_eq!(lookup(&v, "list.0"), None, "lists are not indexed");
        assert_eq!(lookup(&v, ""), Some(&Value::from("empty key")));
        assert_eq!(lookup(&v, "site."), None);
        assert_eq!(lookup(&v, "n"), Some(&Value::Nil), "a null value is found");
    }
}
