//! The admin API's bearer token: loaded from `admin_token_file`, checked on every
//! request in constant time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redpepper_core::quiet::LogLimit;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::{AdminError, AppState};

/// The expected token. Only its SHA-256 is kept, so comparing takes the same time
/// whatever the length or content of what a client sends.
///
/// Clones share the token: [`Token::replace`] (the manager's reload) changes it for
/// every clone, so the admin API in use sees the new one at its next request.
#[derive(Clone)]
pub struct Token {
    digest: Arc<RwLock<[u8; 32]>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text (surrounding whitespace is not part of it).
    pub fn new(text: &str) -> Result<Token, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is empty".into());
        }
        Ok(Token {
            digest: Arc::new(RwLock::new(Sha256::digest(text.as_bytes()).into())),
        })
    }

    fn digest(&self) -> [u8; 32] {
        *self.digest.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `candidate` is the token, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        bool::from(self.digest().ct_eq(&digest))
    }

    /// Make this token (and every clone of it) `other`'s value.
    pub fn replace(&self, other: &Token) {
        let value = other.digest();
        *self.digest.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Reads `admin_token_file`: it must not be readable by group or others, and
    /// must hold a non-empty token (whitespace around it is trimmed).
    pub fn load(path: &Path) -> Result<Token, AdminError> {
        let fail = |reason: String| AdminError::TokenFile {
            path: path.to_owned(),
            reason,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(fail(format!(
                    "is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
                    path.display()
                )));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let token = Token::new(&text).map_err(fail)?;
        if text.trim().len() < 16 {
            tracing::warn!(file = %path.display(), "admin token is shorter than 16 characters: use a long random one (openssl rand -hex 32)");
        }
        Ok(token)
    }
}

/// Most 401 log lines per second (a scanner must not flood the log).
const REFUSED_LOG_PER_SECOND: u32 = 10;

/// Rate limit of the "admin request refused" log lines: at most
/// [`REFUSED_LOG_PER_SECOND`] a second; the next line logged carries `suppressed`, how
/// many were left out before it (also counted in `redpepper_admin_unauthorized_total`).
#[derive(Debug)]
pub(crate) struct RefusedLog(LogLimit);

impl Default for RefusedLog {
    fn default() -> Self {
        Self(LogLimit::new(
            Duration::from_secs(1),
            REFUSED_LOG_PER_SECOND,
        ))
    }
}

impl RefusedLog {
    /// See [`LogLimit::admit`].
    pub(crate) fn admit(&self) -> Option<u64> {
        self.0.admit()
    }
}

/// Middleware: 401 for a request without `Authorization: Bearer <token>` matching the
/// configured token, logged with the peer address (never the token), at most
/// [`REFUSED_LOG_PER_SECOND`] lines a second.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(answer) = console_session(&state, &request) {
        return match answer {
            Ok(()) => next.run(request).await,
            Err(refused) => refused,
        };
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let verdict = match presented {
        None => Some("missing bearer token"),
        Some(t) if !state.token.matches(t) => Some("wrong bearer token"),
        Some(_) => None,
    };
    let Some(why) = verdict else {
        if request.method() == Method::GET || request.method() == Method::HEAD {
            return next.run(request).await;
        }
        return audited(request, next).await;
    };
    state.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
    let peer = request
        .extensions()
        .get::<ConnectInfo<super::serve::PeerAddr>>()
        .map(|c| c.0 .0)
        .map_or_else(|| "unknown".to_owned(), |a: SocketAddr| a.to_string());
    if let Some(suppressed) = state.stats.refused_log.admit() {
        tracing::warn!(%peer, method = %request.method(), path = %redpepper_core::quiet::printable(request.uri().path()), reason = why, suppressed, "admin request refused (401)");
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        format!("{why}: send `Authorization: Bearer <token>` with the token of admin_token_file"),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"redpepper-admin\""),
    );
    // A client without the token gets no kept-alive connection to try more on.
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// Serve an admin action (any method but GET and HEAD, past the token check) and
/// log one audit line: client address, operation (method and path), target (the
/// body's `target`, else the path), what it runs (`operation`, `method` or `type` of
/// the body), the run id (`x-redpepper-run-id` of the answer) and the status.
async fn audited(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<super::serve::PeerAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0 .0.to_string());
    let operation = format!(
        "{} {}",
        request.method(),
        redpepper_core::quiet::printable(request.uri().path())
    );
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::BODY_LIMIT).await else {
        tracing::info!(audit = true, %peer, %operation, status = 413, "admin action refused: body too large");
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let (target, action) = audit_fields(&bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let run_id = response
        .headers()
        .get(super::runs::RUN_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        audit = true,
        %peer,
        %operation,
        target = %target.as_deref().unwrap_or("-"),
        action = %action.as_deref().unwrap_or("-"),
        run_id,
        status = response.status().as_u16(),
        "admin action"
    );
    response
}

/// The `target` and the operation / method / notification type of a JSON body, as
/// short printable text.
fn audit_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return (None, None);
    };
    let short = |v: &serde_json::Value| {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        let text: String = text.chars().take(200).collect();
        redpepper_core::quiet::printable(&text)
    };
    let target = map.get("target").map(short);
    let action = ["operation", "method", "type"]
        .iter()
        .find_map(|k| map.get(*k))
        .map(short);
    (target, action)
}

/// The web console's alternative to the bearer token: a live session cookie (see
/// `console::session`). `None`: no such cookie, check the token; `Some(Ok)`: let the
/// request through; `Some(Err)`: a state-changing request from a foreign origin.
fn console_session(state: &AppState, request: &Request) -> Option<Result<(), Response>> {
    use super::console::{authenticate, CookieAuth};
    match authenticate(state, request) {
        CookieAuth::Absent => None,
        CookieAuth::User => Some(Ok(())),
        CookieAuth::Refused(response) => Some(Err(response)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_matches_trimmed_text_only() {
        let t = Token::new("  s3cret-token\n").unwrap();
        assert!(t.matches("s3cret-token"));
        assert!(!t.matches("s3cret-token "));
        assert!(!t.matches(""));
        assert!(Token::new(" \n").is_err());
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }

    #[test]
    fn audit_fields_name_target_and_action() {
        let (t, a) = audit_fields(br#"{"target": ["web1", "web2"], "operation": "echo.Echo"}"#);
        assert_eq!(t.as_deref(), Some("web1,web2"));
        assert_eq!(a.as_deref(), Some("echo.Echo"));
        assert_eq!(audit_fields(b"not json"), (None, None));
    }

    #[test]
    fn replacing_a_token_changes_every_clone() {
        let t = Token::new("old-token-0123456789").unwrap();
        let in_use = t.clone();
        t.replace(&Token::new("new-token-0123456789").unwrap());
        assert!(in_use.matches("new-token-0123456789"));
        assert!(!in_use.matches("old-token-0123456789"));
    }

    #[test]
    fn token_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Token::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::load(&path).unwrap().matches("0123456789abcdef0123"));
    }
}
