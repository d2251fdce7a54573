//! Console sessions: a random cookie value per login, kept (as its SHA-256) with the
//! user's name and its expiry; the check the API's auth middleware asks for requests
//! that carry the cookie instead of a bearer token.
//!
//! Cross-site requests: the cookie is `SameSite=Strict`, and every state-changing
//! request (anything but GET/HEAD/OPTIONS) made with it must also come from the page's
//! own origin (`Origin` equal to the `Host` it was sent to), else 403
//! `forbidden_origin`. Bearer-token requests are not checked: a browser never adds a
//! bearer token by itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::super::error::ApiError;
use super::super::AppState;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "redpepper_console";
/// Most sessions kept at once: past it, the one expiring first is dropped.
const MAX_SESSIONS: usize = 4096;

#[derive(Debug)]
struct Session {
    user: String,
    expires: Instant,
}

/// The sessions, by the SHA-256 of their cookie value (the value itself is never
/// kept). Touched once per request made with a cookie: not on any agent's path.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<[u8; 32], Session>>);

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Sessions {
    /// A new session for `user` lasting `max_age`; returns the cookie value.
    pub(crate) fn create(&self, user: &str, max_age: Duration) -> String {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let value = hex::encode(raw);
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(k) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                map.remove(&k);
            }
        }
        map.insert(
            digest(&value),
            Session {
                user: user.to_owned(),
                expires: now + max_age,
            },
        );
        value
    }

    /// The user of a live session.
    pub(crate) fn user(&self, value: &str) -> Option<String> {
        let key = digest(value);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.user.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session; its user, if it was live.
    pub(crate) fn remove(&self, value: &str) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&digest(value)).map(|s| s.user)
    }
}

/// The console cookie's value in `request`'s `Cookie` headers.
pub(crate) fn cookie_value(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// Whether `request` comes from the page's own origin: its `Origin` is
/// `http(s)://HOST` with the `Host` it was sent to. Without `Origin`, a browser's
/// `Sec-Fetch-Site: same-origin` is accepted.
pub(crate) fn same_origin(request: &Request) -> bool {
    let h = request.headers();
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    match h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host)),
        None => h
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    }
}

/// What the cookie says about a request.
pub(crate) enum CookieAuth {
    /// No console cookie, or one of no live session: check the bearer token.
    Absent,
    /// A live session: the request may go on.
    User,
    /// A live session, but a state-changing request from another origin.
    Refused(Response),
}

/// The console-cookie check of [`super::super::auth::require_token`].
pub(crate) fn authenticate(state: &AppState, request: &Request) -> CookieAuth {
    let Some(value) = cookie_value(request) else {
        return CookieAuth::Absent;
    };
    let Some(user) = state.console.sessions.user(&value) else {
        return CookieAuth::Absent;
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let path = redpepper_core::quiet::printable(request.uri().path()).to_string();
    if !safe {
        if !same_origin(request) {
            if let Some(suppressed) = state.stats.refused_log.admit() {
                tracing::warn!(%user, method = %request.method(), %path, suppressed, "console request refused: not from the console's origin (403)");
            }
            return CookieAuth::Refused(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_origin",
                    "a state-changing request with the console's cookie must come from the console's own origin",
                )
                .into_response(),
            );
        }
        // The audit line: who did what, through the console.
        tracing::info!(%user, method = %request.method(), %path, "console action");
    }
    CookieAuth::User
}
