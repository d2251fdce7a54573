//! `/healthz`, `/readyz` (answered without the token, for load balancers and
//! orchestrators) and `DELETE /v1/agents/{id}` (disconnect an agent now).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::Manager;

/// One readiness check: what, and whether it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyCheck {
    /// `listeners`, `amqp broker link`, `cluster link`.
    pub name: String,
    /// Whether it passes now.
    pub ok: bool,
}

impl Manager {
    /// What `/readyz` checks: the agent listeners are up (bound, and the manager is
    /// not shutting down); where AMQP is a transport, its broker connection is up;
    /// in a cluster, the cluster link is up.
    pub fn readiness(&self) -> Vec<ReadyCheck> {
        let inner = &self.inner;
        let mut checks = vec![ReadyCheck {
            name: "listeners".to_owned(),
            ok: !inner.shutdown.is_cancelled() && !inner.listening.is_empty(),
        }];
        for (kind, state) in &inner.links {
            checks.push(ReadyCheck {
                name: format!("{kind} broker link"),
                ok: *state.borrow(),
            });
        }
        if let Some(cluster) = self.cluster() {
            checks.push(ReadyCheck {
                name: "cluster link".to_owned(),
                ok: cluster.link.is_up(),
            });
        }
        checks
    }
}

/// `GET /healthz`: 200 while the process serves HTTP.
pub(crate) async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 when every [`Manager::readiness`] check passes, else 503; the
/// body lists each check.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let checks = state.manager.readiness();
    let ready = checks.iter().all(|c| c.ok);
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks
            .iter()
            .map(|c| json!({"name": c.name, "ok": c.ok}))
            .collect::<Vec<_>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `DELETE /v1/agents/{id}`: disconnect the agent now (Bye "disconnected by an
/// operator"; on the node holding its session in a cluster). 200
/// `{"agent": id, "disconnected": true}`; 404 `not_connected`.
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .manager
        .disconnect(&id)
        .await
        .map_err(|e| ApiError::from_manager(&e))?;
    Ok(Json(json!({"agent": id, "disconnected": true})).into_response())
}
