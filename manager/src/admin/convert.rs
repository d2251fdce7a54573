//! JSON <-> MessagePack values, for arguments going to agents and data coming back.
//!
//! | MessagePack            | JSON                                              |
//! |------------------------|---------------------------------------------------|
//! | nil                    | `null`                                            |
//! | bool                   | `true` / `false`                                  |
//! | int (any width)        | number (integers stay integers)                   |
//! | float32 / float64      | number; NaN and infinities become `null`          |
//! | str                    | string (invalid UTF-8 is replaced by U+FFFD)      |
//! | bin                    | `{"$bin": "<standard base64>"}`                   |
//! | array                  | array                                             |
//! | map with str keys      | object                                            |
//! | map with other keys    | object whose keys are the keys' JSON text (`1` -> `"1"`) |
//! | ext                    | `{"$ext": {"type": <int>, "data": "<base64>"}}`   |
//!
//! Going to an agent, the same table is read right to left: an object whose only key
//! is `"$bin"` with a string value is decoded from base64 into `bin`; a JSON number
//! that is an integer becomes a MessagePack int, any other number a float64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use redpepper_core::{Kwargs, Value};
use serde_json::{Map, Number, Value as Json};

/// A JSON value that cannot be sent as MessagePack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConvertError {
    /// Where in the document (`kwargs.data.$bin`).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// JSON to a MessagePack value; `path` names the value in errors.
pub fn json_to_value(json: &Json, path: &str) -> Result<Value, ConvertError> {
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| json_to_value(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => {
            if let (1, Some(b64)) = (map.len(), map.get("$bin")) {
                let Json::String(text) = b64 else {
                    return Err(ConvertError {
                        path: format!("{path}.$bin"),
                        reason: "expected a base64 string".into(),
                    });
                };
                let bytes = STANDARD.decode(text).map_err(|e| ConvertError {
                    path: format!("{path}.$bin"),
                    reason: format!("invalid base64: {e}"),
                })?;
                return Ok(Value::Binary(bytes));
            }
            Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        Ok((
                            Value::from(k.as_str()),
                            json_to_value(v, &format!("{path}.{k}"))?,
                        ))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

/// A JSON object (or `null`) to keyword arguments.
pub fn json_to_kwargs(json: Option<&Json>, path: &str) -> Result<Kwargs, ConvertError> {
    match json {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Object(map)) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), json_to_value(v, &format!("{path}.{k}"))?)))
            .collect(),
        Some(_) => Err(ConvertError {
            path: path.to_owned(),
            reason: "expected an object of name: value".into(),
        }),
    }
}

/// A JSON array (or `null`) to positional arguments.
pub fn json_to_args(json: Option<&Json>, path: &str) -> Result<Vec<Value>, ConvertError> {
    match json {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| json_to_value(v, &format!("{path}[{i}]")))
            .collect(),
        Some(_) => Err(ConvertError {
            path: path.to_owned(),
            reason: "expected an array".into(),
        }),
    }
}

fn bin(bytes: &[u8]) -> Json {
    let mut m = Map::new();
    m.insert("$bin".into(), Json::String(STANDARD.encode(bytes)));
    Json::Object(m)
}

/// A MessagePack value to JSON (see the module table).
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::from(u),
            (None, Some(s)) => Json::from(s),
            (None, None) => Json::Null,
        },
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => Json::String(match s.as_str() {
            Some(text) => text.to_owned(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        }),
        Value::Binary(b) => bin(b),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        other => value_to_json(other).to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect(),
        ),
        Value::Ext(kind, data) => {
            let mut inner = Map::new();
            inner.insert("type".into(), Json::from(*kind));
            inner.insert("data".into(), Json::String(STANDARD.encode(data)));
            let mut m = Map::new();
            m.insert("$ext".into(), Json::Object(inner));
            Json::Object(m)
        }
    }
}

fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_and_containers_round_trip() {
        let doc = json!({"n": 1, "neg": -5, "big": u64::MAX, "f": 0.5, "s": "x", "b": true,
                         "nil": null, "list": [1, "two", [3]], "bin": {"$bin": "AAEC"}});
        let v = json_to_value(&doc, "kwargs").unwrap();
        assert_eq!(value_to_json(&v), doc);
        let Value::Map(entries) = &v else { panic!() };
        let bin = entries
            .iter()
            .find(|(k, _)| k.as_str() == Some("bin"))
            .unwrap();
        assert_eq!(bin.1, Value::Binary(vec![0, 1, 2]));
    }

    #[test]
    fn odd_msgpack_values_have_a_json_form() {
        let v = Value::Map(vec![
            (Value::from(1), Value::F64(f64::NAN)),
            (Value::from("e"), Value::Ext(5, vec![255])),
        ]);
        assert_eq!(
            value_to_json(&v),
            json!({"1": null, "e": {"$ext": {"type": 5, "data": "/w=="}}})
        );
    }

    #[test]
    fn errors_name_the_place() {
        let e = json_to_value(&json!({"a": [{"$bin": "!!"}]}), "kwargs").unwrap_err();
        assert_eq!(e.path, "kwargs.a[0].$bin");
        let e = json_to_kwargs(Some(&json!([1])), "kwargs").unwrap_err();
        assert!(e.to_string().contains("expected an object"), "{e}");
        assert!(json_to_args(Some(&json!({})), "args").is_err());
        assert_eq!(json_to_args(None, "args").unwrap(), vec![]);
    }
}
