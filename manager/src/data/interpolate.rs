//! `${dotted.name}` interpolation of a merged state, as the Python manager does it.
//!
//! - A string that is one whole `${name}` becomes the value itself (a list stays a
//!   list). Python's `$` also matches before a final newline, so `"${k}\n"` is whole
//!   too, and its name (the text between `${` and the last character) is `k}`.
//! - Elsewhere each `${name}` is replaced by Python's `str()` of the value (`True`,
//!   `None`, `['a', 'b']`); `${{` is the escape and becomes `${`.
//! - Names are not trimmed; the name of a partial match is the longest run without
//!   `{` that ends in `}` (`${a} b} ${c}` names `a} b` and `c`).
//! - Mapping keys are not interpolated, nor are the data values brought in.

use std::sync::LazyLock;

use redpepper_core::Value;
use regex::{Captures, Regex};

use super::lookup::Miss;
use super::pyfmt::str_of;
use super::DataDir;

static PARTIAL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\$\{((([^{]+)\})|\{)").ok());
static WHOLE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\A\$\{[^{]+\}\n?\z").ok());

impl DataDir {
    /// Interpolate `value` for `agent`.
    pub(crate) fn interpolate(&self, agent: &str, value: Value) -> Result<Value, Miss> {
        match value {
            Value::Map(entries) => entries
                .into_iter()
                .map(|(k, v)| Ok((k, self.interpolate(agent, v)?)))
                .collect::<Result<_, _>>()
                .map(Value::Map),
            Value::Array(items) => items
                .into_iter()
                .map(|v| self.interpolate(agent, v))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::String(s) => match s.into_str() {
                Some(s) => self.interpolate_str(agent, &s),
                None => Ok(Value::Nil),
            },
            other => Ok(other),
        }
    }

    fn interpolate_str(&self, agent: &str, s: &str) -> Result<Value, Miss> {
        let (Some(whole), Some(partial)) = (WHOLE.as_ref(), PARTIAL.as_ref()) else {
            return Ok(Value::from(s));
        };
        if whole.is_match(s) {
            // Python slices `value[2:-1]`: drop "${" and the last character.
            let mut name = &s[2..];
            if let Some((i, _)) = name.char_indices().last() {
                name = &name[..i];
            }
            return self.data_for_agent(agent, name);
        }
        let mut failure = None;
        let out = partial.replace_all(s, |c: &Captures| {
            if failure.is_some() {
                return String::new();
            }
            match c.get(3) {
                None => "${".to_owned(),
                Some(name) => match self.data_for_agent(agent, name.as_str()) {
                    Ok(v) => str_of(&v),
                    Err(e) => {
                        failure = Some(e);
                        String::new()
                    }
                },
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(Value::from(out.into_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, DataDir) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let w = |p: &str, t: &str| {
            let p = tmp.path().join(p);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir: {e}"));
            }
            std::fs::write(p, t).unwrap_or_else(|e| panic!("write: {e}"));
        };
        w("groups.yml", "a1: [g]\n");
        w(
            "data/g.yml",
            "k: v2\nlist: [1, 2]\nd: {x: 1}\nn: null\nt: true\nf: 1.0\n",
        );
        let dir = DataDir::new(tmp.path());
        (tmp, dir)
    }

    #[test]
    fn interpolates_as_python() {
        // Spec §2.7, each verified with RedPepper 0.3.4.
        let (_tmp, dir) = dir();
        let i = |s: &str| match dir.interpolate("a1", Value::from(s)) {
            Ok(v) => v,
            Err(Miss::NotDefined(m)) => Value::from(format!("KeyError {m}")),
            Err(Miss::Error(e)) => panic!("{s}: {e}"),
        };
        let s = |t: &str| Value::from(t);
        assert_eq!(i("${k}"), s("v2"));
        assert_eq!(i("x${k}y"), s("xv2y"));
        assert_eq!(i("$${k}"), s("$v2"));
        assert_eq!(i("${{k}"), s("${k}"));
        assert_eq!(i("${{k}}"), s("${k}}"));
        assert_eq!(i("$${{k}"), s("$${k}"));
        assert_eq!(i("${k}${k}"), s("v2v2"));
        assert_eq!(i("${k"), s("${k"));
        assert_eq!(i("${}"), s("${}"));
        assert_eq!(i("${k}}"), s("KeyError data 'k}' not defined for a1"));
        assert_eq!(i("${ k }"), s("KeyError data ' k ' not defined for a1"));
        assert_eq!(
            i("${list}"),
            Value::Array(vec![Value::from(1), Value::from(2)])
        );
        assert_eq!(i("a ${list}"), s("a [1, 2]"));
        assert_eq!(i("a ${d}"), s("a {'x': 1}"));
        assert_eq!(i("${n}"), Value::Nil);
        assert_eq!(i("a ${n}"), s("a None"));
        assert_eq!(i("a ${t}"), s("a True"));
        assert_eq!(i("a ${f}"), s("a 1.0"));
        assert_eq!(i("${k}\n"), s("KeyError data 'k}' not defined for a1"));
        assert_eq!(i("a${k}\n"), s("av2\n"));
        assert_eq!(i("${<groups>}"), Value::Array(vec![s("g")]));
        assert_eq!(i("${<agent_id>}"), s("a1"));
        assert_eq!(i("${d.x}"), Value::from(1));
        assert_eq!(
            i("${a} b} ${k}"),
            s("KeyError data 'a} b' not defined for a1")
        );
    }
}
