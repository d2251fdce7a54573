//! Values written as Python writes them, since RedPepper's output texts embed Python's
//! `str()` and `repr()` of what the manager sent: `True`, `None`, `'quoted'`,
//! `{'a': [1, 2.0]}`, and the type names its exceptions mention.

use redpepper_core::Value;

/// A string quoted as Python's `repr` quotes it (`'x'`, or `"x"` when it holds a
/// single quote and no double quote), as RedPepper writes names in its messages.
pub(crate) fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of a float: shortest round-trip digits, `1.0`, `1e+16`, `1e-05`,
/// `inf`, `nan`.
pub(crate) fn float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

/// Python's `str()` of a value (a string as it is, anything else as its `repr`).
pub(crate) fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => repr(other),
    }
}

/// Python's `repr()` of a value.
pub(crate) fn repr(v: &Value) -> String {
    match v {
        Value::Nil => "None".into(),
        Value::Boolean(true) => "True".into(),
        Value::Boolean(false) => "False".into(),
        Value::Integer(i) => i.to_string(),
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => repr_str(&String::from_utf8_lossy(s.as_bytes())),
        Value::Binary(b) => {
            let mut out = String::from("b'");
            for &c in b {
                match c {
                    b'\\' => out.push_str("\\\\"),
                    b'\'' => out.push_str("\\'"),
                    b'\n' => out.push_str("\\n"),
                    b'\r' => out.push_str("\\r"),
                    b'\t' => out.push_str("\\t"),
                    0x20..=0x7e => out.push(char::from(c)),
                    _ => out.push_str(&format!("\\x{c:02x}")),
                }
            }
            out.push('\'');
            out
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Map(entries) => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Ext(kind, data) => format!("ExtType(code={kind}, data={})", repr_bytes(data)),
    }
}

fn repr_bytes(b: &[u8]) -> String {
    repr(&Value::Binary(b.to_vec()))
}

/// Python's truthiness (`if value:`).
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Boolean(b) => *b,
        Value::Integer(i) => i.as_i64() != Some(0) && i.as_u64() != Some(0),
        Value::F32(f) => *f != 0.0,
        Value::F64(f) => *f != 0.0,
        Value::String(s) => !s.as_bytes().is_empty(),
        Value::Binary(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Ext(..) => true,
    }
}

/// The Python type name of a value, as `type(v).__name__` gives it.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "NoneType",
        Value::Boolean(_) => "bool",
        Value::Integer(_) => "int",
        Value::F32(_) | Value::F64(_) => "float",
        Value::String(_) => "str",
        Value::Binary(_) => "bytes",
        Value::Array(_) => "list",
        Value::Map(_) => "dict",
        Value::Ext(..) => "ExtType",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_python_writes_them() {
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a\nb'\""), "'a\\nb\\'\"'");
        for (f, want) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5e20, "-2.5e+20"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(float(f), want, "{f}");
        }
        let v = Value::Array(vec![Value::Map(vec![
            (Value::from("a"), Value::from("str")),
            (Value::from("n"), Value::Nil),
            (
                Value::from("t"),
                Value::Array(vec![Value::from(true), Value::from(1)]),
            ),
        ])]);
        assert_eq!(repr(&v), "[{'a': 'str', 'n': None, 't': [True, 1]}]");
        assert_eq!(str_of(&Value::from("x'")), "x'");
        assert_eq!(type_name(&Value::from(5)), "int");
    }
}
