//! [`HostPort`]: one entry of the agent's `manager_host` list.
//!
//! An entry is written `host`, `host:port`, `[v6]:port`, `[v6]` or a bare IPv6
//! address (`::1`, `fe80::1`); the port defaults to `manager_port`. A host is an IP
//! address or a DNS name (letters, digits, `-`, `_`, `.`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// One manager address of the agent's `manager_host` list: a host name or IP
/// address and the port to dial.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP address, IPv6 without brackets (`::1`).
    pub host: String,
    /// The TLS port: the entry's own, or `manager_port`.
    pub port: u16,
}

impl HostPort {
    /// `host` (a name or IP address; a bracketed IPv6 address is unbracketed) and
    /// `port`. Not checked: [`HostPort::parse`] checks what comes from a file.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        let host: String = host.into();
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner.to_owned(),
            None => host,
        };
        Self { host, port }
    }

    /// Parses one entry as written in `manager_host`, with `default_port` when it
    /// names none. The error says what is wrong, without the key.
    pub fn parse(text: &str, default_port: u16) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("expected a host name or IP address, found an empty entry".to_owned());
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (inner, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{t}`: `[` without a closing `]`"))?;
            if inner.parse::<Ipv6Addr>().is_err() {
                return Err(format!(
                    "`{t}`: `{inner}` in brackets is not an IPv6 address"
                ));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{t}`: expected `:PORT` after `]`"))?,
                ),
            };
            (inner, port)
        } else if t.matches(':').count() > 1 {
            // A bare IPv6 address: it cannot carry a port (use [v6]:port).
            if t.parse::<Ipv6Addr>().is_err() {
                return Err(format!(
                    "`{t}` is not an IPv6 address (an IPv6 address with a port is written \
                     [ADDRESS]:PORT)"
                ));
            }
            (t, None)
        } else {
            match t.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        if !is_host(host) {
            return Err(format!(
                "`{t}`: `{host}` is neither an IP address nor a host name \
                 (expected HOST, HOST:PORT or [IPV6]:PORT)"
            ));
        }
        let port =
            match port {
                None => default_port,
                Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| {
                    format!("`{t}`: the port `{p}` is not a number from 1 to 65535")
                })?,
            };
        Ok(Self::new(host, port))
    }
}

/// An IP address or a DNS name (`[A-Za-z0-9_-]` labels separated by dots).
fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').enumerate().all(|(i, label)| {
            // One trailing dot (a fully qualified name) is fine.
            (label.is_empty() && i > 0 && host.ends_with('.') && host.len() > 1)
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        })
        && !host.contains("..")
}

impl fmt::Display for HostPort {
    /// `host:port`, `[v6]:port` for IPv6 addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ok(text: &str) -> (String, u16) {
        let h = HostPort::parse(text, 7051).unwrap();
        (h.host, h.port)
    }

    #[test]
    fn entry_forms() {
        assert_eq!(ok("mgr-a.example.org"), ("mgr-a.example.org".into(), 7051));
        assert_eq!(ok(" mgr-b:7061 "), ("mgr-b".into(), 7061));
        assert_eq!(ok("10.0.0.1:1"), ("10.0.0.1".into(), 1));
        assert_eq!(ok("::1"), ("::1".into(), 7051));
        assert_eq!(ok("fe80::1"), ("fe80::1".into(), 7051));
        assert_eq!(ok("[::1]"), ("::1".into(), 7051));
        assert_eq!(ok("[2001:db8::1]:7061"), ("2001:db8::1".into(), 7061));
        assert_eq!(ok("host.example."), ("host.example.".into(), 7051));
        assert_eq!(HostPort::new("[::1]", 5).to_string(), "[::1]:5");
        assert_eq!(HostPort::new("m", 5).to_string(), "m:5");
    }

    #[test]
    fn bad_entries_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("m:0", "port `0`"),
            ("m:70000", "port `70000`"),
            ("m:x", "port `x`"),
            ("m:", "port ``"),
            ("[::1", "closing"),
            ("[m]:1", "not an IPv6"),
            ("[::1]7051", "`:PORT`"),
            ("2001:db8::1:x:y:z:w", "not an IPv6"),
            ("a b", "neither"),
            ("http://m", "port `//m`"),
            ("m/x", "neither"),
            ("a..b", "neither"),
            (":7051", "neither"),
        ] {
            let e = HostPort::parse(bad, 7051).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
