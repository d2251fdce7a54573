//! Values typed on the command line: `-k KEY=VALUE` and `notify`'s data.
//!
//! A value that starts with `[` or `{` is JSON (or YAML flow syntax); otherwise it is
//! read as a YAML scalar: `42` and `-1.5` are numbers, `true`/`false` booleans, `null`
//! or `~` null, anything else (including `echo a: b`) the text itself. An empty value
//! is the empty string. Quote to force a string: `-k port='"8080"'`.

use serde_json::{Map, Value};

use crate::error::CtlError;

/// Parse one value.
pub fn parse_value(text: &str) -> Result<Value, CtlError> {
    let trimmed = text.trim_start();
    if text.is_empty() {
        return Ok(Value::String(String::new()));
    }
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return serde_yaml::from_str::<Value>(text)
            .map_err(|e| CtlError::Usage(format!("invalid JSON value `{text}`: {e}")));
    }
    match serde_yaml::from_str::<Value>(text) {
        Ok(v @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => Ok(v),
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// Parse `KEY=VALUE` arguments into an object, in order; a repeated key keeps the
/// last value.
pub fn parse_kwargs(items: &[String]) -> Result<Map<String, Value>, CtlError> {
    let mut out = Map::new();
    for item in items {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| CtlError::Usage(format!("-k {item}: expected KEY=VALUE")))?;
        if key.is_empty() {
            return Err(CtlError::Usage(format!("-k {item}: empty key")));
        }
        out.insert(key.to_owned(), parse_value(value)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_json_and_text() {
        let p = |s: &str| parse_value(s).unwrap();
        assert_eq!(p("42"), json!(42));
        assert_eq!(p("-1.5"), json!(-1.5));
        assert_eq!(p("true"), json!(true));
        assert_eq!(p("null"), json!(null));
        assert_eq!(p("hello world"), json!("hello world"));
        assert_eq!(p("echo a: b"), json!("echo a: b"));
        assert_eq!(p("- x"), json!("- x"));
        assert_eq!(p(""), json!(""));
        assert_eq!(p("\"8080\""), json!("8080"));
        assert_eq!(p("[1, two, true]"), json!([1, "two", true]));
        assert_eq!(p(r#"{"a": {"b": [1]}}"#), json!({"a": {"b": [1]}}));
        assert!(parse_value("[1,").is_err());
    }

    #[test]
    fn kwargs() {
        let k = parse_kwargs(&[
            "message=hi there".into(),
            "reverse=true".into(),
            "n=1=2".into(),
        ])
        .unwrap();
        assert_eq!(
            Value::Object(k),
            json!({"message": "hi there", "reverse": true, "n": "1=2"})
        );
        assert!(parse_kwargs(&["novalue".into()]).is_err());
        assert!(parse_kwargs(&["=x".into()]).is_err());
    }
}
