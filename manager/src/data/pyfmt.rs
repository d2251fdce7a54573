//! Python's texts of values for the `custom` answers ([`redpepper_codec::python`]), and
//! RedPepper's name checks.

pub(crate) use redpepper_core::codec::python::{py_eq, repr, str_of, str_repr, truthy, type_name};

/// RedPepper's `is_valid_id`: `re.match(r"^[a-zA-Z0-9_-]+$", s)`, where `$` also
/// matches before one final newline.
pub(crate) fn is_valid_id(s: &str) -> bool {
    let s = s.strip_suffix('\n').unwrap_or(s);
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Python's `str.isidentifier()` (Unicode XID, `_` allowed first).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || unicode_ident::is_xid_start(c) => {}
        _ => return false,
    }
    chars.all(unicode_ident::is_xid_continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_identifiers_follow_python() {
        assert!(is_valid_id("web-1_a"));
        assert!(is_valid_id("web\n"), "`$` matches before a final newline");
        assert!(!is_valid_id("../x"));
        assert!(!is_valid_id(""));
        assert!(is_identifier("myop"));
        assert!(is_identifier("_x1"));
        assert!(is_identifier("é"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
    }
}
