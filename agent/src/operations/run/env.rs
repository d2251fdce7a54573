//! The child's environment, as pure functions over `(key, value)` pairs (the tests
//! never touch the process environment).
//!
//! - Without `user`: the agent's environment minus its secrets ([`scrubbed`]):
//!   `REDPEPPER_*` (configuration, which may hold secrets), proxy variables whose URL
//!   carries credentials, and any variable whose value holds a URL with a password
//!   (`scheme://user:pass@host`).
//! - With `user`: a login environment ([`login`]), as `su - user` builds one.
//!
//! The `env` argument is applied after either: the operator's explicit choice wins.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use redpepper_config::ENV_PREFIX;

/// Proxy variables (either case) kept only without credentials in their URL.
const PROXY_VARS: &[&str] = &["http_proxy", "https_proxy", "all_proxy", "ftp_proxy"];

/// `PATH` of a login environment, as login(1) sets it for root and for other users.
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The user a login environment is for.
pub(super) struct LoginUser<'a> {
    pub(super) name: &'a str,
    pub(super) root: bool,
    pub(super) home: &'a Path,
    pub(super) shell: &'a Path,
}

/// Whether the variable `key=value` is one of the agent's secrets.
pub(super) fn is_secret(key: &[u8], value: &[u8]) -> bool {
    let prefix = ENV_PREFIX.as_bytes();
    let configuration =
        key.len() >= prefix.len() && key[..prefix.len()].eq_ignore_ascii_case(prefix);
    let proxy = PROXY_VARS
        .iter()
        .any(|p| key.eq_ignore_ascii_case(p.as_bytes()));
    configuration || (proxy && proxy_has_userinfo(value)) || has_url_password(value)
}

/// The agent's variables without its secrets.
pub(super) fn scrubbed(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(k, v)| !is_secret(k.as_bytes(), v.as_bytes()))
        .collect()
}

/// A login environment for `user`: `HOME`, `USER`, `LOGNAME`, `SHELL` (`/bin/sh` when
/// the account names none), `PATH`, and from the agent's variables only `LANG`,
/// `LC_*`, `TZ` and `TERM` (never a secret).
pub(super) fn login(
    user: &LoginUser<'_>,
    agent: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let shell = if user.shell.as_os_str().is_empty() {
        Path::new("/bin/sh")
    } else {
        user.shell
    };
    let mut env: Vec<(OsString, OsString)> = vec![
        ("HOME".into(), user.home.into()),
        ("USER".into(), user.name.into()),
        ("LOGNAME".into(), user.name.into()),
        ("SHELL".into(), shell.into()),
        (
            "PATH".into(),
            if user.root { ROOT_PATH } else { USER_PATH }.into(),
        ),
    ];
    env.extend(
        scrubbed(agent)
            .into_iter()
            .filter(|(k, _)| kept_at_login(k)),
    );
    env
}

fn kept_at_login(key: &OsStr) -> bool {
    let key = key.as_bytes();
    matches!(key, b"LANG" | b"TZ" | b"TERM") || key.starts_with(b"LC_")
}

/// The userinfo of a proxy setting, with or without a scheme (`user@proxy:3128`).
fn proxy_has_userinfo(value: &[u8]) -> bool {
    let rest = match find(value, b"://") {
        Some(i) => &value[i + 3..],
        None => value,
    };
    authority(rest).contains(&b'@')
}

/// Whether any URL in `value` carries a password: `scheme://user:pass@`.
fn has_url_password(value: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = find(&value[from..], b"://") {
        let at = from + i;
        if has_scheme_before(&value[..at]) {
            let auth = authority(&value[at + 3..]);
            if let Some(last_at) = auth.iter().rposition(|&b| b == b'@') {
                if auth[..last_at].contains(&b':') {
                    return true;
                }
            }
        }
        from = at + 3;
    }
    false
}

/// Whether `before` ends with a URL scheme: a letter, then letters, digits, `+-.`.
fn has_scheme_before(before: &[u8]) -> bool {
    let len = before
        .iter()
        .rev()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    len > 0
        && before[before.len() - len..]
            .iter()
            .any(u8::is_ascii_alphabetic)
}

/// A URL's authority: up to the path, query, fragment, or the end of the word.
fn authority(rest: &[u8]) -> &[u8] {
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#') || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    &rest[..end]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
