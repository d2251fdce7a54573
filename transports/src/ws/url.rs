//! [`WsUrl`] (`websocket.url`) and the choice of proxy for it ([`proxy_for`]).

use std::fmt;

use tokio_tungstenite::tungstenite::http::Uri;

use crate::error::TransportsError;
use crate::proxy::{host_port, proxy_var_from_env, ProxyUrl};

/// A `ws://` or `wss://` URL (`websocket.url`).
#[derive(Clone, PartialEq, Eq)]
pub struct WsUrl {
    pub(super) secure: bool,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) uri: Uri,
}

impl WsUrl {
    /// Parse `ws[s]://HOST[:PORT]/PATH[?QUERY]`; the port defaults to 80 (`ws`) or 443
    /// (`wss`), the path to `/`.
    pub fn parse(text: &str) -> Result<Self, TransportsError> {
        let bad = |why: &str| {
            TransportsError::setting(
                "websocket.url",
                format!("expected ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH: {why}"),
            )
        };
        let uri: Uri = text.trim().parse().map_err(|_| bad("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(_) => return Err(bad("the scheme must be ws or wss")),
            None => return Err(bad("no scheme")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not supported; set an Authorization header in \
                 websocket.headers",
            ));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        if port == 0 {
            return Err(bad("port 0"));
        }
        let uri = if uri.path_and_query().is_some() {
            uri
        } else {
            let mut parts = uri.into_parts();
            parts.path_and_query = Some("/".parse().map_err(|_| bad("no path"))?);
            Uri::from_parts(parts).map_err(|_| bad("not a URL"))?
        };
        Ok(Self {
            secure,
            host,
            port,
            uri,
        })
    }

    /// `wss://` (TLS) rather than `ws://`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The host (name or IP address, without IPv6 brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (explicit, or the scheme's default).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

impl fmt::Display for WsUrl {
    /// `scheme://host:port/path` (no query: it may carry a token).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(
            f,
            "{scheme}://{}{}",
            host_port(&self.host, self.port),
            self.path()
        )
    }
}

impl fmt::Debug for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WsUrl({self})")
    }
}

/// The proxy to dial `url` through: `explicit` (`websocket.proxy`) when set, else
/// the environment's (`https_proxy`/`HTTPS_PROXY` for `wss://`, `http_proxy`/
/// `HTTP_PROXY` for `ws://`, then `all_proxy`/`ALL_PROXY`) unless `no_proxy`/
/// `NO_PROXY` exempts the host, as curl does. A bad URL in a scheme's own variable is
/// an error naming the variable; `all_proxy`/`ALL_PROXY` often names a SOCKS proxy set
/// for other tools, so one we cannot use (not `http://`) is logged and ignored. Pass [`process_env`](crate::proxy::process_env) as `env` for the real
/// environment.
pub fn proxy_for(
    url: &WsUrl,
    explicit: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxyUrl>, TransportsError> {
    if let Some(p) = explicit.map(str::trim).filter(|p| !p.is_empty()) {
        return ProxyUrl::parse(p)
            .map(Some)
            .map_err(|e| TransportsError::setting("websocket.proxy", e.to_string()));
    }
    let Some((variable, from_env)) = proxy_var_from_env(env, url.secure, &url.host) else {
        return Ok(None);
    };
    match ProxyUrl::parse(&from_env) {
        Ok(proxy) => Ok(Some(proxy)),
        Err(e) if variable.eq_ignore_ascii_case("all_proxy") => {
            tracing::warn!(
                "{}: {e}; ignored, connecting to {} directly (set HTTPS_PROXY, HTTP_PROXY \
                 or websocket.proxy to an http:// proxy to use one)",
                env_key(variable),
                url.host
            );
            Ok(None)
        }
        Err(e) => Err(TransportsError::setting(env_key(variable), e.to_string())),
    }
}

/// How errors name a proxy variable of the environment.
fn env_key(variable: &str) -> &'static str {
    match variable {
        "https_proxy" => "https_proxy (environment)",
        "HTTPS_PROXY" => "HTTPS_PROXY (environment)",
        "http_proxy" => "http_proxy (environment)",
        "HTTP_PROXY" => "HTTP_PROXY (environment)",
        "all_proxy" => "all_proxy (environment)",
        "ALL_PROXY" => "ALL_PROXY (environment)",
        _ => "proxy environment variable",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    #[test]
    fn urls_with_defaults() {
        let u = WsUrl::parse("wss://manager.example/redpepper").unwrap();
        assert_eq!(
            (u.is_secure(), u.host(), u.port(), u.path()),
            (true, "manager.example", 443, "/redpepper")
        );
        assert_eq!(u.to_string(), "wss://manager.example:443/redpepper");
        let u = WsUrl::parse("WS://[::1]:8080").unwrap();
        assert_eq!(
            (u.is_secure(), u.host(), u.port(), u.path()),
            (false, "::1", 8080, "/")
        );
        assert_eq!(u.to_string(), "ws://[::1]:8080/");
        let u = WsUrl::parse("ws://m:81/a/b?token=secret").unwrap();
        assert_eq!(
            u.uri.path_and_query().unwrap().as_str(),
            "/a/b?token=secret"
        );
        assert!(!u.to_string().contains("secret"));
    }

    #[test]
    fn bad_urls_say_why_without_echoing_secrets() {
        for (bad, why) in [
            ("http://m/redpepper", "scheme"),
            ("manager:7052", "scheme"),
            ("wss://user:hunter2@m/redpepper", "credentials"),
            ("wss://m:0/x", "port 0"),
            ("not a url", "not a URL"),
        ] {
            let e = WsUrl::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("websocket.url: "), "{e}");
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn explicit_proxy_then_environment_then_no_proxy() {
        let wss = WsUrl::parse("wss://manager.corp.example:7052/redpepper").unwrap();
        let ws = WsUrl::parse("ws://manager.corp.example:7052/redpepper").unwrap();
        let e = env(&[
            ("HTTPS_PROXY", "http://secure-proxy:3128"),
            ("HTTP_PROXY", "http://plain-proxy:3128"),
        ]);
        let chosen = |u: &WsUrl, explicit: Option<&str>, e: &dyn Fn(&str) -> Option<String>| {
            proxy_for(u, explicit, e).unwrap().map(|p| p.to_string())
        };
        assert_eq!(
            chosen(&wss, Some("http://mine:1"), &e).as_deref(),
            Some("http://mine:1")
        );
        assert_eq!(
            chosen(&wss, Some(" "), &e).as_deref(),
            Some("http://secure-proxy:3128")
        );
        assert_eq!(
            chosen(&ws, None, &e).as_deref(),
            Some("http://plain-proxy:3128")
        );
        let exempt = env(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", ".corp.example")]);
        assert_eq!(chosen(&wss, None, &exempt), None);
        assert_eq!(chosen(&wss, None, &env(&[])), None);
        let bad = proxy_for(&wss, None, env(&[("https_proxy", "socks5://p:1")])).unwrap_err();
        assert!(
            bad.to_string().starts_with("https_proxy (environment): "),
            "{bad}"
        );
        // A SOCKS proxy in ALL_PROXY (set for other tools) is ignored, not fatal.
        assert_eq!(
            chosen(&ws, None, &env(&[("ALL_PROXY", "socks5h://p:1")])),
            None
        );
        let all = env(&[("all_proxy", "http://all:3128")]);
        assert_eq!(chosen(&wss, None, &all).as_deref(), Some("http://all:3128"));
        let bad = proxy_for(&wss, Some("https://p:1"), env(&[])).unwrap_err();
        assert!(bad.to_string().starts_with("websocket.proxy: "), "{bad}");
    }
}
