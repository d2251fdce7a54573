//! Errors of the admin API: starting it ([`AdminError`]) and answering a request
//! ([`ApiError`], a JSON body `{"code": ..., "error": ...}`).

use std::path::PathBuf;

use axum::http::StatusCode;
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
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
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
