//! The client's address behind reverse proxies: `X-Forwarded-For` and `Forwarded`
//! (RFC 7239), believed only from `trusted_proxies`.
//!
//! ```text
//!   agent 192.0.2.7 ──▶ LB 10.0.0.2 ──▶ nginx 10.0.0.3 ──▶ manager
//!   X-Forwarded-For: 192.0.2.7, 10.0.0.2          (TCP peer: 10.0.0.3)
//!   trusted_proxies: [10.0.0.0/24]   →  client address 192.0.2.7
//! ```
//!
//! Starting from the TCP peer, each hop is believed only if the address that reported
//! it is trusted: the walk goes right to left through the list and stops at the first
//! untrusted address, which is the client. Anything left of it was written by that
//! client and may be forged. Headers from an untrusted TCP peer are ignored entirely.
//! When every hop is trusted, the left-most one is the client. A hop that is not an IP
//! address (`unknown`, an obfuscated `_name`, garbage) stops the walk at the proxy that
//! reported it.
//!
//! `X-Forwarded-For` always wins: when a request carries it, `Forwarded` is not read
//! at all, even if the trusted proxy set only `Forwarded`. So the trusted proxy must
//! overwrite or append to any `X-Forwarded-For` the client sent (nginx's
//! `$proxy_add_x_forwarded_for` appends), or drop it; otherwise a client's forged
//! `X-Forwarded-For` is believed. `Forwarded` is the fallback for proxies that set only
//! it and pass no `X-Forwarded-For` on. Ports are taken where the header gives one
//! (`Forwarded` can), else 0.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use tokio_tungstenite::tungstenite::http::HeaderMap;

/// The address to use for the client of a connection whose TCP peer is `peer`.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let peer = canonical(peer);
    if !is_trusted(peer.ip(), trusted) {
        return peer;
    }
    let hops = if headers.contains_key("x-forwarded-for") {
        x_forwarded_for(header_values(headers, "x-forwarded-for"))
    } else if headers.contains_key("forwarded") {
        forwarded_for(header_values(headers, "forwarded"))
    } else {
        return peer;
    };
    walk(peer, &hops, trusted)
}

/// Right to left through `hops`, starting at `peer`, while the current address is
/// trusted.
pub fn walk(peer: SocketAddr, hops: &[Option<SocketAddr>], trusted: &[IpNet]) -> SocketAddr {
    let mut current = canonical(peer);
    for hop in hops.iter().rev() {
        if !is_trusted(current.ip(), trusted) {
            break;
        }
        match hop {
            Some(addr) => current = canonical(*addr),
            None => break,
        }
    }
    current
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, from dual-stack sockets) as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Every value of header `name`, in order; a value that is not UTF-8 counts as one
/// unusable hop.
fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("unknown"))
}

/// The hops of `X-Forwarded-For` values, left to right: comma-separated addresses
/// (IPv4, IPv6, either with a port, IPv6 optionally bracketed).
pub fn x_forwarded_for<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Option<SocketAddr>> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .map(node)
        .collect()
}

/// The `for=` hops of `Forwarded` values (RFC 7239), left to right. An element without
/// `for=` is an unusable hop.
pub fn forwarded_for<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Option<SocketAddr>> {
    values
        .into_iter()
        .flat_map(|v| split_unquoted(v, ','))
        .filter(|element| !element.trim().is_empty())
        .map(|element| {
            split_unquoted(element, ';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| node(&unquote(value.trim())))
        })
        .collect()
}

/// One node: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`; `unknown`, `_obfuscated` and anything else give `None`.
fn node(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip), 0))
}

/// Split at `sep` outside double quotes (a backslash escapes inside quotes).
fn split_unquoted(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter()
}

/// A token or quoted-string value, unquoted.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio_tungstenite::tungstenite::http::HeaderValue;

    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn forwarded_elements_and_quoting() {
        let hops = forwarded_for([
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
            r#"for=unknown, by=10.0.0.1, for="_hidden", for="198.51.100.17:8080";host="a,b""#,
            r#"for="[::1]", for=10.1.2.3"#,
        ]);
        assert_eq!(
            hops,
            vec![
                Some(sa("192.0.2.60:0")),
                Some(sa("[2001:db8:cafe::17]:4711")),
                None,
                None,
                None,
                Some(sa("198.51.100.17:8080")),
                Some(sa("[::1]:0")),
                Some(sa("10.1.2.3:0")),
            ]
        );
        assert_eq!(forwarded_for([r#"for="a\"b""#]), vec![None]);
        assert_eq!(forwarded_for([""]), Vec::<Option<SocketAddr>>::new());
    }

    #[test]
    fn x_forwarded_for_forms() {
        let hops = x_forwarded_for([
            "203.0.113.7, 2001:db8::2",
            "[2001:db8::3]:99 ,10.0.0.1:5, junk",
        ]);
        assert_eq!(
            hops,
            vec![
                Some(sa("203.0.113.7:0")),
                Some(sa("[2001:db8::2]:0")),
                Some(sa("[2001:db8::3]:99")),
                Some(sa("10.0.0.1:5")),
                None,
            ]
        );
    }

    #[test]
    fn right_most_untrusted_hop_wins() {
        let trusted = nets(&["10.0.0.0/24", "127.0.0.3/32"]);
        let peer = sa("10.0.0.3:40000");
        // The client forged a first entry; the LB appended the real one.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 192.0.2.7, 10.0.0.2")]);
        assert_eq!(client_addr(peer, &h, &trusted), sa("192.0.2.7:0"));
        // Every hop trusted: the left-most is the client.
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.2")]);
        assert_eq!(client_addr(peer, &h, &trusted), sa("10.0.0.9:0"));
        // An unusable hop stops at the proxy that wrote it.
        let h = headers(&[("x-forwarded-for", "192.0.2.7, unknown")]);
        assert_eq!(client_addr(peer, &h, &trusted), peer);
        // No header: the TCP peer.
        assert_eq!(client_addr(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "192.0.2.7"),
            ("forwarded", "for=192.0.2.8"),
        ]);
        let peer = sa("198.51.100.1:1234");
        assert_eq!(client_addr(peer, &h, &nets(&["10.0.0.0/8"])), peer);
        assert_eq!(client_addr(peer, &h, &[]), peer);
    }

    #[test]
    fn x_forwarded_for_beats_forwarded_and_forwarded_is_a_fallback() {
        let trusted = nets(&["127.0.0.3/32"]);
        let peer = sa("127.0.0.3:5000");
        let both = headers(&[
            ("forwarded", "for=192.0.2.8"),
            ("x-forwarded-for", "192.0.2.7"),
        ]);
        assert_eq!(client_addr(peer, &both, &trusted), sa("192.0.2.7:0"));
        let fwd = headers(&[("forwarded", r#"for="[2001:db8::9]:7""#)]);
        assert_eq!(client_addr(peer, &fwd, &trusted), sa("[2001:db8::9]:7"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let trusted = nets(&["127.0.0.3/32"]);
        let h = headers(&[("x-forwarded-for", "::ffff:192.0.2.7")]);
        assert_eq!(
            client_addr(sa("[::ffff:127.0.0.3]:5000"), &h, &trusted),
            sa("192.0.2.7:0")
        );
    }
}
