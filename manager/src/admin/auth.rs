//! The admin API's bearer token: loaded from `admin_token_file`, checked on every
//! request in constant time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::{AdminError, AppState};

/// The expected token. Only its SHA-256 is kept, so comparing takes the same time
/// whatever the length or content of what a client sends.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
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
            digest: Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// Whether `candidate` is the token, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
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
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    window: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// Whether to log one more line at `now`: `Some(k)` to log it, saying `k` lines
    /// were suppressed since the last one logged; `None` to suppress it.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.window
            .is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1))
        {
            s.window = Some(now);
            s.logged = 0;
        }
        if s.logged < REFUSED_LOG_PER_SECOND {
            s.logged += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
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
        return next.run(request).await;
    };
    state.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
    let peer = request
        .extensions()
        .get::<ConnectInfo<super::serve::PeerAddr>>()
        .map(|c| c.0 .0)
        .map_or_else(|| "unknown".to_owned(), |a: SocketAddr| a.to_string());
    if let Some(suppressed) = state.stats.refused_log.admit(Instant::now()) {
        tracing::warn!(%peer, method = %request.method(), path = %request.uri().path(), reason = why, suppressed, "admin request refused (401)");
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
    response
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
    fn refused_log_lines_are_rate_limited_with_a_suppressed_count() {
        let limiter = LogLimiter::default();
        let t0 = Instant::now();
        let admitted: Vec<Option<u64>> = (0..25).map(|_| limiter.admit(t0)).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 10);
        assert!(admitted[..10].iter().all(|a| *a == Some(0)));
        assert!(admitted[10..].iter().all(Option::is_none));
        // The next second: logged again, saying how many were left out.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.admit(t1), Some(15));
        assert_eq!(limiter.admit(t1), Some(0));
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
