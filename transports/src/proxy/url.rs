//! Parsing `http://[user:pass@]host[:port]` proxy URLs.

use std::fmt;

/// A proxy URL that cannot be used. The message never contains the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy URL: {0}")]
pub struct InvalidProxyUrl(String);

/// The port of a proxy URL that gives none: 1080, as curl documents for `--proxy` and
/// the proxy environment variables.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// An HTTP proxy to tunnel through with `CONNECT`.
///
/// Parsed from `http://[user:pass@]host[:port][/]`. The scheme may be left out (it
/// means `http`); `https://` proxies (TLS to the proxy itself) are not supported. The
/// port defaults to [`DEFAULT_PROXY_PORT`] (1080, as curl). User and password are
/// percent-decoded. [`fmt::Display`] and
/// [`fmt::Debug`] never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl ProxyUrl {
    /// Parse a proxy URL.
    pub fn parse(text: &str) -> Result<Self, InvalidProxyUrl> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(InvalidProxyUrl(format!(
                    "unsupported scheme `{scheme}` (only http:// proxies are supported)"
                )))
            }
            None => text,
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(InvalidProxyUrl(
                "a proxy URL has no path, query or fragment".into(),
            ));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                Some((percent_decode(user)?, percent_decode(pass)?))
            }
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(Self {
            host,
            port: port.unwrap_or(DEFAULT_PROXY_PORT),
            credentials,
        })
    }

    /// The proxy's host name or IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name, if credentials were given.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }

    /// The `Proxy-Authorization` header value (`Basic …`), if credentials were given.
    pub fn authorization(&self) -> Option<String> {
        self.credentials
            .as_ref()
            .map(|(u, p)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes())))
    }

    /// `host:port` for connecting, with IPv6 addresses in brackets.
    pub fn authority(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl std::str::FromStr for ProxyUrl {
    type Err = InvalidProxyUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.username())
            .finish_non_exhaustive()
    }
}

/// `host:port`, bracketing an IPv6 address.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), InvalidProxyUrl> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| InvalidProxyUrl("unclosed `[` in the host".into()))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(InvalidProxyUrl(format!(
                "`[{host}]` is not an IPv6 address"
            )));
        }
        match after {
            "" => (host, None),
            p => match p.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(InvalidProxyUrl("junk after `]`".into())),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
        return Err(InvalidProxyUrl("missing or malformed host".into()));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => Some(n),
            _ => return Err(InvalidProxyUrl(format!("bad port `{p}`"))),
        },
    };
    Ok((host.to_owned(), port))
}

/// Decode `%XX` escapes (the result must be UTF-8).
fn percent_decode(s: &str) -> Result<String, InvalidProxyUrl> {
    let bad = || InvalidProxyUrl("bad percent-encoding in the credentials".into());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Standard base64 with padding (RFC 4648), for `Basic` credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_full_and_short_forms() {
        let p = ProxyUrl::parse("http://us%40er:p%3Ass@proxy.example:3128/").unwrap();
        assert_eq!(p.host(), "proxy.example");
        assert_eq!(p.port(), 3128);
        assert_eq!(p.username(), Some("us@er"));
        assert_eq!(
            p.authorization().unwrap(),
            format!("Basic {}", base64(b"us@er:p:ss"))
        );
        assert_eq!(p.to_string(), "http://proxy.example:3128");
        assert!(!format!("{p:?}").contains("p:ss"));

        let p = ProxyUrl::parse("proxy:8080").unwrap();
        assert_eq!((p.host(), p.port(), p.username()), ("proxy", 8080, None));
        let p = ProxyUrl::parse("HTTP://[::1]:3128").unwrap();
        assert_eq!((p.host(), p.authority()), ("::1", "[::1]:3128".to_owned()));
        assert_eq!(ProxyUrl::parse("http://proxy").unwrap().port(), 1080);
        assert_eq!(ProxyUrl::parse("proxy").unwrap().port(), 1080);
        assert_eq!(
            ProxyUrl::parse("http://user:pw@proxy/").unwrap().port(),
            1080
        );
        assert_eq!(
            ProxyUrl::parse("http://[::1]").unwrap().authority(),
            "[::1]:1080"
        );
        let p = ProxyUrl::parse("http://user@proxy:1").unwrap();
        assert_eq!(
            p.authorization().unwrap(),
            format!("Basic {}", base64(b"user:"))
        );
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        for bad in [
            "https://proxy:443",
            "socks5://proxy:1080",
            "http://proxy:0",
            "http://proxy:99999",
            "http://proxy:3128/path",
            "http://:3128",
            "http://[::1",
            "http://[nothost]:1",
            "http://u:se%zzcret@proxy:1",
        ] {
            let e = ProxyUrl::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("cret"), "{e}");
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
