//! Errors of the admin API: starting it ([`AdminError`]) and answering a request
//! ([`ApiError`], a JSON body `{"code": ..., "error": ...}`).

use std::path::PathBuf;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redpepper_core::CallError;
use serde_json::json;

use crate::error::ManagerError;

/// The admin API could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// `admin_token_file` is unusable.
    #[error("admin_token_file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A setting is missing or wrong.
    #[error("{key}: {reason}")]
    Setting {
        /// The configuration key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The admin certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] redpepper_transports::TransportsError),
    /// The listening socket could not be bound.
    #[error("admin_bind: cannot listen on {addr}: {source}")]
    Bind {
        /// What we tried.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A request failed: HTTP status, a stable machine `code`, a human `error` text.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code (`not_connected`, `timeout`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and text.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The error of a failed call to an agent.
    ///
    /// The variants a lone manager has are mapped one by one; any other (the cluster's:
    /// the node holding the agent is gone, the cluster link is down, ...) is 503
    /// `cluster_unavailable` with its text: the agent may well be fine, this node cannot
    /// reach it now.
    pub fn from_manager(e: &ManagerError) -> Self {
        let (status, code) = match e {
            ManagerError::NotConnected(_) => (StatusCode::NOT_FOUND, "not_connected"),
            ManagerError::Call { source, .. } => match source {
                CallError::Remote(_) => (StatusCode::OK, "remote_error"),
                CallError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
                CallError::SessionClosed(_) => (StatusCode::BAD_GATEWAY, "connection_lost"),
                CallError::Encode(_) => (StatusCode::BAD_REQUEST, "encode_error"),
                _ => (StatusCode::BAD_GATEWAY, "call_failed"),
            },
            ManagerError::Command { .. } => (StatusCode::BAD_GATEWAY, "command_failed"),
            ManagerError::Config(_)
            | ManagerError::Transports(_)
            | ManagerError::Admin(_)
            | ManagerError::Transport(_)
            | ManagerError::Session(_)
            | ManagerError::Other(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            #[allow(unreachable_patterns)]
            _ => (StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"code": self.code, "error": self.message})),
        )
            .into_response()
    }
}

/// Longest error text kept from a non-JSON error answer.
const ERROR_TEXT_LIMIT: usize = 16 * 1024;

/// Middleware: every error answer (4xx, 5xx) has the JSON body `{code, error}`. Ours
/// already do; axum's own (405 with an empty body, 413 over the body limit, 400 for a
/// bad query string, all plain text) are rewritten with a stable code:
/// `method_not_allowed`, `payload_too_large`, `bad_request` (other 4xx), `not_found`,
/// `internal` (5xx). Headers such as `Allow` are kept.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_LIMIT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let or_status = |text: String| {
        if text.is_empty() {
            status.to_string()
        } else {
            text
        }
    };
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map_or_else(String::new, |v| format!(" (allowed: {v})"));
            (
                "method_not_allowed",
                format!("method {method} is not allowed on {path}{allowed}"),
            )
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!(
                "request body larger than the limit of {} bytes",
                super::BODY_LIMIT
            ),
        ),
        StatusCode::NOT_FOUND => ("not_found", or_status(text)),
        s if s.is_server_error() => ("internal", or_status(text)),
        _ => ("bad_request", or_status(text)),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = json!({"code": code, "error": message}).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}
