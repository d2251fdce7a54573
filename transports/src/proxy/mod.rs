//! HTTP proxies: tunnelling a TCP connection with `CONNECT` before the TLS (or
//! WebSocket) handshake, and choosing a proxy from the environment.
//!
//! - [`ProxyUrl`]: `http://[user:pass@]host[:port]`, credentials percent-decoded and
//!   never displayed.
//! - [`connect_via`] / [`http_connect`]: the `CONNECT` exchange (see [`connect`]).
//! - [`no_proxy_matches`], [`proxy_from_env`] / [`proxy_var_from_env`],
//!   [`process_env`]: curl's environment
//!   rules, as pure functions the WebSocket transport can reuse.

pub mod connect;
mod env;
mod url;

pub use connect::{connect_via, http_connect, MAX_RESPONSE_HEAD};
pub use env::{no_proxy_matches, process_env, proxy_from_env, proxy_var_from_env};
pub use url::{InvalidProxyUrl, ProxyUrl, DEFAULT_PROXY_PORT};

pub(crate) use url::host_port;
