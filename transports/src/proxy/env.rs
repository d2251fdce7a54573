//! Choosing a proxy from the environment, as curl does: `https_proxy` / `HTTPS_PROXY`
//! for TLS connections, `http_proxy` / `HTTP_PROXY` for plain ones, and hosts exempted
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

/// The first non-empty value among `names` (lower case first, as curl prefers).
fn first_set(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| env(n))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
}

/// The proxy URL the environment asks for when connecting to `host`, or `None` if no
/// proxy variable is set or `NO_PROXY` exempts the host.
///
/// `secure` selects `https_proxy`/`HTTPS_PROXY` (TLS, wss) over
/// `http_proxy`/`HTTP_PROXY` (plain ws).
pub fn proxy_from_env(
    env: impl Fn(&str) -> Option<String>,
    secure: bool,
    host: &str,
) -> Option<String> {
    let names: &[&str] = if secure {
        &["https_proxy", "HTTPS_PROXY"]
    } else {
        &["http_proxy", "HTTP_PROXY"]
    };
    let proxy = first_set(&env, names)?;
    match first_set(&env, &["no_proxy", "NO_PROXY"]) {
        Some(no_proxy) if no_proxy_matches(&no_proxy, host) => None,
        _ => Some(proxy),
    }
}

/// Whether a `NO_PROXY` list exempts `host`, with curl's rules.
///
/// The list is comma-separated; spaces around entries are ignored. `*` exempts every
/// host. A name entry, with or without a leading dot, matches that host and every host
/// below it (`example.com` and `.example.com` both match `example.com` and
/// `www.example.com`, not `badexample.com`), case-insensitively. An IP address entry
/// matches that address; a CIDR entry (`10.0.0.0/8`, `fd00::/8`) matches the addresses
/// inside. IPv6 hosts and entries may be bracketed.
pub fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = normalize(host);
    let host_ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split(',')
        .map(str::trim)
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

/// Lower case, without IPv6 brackets or a trailing dot.
fn normalize(name: &str) -> String {
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .map(|(addr, tail)| format!("{addr}{tail}"));
    let name = unbracketed.as_deref().unwrap_or(name);
    name.trim_end_matches('.').to_ascii_lowercase()
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
}
