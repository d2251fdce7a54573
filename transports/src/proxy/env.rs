//! Choosing a proxy from the environment, as curl does: `https_proxy` / `HTTPS_PROXY`
//! for TLS connections, `http_proxy` / `HTTP_PROXY` for plain ones, `all_proxy` /
//! `ALL_PROXY` for either when the scheme's own variable is unset, and hosts exempted
//! by `no_proxy` / `NO_PROXY`.
//!
//! The functions take the environment as a lookup function, so they are pure and
//! testable; pass [`process_env`] for the real one.

use std::net::IpAddr;

use ipnet::IpNet;

/// Look a variable up in the process environment (non-UTF-8 values count as unset).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The first variable among `names` with a non-empty value, and that value trimmed
/// (lower case first, as curl prefers).
fn first_set(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Option<(&'static str, String)> {
    names
        .iter()
        .filter_map(|n| env(n).map(|v| (*n, v.trim().to_owned())))
        .find(|(_, v)| !v.is_empty())
}

/// The proxy URL the environment asks for when connecting to `host`, or `None` if no
/// proxy variable is set or `NO_PROXY` exempts the host. See [`proxy_var_from_env`].
pub fn proxy_from_env(
    env: impl Fn(&str) -> Option<String>,
    secure: bool,
    host: &str,
) -> Option<String> {
    proxy_var_from_env(env, secure, host).map(|(_, url)| url)
}

/// Like [`proxy_from_env`], with the name of the variable the URL came from (for
/// error messages).
///
/// `secure` selects `https_proxy`/`HTTPS_PROXY` (TLS, wss) over
/// `http_proxy`/`HTTP_PROXY` (plain ws); `all_proxy`/`ALL_PROXY` is used when those
/// are unset, as curl does.
pub fn proxy_var_from_env(
    env: impl Fn(&str) -> Option<String>,
    secure: bool,
    host: &str,
) -> Option<(&'static str, String)> {
    let names: &[&'static str] = if secure {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
    };
    let proxy = first_set(&env, names)?;
    match first_set(&env, &["no_proxy", "NO_PROXY"]) {
        Some((_, no_proxy)) if no_proxy_matches(&no_proxy, host) => None,
        _ => Some(proxy),
    }
}

/// Whether a `NO_PROXY` list exempts `host`, with curl's rules.
///
/// Entries are separated by commas, whitespace or both. `*` exempts every host. A
/// name entry, with or without a leading dot, matches that host and every host below
/// it (`example.com` and `.example.com` both match `example.com` and
/// `www.example.com`, not `badexample.com`), case-insensitively. An IP address entry
/// matches that address; a CIDR entry (`10.0.0.0/8`, `fd00::/8`) matches the addresses
/// inside. IPv6 hosts and entries may be bracketed. A `:port` after a name, an IPv4
/// address or a bracketed IPv6 address (`[::1]:8080`) is ignored: the entry matches
/// the host on any port.
pub fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = normalize(host);
    let host_ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = normalize(entry);
            if entry.contains('/') {
                return matches!(
                    (entry.parse::<IpNet>(), host_ip),
                    (Ok(net), Some(ip)) if net.contains(&ip)
                );
            }
            if let Ok(ip) = entry.parse::<IpAddr>() {
                return host_ip == Some(ip);
            }
            let domain = entry.trim_start_matches('.');
            !domain.is_empty()
                && host_ip.is_none()
                && (host == domain
                    || (host.len() > domain.len()
                        && host.ends_with(domain)
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'))
        })
}

/// Lower case, without IPv6 brackets, a `:port` or a trailing dot.
fn normalize(name: &str) -> String {
    let is_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let bare = match name.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        // `[::1]:8080` is `::1`; `[fd00::]/8` is `fd00::/8`.
        Some((addr, tail)) => match tail.strip_prefix(':') {
            Some(port) if is_port(port) => addr.to_owned(),
            _ => format!("{addr}{tail}"),
        },
        // `host:8080` or `10.0.0.1:8080`; a bare IPv6 address has several colons.
        None => match name.split_once(':') {
            Some((host, port)) if is_port(port) => host.to_owned(),
            _ => name.to_owned(),
        },
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn names_match_like_curl() {
        let list = "localhost, .internal.example ,example.com";
        assert!(no_proxy_matches(list, "localhost"));
        assert!(no_proxy_matches(list, "LOCALHOST."));
        assert!(no_proxy_matches(list, "example.com"));
        assert!(no_proxy_matches(list, "www.Example.com"));
        assert!(!no_proxy_matches(list, "badexample.com"));
        assert!(no_proxy_matches(list, "internal.example"));
        assert!(no_proxy_matches(list, "a.b.internal.example"));
        assert!(!no_proxy_matches(list, "external.example"));
        assert!(!no_proxy_matches(list, "localhost.evil.org"));
        assert!(!no_proxy_matches("", "localhost"));
        assert!(!no_proxy_matches(" , ,", "localhost"));
        assert!(!no_proxy_matches(".", "localhost"));
    }

    #[test]
    fn star_matches_everything() {
        assert!(no_proxy_matches("*", "anything.example"));
        assert!(no_proxy_matches("foo, *", "10.1.2.3"));
        assert!(!no_proxy_matches("*.example.com", "other.org"));
    }

    #[test]
    fn ips_and_cidrs() {
        let list = "127.0.0.1, 10.0.0.0/8, ::1, [fd00::]/8, 192.168.1.0/24";
        assert!(no_proxy_matches(list, "127.0.0.1"));
        assert!(!no_proxy_matches(list, "127.0.0.2"));
        assert!(no_proxy_matches(list, "10.200.3.4"));
        assert!(no_proxy_matches(list, "[::1]"));
        assert!(no_proxy_matches(list, "::1"));
        assert!(no_proxy_matches(list, "192.168.1.77"));
        assert!(!no_proxy_matches(list, "192.168.2.1"));
        assert!(!no_proxy_matches(list, "11.0.0.1"));
        // A name never matches an address entry, nor an address a name entry.
        assert!(!no_proxy_matches("10.0.0.0/8", "ten.example"));
        assert!(!no_proxy_matches("example.com", "93.184.216.34"));
        assert!(no_proxy_matches("fd00::/8", "fd12::1"));
    }

    #[test]
    fn entries_split_on_commas_and_whitespace() {
        let list = "localhost  .corp.example\t10.0.0.0/8,\n example.org ,, ";
        assert!(no_proxy_matches(list, "localhost"));
        assert!(no_proxy_matches(list, "m.corp.example"));
        assert!(no_proxy_matches(list, "10.1.2.3"));
        assert!(no_proxy_matches(list, "example.org"));
        assert!(!no_proxy_matches(list, "example.net"));
        assert!(!no_proxy_matches("  \t ", "localhost"));
    }

    #[test]
    fn ports_in_entries_are_ignored() {
        let list = "[::1]:8080, [fd00::1]:443, 10.0.0.1:3128, proxy.example:80";
        assert!(no_proxy_matches(list, "::1"));
        assert!(no_proxy_matches(list, "[::1]"));
        // Not `::1:8080`, the address the unbracketed text would be.
        assert!(!no_proxy_matches(list, "::1:8080"));
        assert!(no_proxy_matches(list, "fd00::1"));
        assert!(no_proxy_matches(list, "10.0.0.1"));
        assert!(no_proxy_matches(list, "www.proxy.example"));
        assert!(!no_proxy_matches(list, "10.0.0.2"));
        // Bare IPv6 entries keep every colon.
        assert!(no_proxy_matches("::1:8080", "::1:8080"));
        assert!(!no_proxy_matches("::1:8080", "::1"));
        assert!(no_proxy_matches("[fd00::]/8", "fd12::1"));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn env_lookup_prefers_lower_case_and_honours_no_proxy() {
        let e = env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://plain:1"),
            ("NO_PROXY", "internal.example"),
        ]);
        assert_eq!(
            proxy_from_env(&e, true, "manager.example").as_deref(),
            Some("http://lower:1")
        );
        assert_eq!(
            proxy_from_env(&e, false, "manager.example").as_deref(),
            Some("http://plain:1")
        );
        assert_eq!(proxy_from_env(&e, true, "m.internal.example"), None);
        let e = env(&[("https_proxy", "  "), ("HTTPS_PROXY", "http://upper:1")]);
        assert_eq!(
            proxy_from_env(&e, true, "x").as_deref(),
            Some("http://upper:1")
        );
        assert_eq!(proxy_from_env(env(&[]), true, "x"), None);
        let e = env(&[("http_proxy", "http://p:1"), ("no_proxy", "*")]);
        assert_eq!(proxy_from_env(&e, false, "x"), None);
    }

    #[test]
    fn all_proxy_comes_after_the_schemes_own_variables() {
        let e = env(&[
            ("ALL_PROXY", "http://all-upper:1"),
            ("all_proxy", "http://all:1"),
            ("HTTP_PROXY", "http://plain:1"),
        ]);
        assert_eq!(
            proxy_var_from_env(&e, false, "m"),
            Some(("HTTP_PROXY", "http://plain:1".to_owned()))
        );
        assert_eq!(
            proxy_var_from_env(&e, true, "m"),
            Some(("all_proxy", "http://all:1".to_owned()))
        );
        let e = env(&[("ALL_PROXY", "http://all-upper:1"), ("all_proxy", " ")]);
        assert_eq!(
            proxy_var_from_env(&e, true, "m"),
            Some(("ALL_PROXY", "http://all-upper:1".to_owned()))
        );
        let e = env(&[("ALL_PROXY", "http://all:1"), ("NO_PROXY", "m")]);
        assert_eq!(proxy_from_env(&e, false, "m"), None);
        assert_eq!(
            proxy_from_env(&e, false, "other").as_deref(),
            Some("http://all:1")
        );
    }
}
