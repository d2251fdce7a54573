//! Loading the data directory's YAML files as PyYAML's `yaml.safe_load` (YAML 1.1)
//! reads them, into the MessagePack values the Python manager would send.
//!
//! YAML 1.1 scalars, as PyYAML resolves plain (unquoted) ones: `yes`/`no`/`on`/`off`
//! (and `true`/`false` in three spellings) are booleans, `0755` is octal, `0x1f` hex,
//! `0b101` binary, `1:30` sexagesimal (90), `1_000` has separators, `1e5` (no sign in
//! the exponent) is a string, `~`/`null`/empty are null. Duplicate keys: the last
//! value wins at the first key's position. Merge keys (`<<: *base`) are applied.
//! Anchors and aliases are expanded (copies: Python shares one object).
//!
//! Timestamps (`2024-01-01`) become Python dates, which the Python manager can print
//! into a string but cannot send; they load as a marker ([`TIMESTAMP_EXT`]) that
//! string interpolation prints as written and that the answer refuses (see
//! [`super::CustomError::Unsendable`]).
//!
//! Files are re-read on every request (the Python manager's cache never hits in
//! production: it stats a path relative to the process's working directory). A
//! missing or empty file is absent (`None`); a file that is not valid YAML is an error
//! naming the file and line (the Python manager treats it as absent, silently).

use std::path::Path;
use std::sync::LazyLock;

use redpepper_core::Value;
use regex::Regex;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::pyfmt::py_eq;
use super::CustomError;

/// MessagePack extension code of the timestamp marker (never sent).
pub(crate) use redpepper_core::codec::python::TIMESTAMP_EXT;

static BOOL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .ok()
});
static FLOAT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)",
        r"|\.(?:nan|NaN|NAN))$"
    ))
    .ok()
});
static INT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?0b[0-1_]+",
        r"|[-+]?0[0-7_]+",
        r"|[-+]?(?:0|[1-9][0-9_]*)",
        r"|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"
    ))
    .ok()
});
static TIMESTAMP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
        r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?",
        r"(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"
    ))
    .ok()
});

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// Reads `base/rel`: `Ok(None)` if it does not exist or holds no document.
pub(crate) fn load(base: &Path, rel: &str) -> Result<Option<Value>, CustomError> {
    let path = base.join(rel);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CustomError::Hidden(format!(
                "reading {}: {e}",
                path.display()
            )));
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| CustomError::Yaml {
        file: rel.to_owned(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        message: "not UTF-8 text".to_owned(),
    })?;
    parse(&text).map_err(|(line, message)| CustomError::Yaml {
        file: rel.to_owned(),
        line,
        message,
    })
}

/// Parses one YAML document; the error is (line, what).
pub(crate) fn parse(text: &str) -> Result<Option<Value>, (usize, String)> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: Default::default(),
    };
    let mut doc = None;
    loop {
        let (ev, mark) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => return Ok(doc),
            Event::DocumentStart => {
                if doc.is_some() {
                    return Err((
                        mark.line(),
                        "expected a single document in the stream".into(),
                    ));
                }
                let (ev, mark) = b.next()?;
                doc = Some(b.node(ev, mark)?);
            }
            other => {
                // A document without an explicit start.
                if doc.is_some() {
                    return Err((
                        mark.line(),
                        "expected a single document in the stream".into(),
                    ));
                }
                doc = Some(b.node(other, mark)?);
            }
        }
    }
}

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: std::collections::HashMap<usize, Value>,
}

type Res<T> = Result<T, (usize, String)>;

impl Builder<'_> {
    fn next(&mut self) -> Res<(Event, Marker)> {
        self.parser
            .next_token()
            .map_err(|e| (e.marker().line(), e.info().to_owned()))
    }

    fn keep(&mut self, anchor: usize, v: &Value) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
    }

    fn node(&mut self, ev: Event, mark: Marker) -> Res<Value> {
        let line = mark.line();
        match ev {
            Event::Alias(id) => self
                .anchors
                .get(&id)
                .cloned()
                .ok_or((line, "found undefined alias".to_owned())),
            Event::Scalar(text, style, anchor, tag) => {
                let v = scalar(text, style, tag.as_ref()).map_err(|m| (line, m))?;
                self.keep(anchor, &v);
                Ok(v)
            }
            Event::SequenceStart(anchor, tag) => {
                collection_tag(tag.as_ref(), "seq").map_err(|m| (line, m))?;
                let mut items = Vec::new();
                loop {
                    let (ev, mark) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(ev, mark)?);
                }
                let v = Value::Array(items);
                self.keep(anchor, &v);
                Ok(v)
            }
            Event::MappingStart(anchor, tag) => {
                collection_tag(tag.as_ref(), "map").map_err(|m| (line, m))?;
                let v = Value::Map(self.mapping()?);
                self.keep(anchor, &v);
                Ok(v)
            }
            other => Err((line, format!("unexpected {other:?}"))),
        }
    }

    fn mapping(&mut self) -> Res<Vec<(Value, Value)>> {
        let mut merged: Vec<(Value, Value)> = Vec::new();
        let mut explicit: Vec<(Value, Value)> = Vec::new();
        loop {
            let (ev, mark) = self.next()?;
            if ev == Event::MappingEnd {
                break;
            }
            let is_merge =
                matches!(&ev, Event::Scalar(t, TScalarStyle::Plain, _, None) if t == "<<");
            let key = self.node(ev, mark)?;
            if matches!(key, Value::Array(_) | Value::Map(_)) {
                return Err((mark.line(), "found unhashable key".to_owned()));
            }
            let (ev, vmark) = self.next()?;
            let value = self.node(ev, vmark)?;
            if !is_merge {
                explicit.push((key, value));
                continue;
            }
            match value {
                Value::Map(pairs) => merged.extend(pairs),
                Value::Array(maps) => {
                    for m in maps.into_iter().rev() {
                        match m {
                            Value::Map(pairs) => merged.extend(pairs),
                            _ => {
                                return Err((
                                    vmark.line(),
                                    "expected a mapping for merging".to_owned(),
                                ))
                            }
                        }
                    }
                }
                _ => {
                    return Err((
                        vmark.line(),
                        "expected a mapping or list of mappings for merging".to_owned(),
                    ))
                }
            }
        }
        let mut out: Vec<(Value, Value)> = Vec::with_capacity(merged.len() + explicit.len());
        for (k, v) in merged.into_iter().chain(explicit) {
            match out.iter_mut().find(|(ek, _)| py_eq(ek, &k)) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        Ok(out)
    }
}

fn is_core(tag: &Tag) -> bool {
    tag.handle == "tag:yaml.org,2002:"
}

fn collection_tag(tag: Option<&Tag>, kind: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if is_core(t) && t.suffix == kind => Ok(()),
        Some(t) if t.handle == "!" && t.suffix.is_empty() => Ok(()),
        Some(t) => Err(format!("unsupported tag {}{}", t.handle, t.suffix)),
    }
}

fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    match tag {
        None if style == TScalarStyle::Plain => resolve_plain(text),
        None => Ok(Value::from(text)),
        Some(t) if t.handle == "!" && t.suffix.is_empty() => Ok(Value::from(text)),
        Some(t) if is_core(t) => match t.suffix.as_str() {
            "str" => Ok(Value::from(text)),
            "null" => Ok(Value::Nil),
            "bool" => match text.to_lowercase().as_str() {
                "yes" | "true" | "on" => Ok(Value::Boolean(true)),
                "no" | "false" | "off" => Ok(Value::Boolean(false)),
                _ => Err(format!("{text:?} is not a boolean")),
            },
            "int" => int(&text),
            "float" => float(&text),
            "binary" => {
                use base64::Engine;
                let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .map(Value::Binary)
                    .map_err(|e| format!("failed to decode base64 data: {e}"))
            }
            "timestamp" => Ok(Value::Ext(TIMESTAMP_EXT, text.into_bytes())),
            other => Err(format!("unsupported tag !!{other}")),
        },
        Some(t) => Err(format!("unsupported tag {}{}", t.handle, t.suffix)),
    }
}

fn resolve_plain(text: String) -> Result<Value, String> {
    let first = text.chars().next();
    Ok(match first {
        None => Value::Nil,
        Some(_) if matches!(text.as_str(), "~" | "null" | "Null" | "NULL") => Value::Nil,
        Some(_) if matches(&BOOL, &text) => Value::Boolean(matches!(
            text.to_ascii_lowercase().as_str(),
            "yes" | "true" | "on"
        )),
        Some(_) if matches(&FLOAT, &text) => float(&text)?,
        Some(_) if matches(&INT, &text) => int(&text)?,
        Some(_) if matches(&TIMESTAMP, &text) => Value::Ext(TIMESTAMP_EXT, text.into_bytes()),
        Some(_) => Value::from(text),
    })
}

/// PyYAML's `construct_yaml_int`.
fn int(text: &str) -> Result<Value, String> {
    let bad = || format!("{text:?} is not an integer");
    let clean = text.replace('_', "");
    let (neg, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let magnitude: i128 = if digits == "0" {
        0
    } else if let Some(b) = digits.strip_prefix("0b") {
        i128::from_str_radix(b, 2).map_err(|_| bad())?
    } else if let Some(h) = digits.strip_prefix("0x") {
        i128::from_str_radix(h, 16).map_err(|_| bad())?
    } else if digits.starts_with('0') {
        i128::from_str_radix(digits, 8).map_err(|_| bad())?
    } else if digits.contains(':') {
        let mut v: i128 = 0;
        for part in digits.split(':') {
            let d: i128 = part.parse().map_err(|_| bad())?;
            v = v
                .checked_mul(60)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(bad)?;
        }
        v
    } else {
        digits.parse().map_err(|_| bad())?
    };
    let v = if neg { -magnitude } else { magnitude };
    if let Ok(i) = i64::try_from(v) {
        Ok(Value::from(i))
    } else if let Ok(u) = u64::try_from(v) {
        Ok(Value::from(u))
    } else {
        Err(format!("{text} does not fit in a MessagePack integer"))
    }
}

/// PyYAML's `construct_yaml_float`.
fn float(text: &str) -> Result<Value, String> {
    let clean = text.replace('_', "").to_lowercase();
    let (sign, body) = match clean.as_bytes().first() {
        Some(b'-') => (-1.0, &clean[1..]),
        Some(b'+') => (1.0, &clean[1..]),
        _ => (1.0, clean.as_str()),
    };
    let bad = || format!("{text:?} is not a float");
    let v = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        return Ok(Value::F64(f64::NAN));
    } else if body.contains(':') {
        let mut v = 0.0;
        for part in body.split(':') {
            v = v * 60.0 + part.parse::<f64>().map_err(|_| bad())?;
        }
        v
    } else {
        body.parse::<f64>().map_err(|_| bad())?
    };
    Ok(Value::F64(sign * v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        match parse(text) {
            Ok(Some(v)) => v,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn scalars_resolve_as_yaml_1_1() {
        // What PyYAML 6 `safe_load` returns for each.
        assert_eq!(one("yes"), Value::Boolean(true));
        assert_eq!(one("Off"), Value::Boolean(false));
        assert_eq!(one("ON"), Value::Boolean(true));
        assert_eq!(one("'yes'"), Value::from("yes"));
        assert_eq!(one("y"), Value::from("y"));
        assert_eq!(one("0755"), Value::from(493));
        assert_eq!(one("0x1f"), Value::from(31));
        assert_eq!(one("0b101"), Value::from(5));
        assert_eq!(one("1:30"), Value::from(90));
        assert_eq!(one("1_000"), Value::from(1000));
        assert_eq!(one("-0"), Value::from(0));
        assert_eq!(one("1e5"), Value::from("1e5"));
        assert_eq!(one("1.5e+3"), Value::F64(1500.0));
        assert_eq!(one("1."), Value::F64(1.0));
        assert_eq!(one("-.inf"), Value::F64(f64::NEG_INFINITY));
        assert_eq!(one("~"), Value::Nil);
        assert_eq!(
            one("a: null").to_string(),
            Value::Map(vec![(Value::from("a"), Value::Nil)]).to_string()
        );
        assert_eq!(one("18446744073709551615"), Value::from(u64::MAX));
        assert_eq!(
            one("2024-01-01"),
            Value::Ext(TIMESTAMP_EXT, b"2024-01-01".to_vec())
        );
        assert_eq!(one("!!str 5"), Value::from("5"));
        assert_eq!(one("!!binary aGk="), Value::Binary(b"hi".to_vec()));
        assert!(parse("").ok().flatten().is_none());
        assert!(parse("# only a comment\n").ok().flatten().is_none());
    }

    #[test]
    fn mappings_merge_and_dedupe_as_pyyaml() {
        let v = one("a: 1\nb: 2\na: 3\n");
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::from("a"), Value::from(3)),
                (Value::from("b"), Value::from(2))
            ])
        );
        let v = one("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 9\n");
        assert_eq!(
            v,
            Value::Map(vec![
                (
                    Value::from("base"),
                    Value::Map(vec![
                        (Value::from("x"), Value::from(1)),
                        (Value::from("y"), Value::from(2))
                    ])
                ),
                (
                    Value::from("d"),
                    Value::Map(vec![
                        (Value::from("x"), Value::from(1)),
                        (Value::from("y"), Value::from(9))
                    ])
                ),
            ])
        );
        assert_eq!(
            one("true: 1"),
            Value::Map(vec![(Value::Boolean(true), Value::from(1))])
        );
    }

    #[test]
    fn bad_yaml_names_the_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").err();
        let Some((line, message)) = err else {
            panic!("parsed")
        };
        assert!(line >= 2, "line {line}: {message}");
        assert!(parse("a: 1\n---\nb: 2\n").is_err(), "two documents");
        assert!(parse("x: !custom 1").is_err(), "unknown tag");
    }
}
