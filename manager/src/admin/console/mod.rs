//! The web console (docs/CONSOLE.md): a page served at `/` by the admin listener, built
//! on the admin API it sits next to.
//!
//! Unauthenticated: only the page and its static assets (`/`, `/console/*`, embedded in
//! the binary) and `POST /console/login`. Everything else is the API, behind the same
//! check as ever: the bearer token, or (this module) a console session cookie.
//!
//! ```text
//!  browser ── POST /console/login {token} | {username, password[, code]} ──▶ login.rs
//!          ◀── Set-Cookie: redpepper_console=<random>; HttpOnly; SameSite=Strict; ...
//!          ── GET /v1/agents, /v1/events (SSE), POST /v1/runs ... (cookie) ──▶ auth.rs
//!                                   └─ session.rs: session valid? Origin ours (writes)?
//! ```
//!
//! # Layout
//! - this file: [`Console`] (settings, sessions, login limiter), the routes, the
//!   embedded assets and their headers (a strict Content-Security-Policy).
//! - `session`: the session store and the cookie check the API's auth middleware asks.
//! - `login`: login and logout: the admin token or an `api_logins` account (argon2
//!   password, optional TOTP), rate-limited by client address.
//! - `totp`: RFC 6238 codes (HMAC-SHA1, 30 s, 6 digits), as pyotp makes them.

mod login;
mod session;
pub mod totp;

use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use redpepper_config::ConsoleConfig;

pub(crate) use session::{authenticate, CookieAuth};

use super::AppState;

/// The console's state: its login settings, sessions and login limiter.
#[derive(Debug)]
pub(crate) struct Console {
    config: ConsoleConfig,
    /// Served over TLS: cookies get `Secure`.
    secure: bool,
    sessions: session::Sessions,
    limiter: login::Limiter,
}

impl Console {
    /// The console of `config`; `secure` when the admin listener serves HTTPS.
    pub(crate) fn new(config: ConsoleConfig, secure: bool) -> Self {
        Self {
            config,
            secure,
            sessions: session::Sessions::default(),
            limiter: login::Limiter::default(),
        }
    }

    fn max_age(&self) -> Duration {
        self.config.session_max_age
    }
}

/// The console's own routes: the page, its assets, login and logout (no token needed
/// for these: merge them outside the token check).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/console/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml") }),
        )
        .route("/console/login", post(login::login))
        .route("/console/logout", post(login::logout))
}

const INDEX: &str = include_str!("../../../assets/console/index.html");
const APP_JS: &str = include_str!("../../../assets/console/app.js");
const APP_CSS: &str = include_str!("../../../assets/console/app.css");
const ICON: &str = include_str!("../../../assets/console/icon.svg");

/// No inline script or style, nothing from elsewhere, never framed.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure_headers(h);
    r
}

/// The headers of every console answer: CSP, no sniffing, no referrer, no caching
/// (a new manager version serves its own assets at once).
pub(crate) fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
