//! `POST /console/login` and `POST /console/logout`.
//!
//! A login is the admin token (`{"token": "..."}`) or an `api_logins` account
//! (`{"username", "password", "code"}`): the password checked against its argon2
//! `password_hash`, then, when the account has a `totp_secret`, the 6-digit code
//! (without one: 401 `totp_required`, and the page asks for it). Failed attempts are
//! limited per client address ([`MAX_FAILURES`] a minute, then 429
//! `too_many_attempts`), as RedPepper's API server limits its logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use redpepper_config::base32_decode;
use serde::Deserialize;
use serde_json::json;

use super::super::error::ApiError;
use super::super::serve::PeerAddr;
use super::super::AppState;
use super::session::{cookie_value, same_origin, COOKIE};

/// Failed logins allowed per client address in [`WINDOW`].
pub(crate) const MAX_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Most client addresses remembered (older windows are dropped first).
const MAX_CLIENTS: usize = 4096;
/// Largest login body.
const MAX_BODY: usize = 16 * 1024;
/// Verified for an unknown user name, so the answer takes as long as for a known one.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$SfTyv8tor167ClUT8nSeMQ$WOhYdkw6qtpuUnxlk5oDnP7ffCBYOEMvKJPKYDdLf2Y";

/// Failed login attempts by client address.
#[derive(Debug, Default)]
pub(crate) struct Limiter(Mutex<HashMap<IpAddr, (Instant, u32)>>);

impl Limiter {
    /// Whether `ip` may try now.
    fn allowed(&self, ip: IpAddr) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)
            .is_none_or(|(start, n)| start.elapsed() >= WINDOW || *n < MAX_FAILURES)
    }

    fn failed(&self, ip: IpAddr) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS {
            map.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        if map.len() >= MAX_CLIENTS {
            // Still full of live windows: forget them rather than grow without bound.
            map.clear();
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[derive(Deserialize)]
struct LoginBody {
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    code: Option<String>,
}

/// Outcome of checking the credentials.
enum Verdict {
    User(String),
    TotpRequired,
    Refused(&'static str),
}

fn peer_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|c| c.0 .0.ip())
}

fn console_headers(mut r: Response) -> Response {
    super::secure_headers(r.headers_mut());
    r
}

/// `POST /console/login`.
pub(crate) async fn login(State(state): State<AppState>, request: Request) -> Response {
    console_headers(login_inner(state, request).await)
}

async fn login_inner(state: AppState, request: Request) -> Response {
    if !same_origin(&request) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "log in from the console's own page",
        )
        .into_response();
    }
    let ip = peer_ip(&request);
    let peer = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
    let console = state.console.clone();
    if ip.is_some_and(|ip| !console.limiter.allowed(ip)) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins from {peer}: wait a minute"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    let bytes = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("cannot read the login: {e}")).into_response()
        }
    };
    let body: LoginBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("bad login body: {e}")).into_response(),
    };
    let verdict = if let Some(token) = body.token.as_deref().filter(|t| !t.is_empty()) {
        if state.token.matches(token.trim()) {
            Verdict::User("token".to_owned())
        } else {
            Verdict::Refused("wrong admin token")
        }
    } else {
        let checking = console.clone();
        tokio::task::spawn_blocking(move || check_account(&checking, body))
            .await
            .unwrap_or(Verdict::Refused("login check failed"))
    };
    match verdict {
        Verdict::User(user) => {
            let value = console.sessions.create(&user, console.max_age());
            tracing::info!(%user, %peer, "console login");
            let mut cookie = format!(
                "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                console.max_age().as_secs()
            );
            if console.secure {
                cookie.push_str("; Secure");
            }
            let mut r = Json(json!({"user": user})).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Verdict::TotpRequired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "enter the 6-digit code of your authenticator",
        )
        .into_response(),
        Verdict::Refused(why) => {
            if let Some(ip) = ip {
                console.limiter.failed(ip);
            }
            if let Some(suppressed) = state.stats.refused_log.admit() {
                tracing::warn!(%peer, reason = why, suppressed, "console login refused");
            }
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "login refused").into_response()
        }
    }
}

/// Password (argon2) then TOTP: CPU-heavy, run off the async threads.
fn check_account(console: &super::Console, body: LoginBody) -> Verdict {
    let username = body.username.unwrap_or_default();
    let password = body.password.unwrap_or_default();
    let login = console
        .config
        .logins
        .iter()
        .find(|l| l.username == username);
    let hash = login.map_or(DUMMY_HASH, |l| l.password_hash.as_str());
    let password_ok = PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false);
    let Some(login) = login.filter(|_| password_ok) else {
        return Verdict::Refused("wrong user name or password");
    };
    let Some(secret) = &login.totp_secret else {
        return Verdict::User(login.username.clone());
    };
    let Some(code) = body.code.filter(|c| !c.trim().is_empty()) else {
        return Verdict::TotpRequired;
    };
    let key = base32_decode(secret.expose()).unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if super::totp::verify(&key, &code, now) {
        Verdict::User(login.username.clone())
    } else {
        Verdict::Refused("wrong TOTP code")
    }
}

/// `POST /console/logout`: ends the session and clears the cookie.
pub(crate) async fn logout(State(state): State<AppState>, request: Request) -> Response {
    if !same_origin(&request) {
        return console_headers(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "log out from the console's own page",
            )
            .into_response(),
        );
    }
    if let Some(user) = cookie_value(&request).and_then(|v| state.console.sessions.remove(&v)) {
        tracing::info!(%user, "console logout");
    }
    let mut r = Json(json!({"logged_out": true})).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "redpepper_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    console_headers(r)
}
