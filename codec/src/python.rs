//! Python's `str()`, `repr()`, truth value, equality and type names of MessagePack
//! values, as RedPepper 0.3.4's texts print what travels in messages: its error texts
//! (`Invalid state name: {x!r}`), string interpolation (`"port ${port}"` with an int,
//! `['a', 'b']` for a list) and its agent's task output. The manager's `custom`
//! answers and the agent's state runs both write these texts; they are compared with
//! the real Python's in the tests.

use crate::Value;

/// The ext type under which the manager carries a YAML timestamp it read from a data
/// file (Python holds a `datetime` there). Never sent: an answer holding one is refused.
pub const TIMESTAMP_EXT: i8 = 100;

/// The Python type name of the value Python would hold for `v` (`'int' object is not
/// iterable`).
pub fn type_name(v: &Value) -> &'static str {
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

/// Python's `a == b` for values used as dict keys and state names: numbers compare
/// by value across int, float and bool (`1 == 1.0 == True`).
pub fn py_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Integer(i) => i.as_f64(),
            Value::F32(f) => Some(f64::from(*f)),
            Value::F64(f) => Some(*f),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x == y,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            (None, None) => a == b,
            _ => false,
        },
    }
}

/// Python's truth value of `v` (`x or {}`).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Boolean(b) => *b,
        Value::Integer(i) => i.as_i64() != Some(0),
        Value::F32(f) => *f != 0.0,
        Value::F64(f) => *f != 0.0,
        Value::String(s) => !s.as_bytes().is_empty(),
        Value::Binary(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Ext(..) => true,
    }
}

/// Python's `str(v)`: strings as they are, everything else as [`repr`].
pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().map(str::to_owned).unwrap_or_else(|| repr(v)),
        // A YAML date prints as written (`str(datetime.date)`).
        Value::Ext(TIMESTAMP_EXT, text) => String::from_utf8_lossy(text).into_owned(),
        _ => repr(v),
    }
}

/// Python's `repr(v)`.
pub fn repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

fn write_repr(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("None"),
        Value::Boolean(true) => out.push_str("True"),
        Value::Boolean(false) => out.push_str("False"),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::F32(f) => out.push_str(&float_repr(f64::from(*f))),
        Value::F64(f) => out.push_str(&float_repr(*f)),
        Value::String(s) => match s.as_str() {
            Some(s) => out.push_str(&str_repr(s)),
            None => out.push_str(&bytes_repr(s.as_bytes())),
        },
        Value::Binary(b) => out.push_str(&bytes_repr(b)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k);
                out.push_str(": ");
                write_repr(out, val);
            }
            out.push('}');
        }
        Value::Ext(TIMESTAMP_EXT, text) => {
            out.push_str(&format!("datetime({})", String::from_utf8_lossy(text)))
        }
        Value::Ext(tag, data) => {
            out.push_str(&format!("ExtType(code={tag}, data={})", bytes_repr(data)))
        }
    }
}

/// Python's `repr(float)`: the shortest text that reads back as the same float, in
/// fixed notation for exponents -4..16 and scientific (`1e+16`, `1e-05`) otherwise.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e3".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let mant = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.unsigned_abs())
    }
}

/// Whether Python's `str.isprintable()` holds for `c` (approximated: control,
/// format, separator and private-use characters other than the space are not).
fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        | '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{10ffff}')
}

/// Python's `repr(str)`.
pub fn str_repr(s: &str) -> String {
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
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(bytes)`.
fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote as char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        // Outputs of Python 3.12 `repr(float)`.
        for (f, text) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (-0.0, "-0.0"),
            (1e22, "1e+22"),
            (2.5e-7, "2.5e-07"),
            (100.0, "100.0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(float_repr(f), text, "{f}");
        }
    }

    #[test]
    fn values_print_as_python_str_and_repr() {
        let list = Value::Array(vec![Value::from("a"), Value::from("b")]);
        assert_eq!(str_of(&list), "['a', 'b']");
        let map = Value::Map(vec![(Value::from("x"), Value::from(1))]);
        assert_eq!(str_of(&map), "{'x': 1}");
        assert_eq!(str_of(&Value::Boolean(true)), "True");
        assert_eq!(str_of(&Value::Nil), "None");
        assert_eq!(str_of(&Value::from("plain")), "plain");
        assert_eq!(str_repr("a\\b"), "'a\\\\b'");
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("'\""), "'\\'\"'");
        assert_eq!(str_repr("\u{1}\u{a0}é"), "'\\x01\\xa0é'");
    }

    #[test]
    fn values_read_as_python_writes_them() {
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a\nb'\""), "'a\\nb\\'\"'");
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
            assert_eq!(float_repr(f), want, "{f}");
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
