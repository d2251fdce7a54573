//! `groups.yml`: which groups an agent is in, with the Python manager's exact rules.
//!
//! Entries are read in file order; every matching entry contributes its groups, each
//! group kept once at its first position. A pattern is a wildcard only if it contains
//! `*`; then `.` is literal, `*` is `.*`, `?` is `.`, and every other character keeps
//! its regular-expression meaning (`y[0-9]*` matches `y5z`), matched against the
//! whole agent id. Other patterns compare exactly. Group names must be
//! `[A-Za-z0-9_-]+` (others are skipped with a warning).

use redpepper_core::Value;
use regex::Regex;

use super::pyfmt::{is_valid_id, type_name};
use super::{CustomError, DataDir};

/// Whether wildcard `pattern` (one containing `*`) matches all of `agent`.
pub(crate) fn wildcard_matches(pattern: &str, agent: &str) -> Result<bool, CustomError> {
    let re = pattern
        .replace('.', r"\.")
        .replace('*', ".*")
        .replace('?', ".");
    let re = Regex::new(&format!("^(?:{re})$")).map_err(|e| {
        CustomError::Hidden(format!(
            "groups.yml pattern {pattern:?} is not a valid expression: {e}"
        ))
    })?;
    Ok(re.is_match(agent))
}

/// What `for group in grouplist` yields in Python for a non-wildcard entry's value.
fn iterate(list: &Value) -> Result<Vec<Value>, CustomError> {
    match list {
        Value::Array(items) => Ok(items.clone()),
        Value::Map(entries) => Ok(entries.iter().map(|(k, _)| k.clone()).collect()),
        Value::String(s) => Ok(s
            .as_str()
            .unwrap_or_default()
            .chars()
            .map(|c| Value::from(c.to_string()))
            .collect()),
        // bytes iterate as ints: none is a valid group
        Value::Binary(_) => Ok(Vec::new()),
        other => Err(CustomError::Request(format!(
            "'{}' object is not iterable",
            type_name(other)
        ))),
    }
}

impl DataDir {
    /// The agent's groups, in the order they were first given.
    pub fn groups(&self, agent: &str) -> Result<Vec<String>, CustomError> {
        let mut groups: Vec<String> = Vec::new();
        let file = self.load_or_empty("groups.yml")?;
        let Value::Map(entries) = file else {
            tracing::warn!("groups.yml is not a mapping");
            return Ok(groups);
        };
        for (pattern, list) in &entries {
            let Some(pattern) = pattern.as_str() else {
                return Err(CustomError::Request(format!(
                    "argument of type '{}' is not iterable",
                    type_name(pattern)
                )));
            };
            let members = if pattern.contains('*') {
                if !wildcard_matches(pattern, agent)? {
                    continue;
                }
                let Value::Array(items) = list else {
                    tracing::warn!(
                        pattern,
                        "groups.yml: the groups of this pattern are not a list"
                    );
                    continue;
                };
                items.clone()
            } else if agent != pattern {
                continue;
            } else {
                iterate(list)?
            };
            for group in members {
                match group.as_str() {
                    Some(g) if is_valid_id(g) => {
                        if !groups.iter().any(|have| have == g) {
                            groups.push(g.to_owned());
                        }
                    }
                    _ => tracing::warn!(group = %group, "groups.yml: invalid group id skipped"),
                }
            }
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_python() {
        // Verified against RedPepper 0.3.4 (spec §2.3).
        let m = |p: &str, a: &str| wildcard_matches(p, a).unwrap_or(false);
        assert!(m("web*", "web1"));
        assert!(m("web*", "web"));
        assert!(!m("web*", "xweb1"), "whole id");
        assert!(m("y[0-9]*", "y5"));
        assert!(
            m("y[0-9]*", "y5z"),
            "other metacharacters keep their meaning"
        );
        assert!(m("db?*", "db1"));
        assert!(!m("a.b*", "axb"), "dot is literal");
        assert!(wildcard_matches("web[*", "web").is_err(), "bad expression");
    }

    fn dir_with_groups(yaml: &str) -> (tempfile::TempDir, DataDir) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::write(tmp.path().join("groups.yml"), yaml)
            .unwrap_or_else(|e| panic!("write: {e}"));
        let dir = DataDir::new(tmp.path());
        (tmp, dir)
    }

    #[test]
    fn groups_follow_python() {
        let (_tmp, dir) = dir_with_groups(
            "web1: [base, web]\n\"web*\": [web, extra]\n\"db?\": [db]\nstrgrp: abc\nbad: [ok, 'no way', 5]\n",
        );
        let g = |a: &str| dir.groups(a).unwrap_or_else(|e| panic!("{a}: {e}"));
        assert_eq!(g("web1"), ["base", "web", "extra"]);
        assert_eq!(g("webX"), ["web", "extra"]);
        assert_eq!(g("db1"), Vec::<String>::new(), "`?` without `*` is literal");
        assert_eq!(
            g("strgrp"),
            ["a", "b", "c"],
            "a string iterates its characters"
        );
        assert_eq!(g("bad"), ["ok"]);
        assert_eq!(g("stranger"), Vec::<String>::new());
        let (_tmp, dir) = dir_with_groups("web1:\n");
        assert_eq!(
            dir.groups("web1").err().map(|e| e.to_string()),
            Some("'NoneType' object is not iterable".to_owned())
        );
        let (_tmp, dir) = dir_with_groups("123: [a]\n");
        assert_eq!(
            dir.groups("web1").err().map(|e| e.to_string()),
            Some("argument of type 'int' is not iterable".to_owned())
        );
    }
}
