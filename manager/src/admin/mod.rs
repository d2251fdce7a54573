//! The admin HTTP API: what an operator (or `redpepper-ctl`) asks a running manager.
//!
//! Off unless `admin_bind` is set; every request but `/healthz` and `/readyz` needs
//! `Authorization: Bearer TOKEN` with the token of `admin_token_file`, else 401
//! (logged with the peer address). Each action (any method but GET) is logged once
//! as an audit line: client address, operation, target, run id, status.
//! HTTPS when `admin_tls_cert_file` / `admin_tls_key_file` are set. JSON everywhere
//! except `/metrics` (Prometheus text) and `/v1/events` (server-sent events).
//!
//! | method | path                              | what                                   |
//! |--------|-----------------------------------|----------------------------------------|
//! | GET    | `/v1/status`                      | version, uptime, listeners, agent count |
//! | GET    | `/v1/agents[?target=GLOB&node=N&down=true]` | agents (the whole cluster's) |
//! | GET    | `/v1/agents/{id}`                 | one connected agent                    |
//! | DELETE | `/v1/agents/{id}`                 | disconnect the agent now               |
//! | GET    | `/v1/cluster`                     | the cluster's nodes                    |
//! | POST   | `/v1/agents/{id}/calls`           | call a method on one agent             |
//! | POST   | `/v1/agents/{id}/notifications`   | send a notification to one agent       |
//! | POST   | `/v1/calls`                       | call a method on many agents at once   |
//! | POST   | `/v1/runs[?stream=true]`          | run an operation (`command`) on agents |
//! | GET    | `/v1/runs`                        | runs in progress                       |
//! | DELETE | `/v1/runs/{run_id}`               | cancel a run in progress               |
//! | GET    | `/v1/events[?agent=GLOB&types=…]` | event stream (SSE; `&node=N`)          |
//! | GET    | `/v1/jobs[?limit=N]`              | finished runs, newest first (job log)  |
//! | GET    | `/v1/jobs/{run_id}`               | one finished run's per-agent results   |
//! | GET    | `/v1/openapi.json`                | OpenAPI 3 description of all this      |
//! | GET    | `/metrics`                        | Prometheus metrics                     |
//! | GET    | `/healthz`                        | alive (no token)                       |
//! | GET    | `/readyz`                         | listeners and links up (no token)      |
//! | GET    | `/`, `/console/*`                 | the web console (no token: login page) |
//! | POST   | `/console/login`, `/console/logout` | console sessions (cookie)            |
//!
//! The API's routes are the table [`ROUTES`], which the router is built from; each one
//! must be described in `openapi.json` (a test checks).
//!
//! # Layout
//!
//! - `serve`: [`AdminServer`]: the listener (plain or TLS through
//!   `redpepper_transports::admin_tls`), hyper HTTP/1 with timers and a connection cap.
//! - `auth`: [`Token`] and the middleware that checks it and writes the audit lines.
//! - [`health`]: `/healthz`, `/readyz` ([`Manager::readiness`]), `DELETE /v1/agents/{id}`.
//! - `metrics_process`: build info, process figures, link states for `/metrics`.
//! - `routes`: status, agents, cluster, calls, notifications, metrics, OpenAPI.
//! - `runs`: `/v1/runs`, NDJSON progress streaming, cancellation.
//! - `run_table`: the runs in progress (bounded), what `GET /v1/runs` lists.
//! - `events`: `/v1/events`.
//! - `fleet`: the inventory (`down` agents of `agents.yml`, last seen), selection by
//!   regex and `agents.yml` data; `jobs`: `/v1/jobs`, the job log.
//! - `console`: the web console: its page and assets, login, session cookies.
//! - `target`: agent selection by id, glob or list; timeouts; timestamps.
//! - [`convert`]: the JSON <-> MessagePack mapping.
//! - `error`: [`AdminError`] (start-up), [`ApiError`] (a request's JSON error) and the
//!   middleware that turns any other error answer into that JSON.
//!
//! In a cluster (docs/CLUSTER.md) any node answers for the whole fleet: lists come from
//! [`Manager::agents`] and every item names its `node`; calls, notifications and runs go
//! through the routed [`Manager`] methods, forwarded to the node holding the agent;
//! events carry their `node`. A failure to reach another node is 503
//! `cluster_unavailable` ([`ApiError::from_manager`]).
//!
//! Every handler runs on its own task and awaits only its own calls, so thousands of
//! calls in flight never wait for each other; nothing here holds a lock across an
//! await.

mod auth;
mod console;
pub mod convert;
mod error;
mod events;
mod fleet;
pub mod health;
mod jobs;
mod metrics_process;
mod routes;
mod run_table;
mod runs;
mod serve;
mod target;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cluster;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_openapi;
#[cfg(test)]
mod tests_runs;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::DefaultBodyLimit;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use redpepper_config::{ConsoleConfig, ManagerConfig, TlsConfig};
use tokio_util::sync::CancellationToken;

pub use auth::Token;
pub use error::{AdminError, ApiError};
pub(crate) use events::capped_notification;
pub use fleet::FleetSettings;
pub use serve::{AdminServer, PeerAddr};

use crate::Manager;

/// What the admin API needs from the configuration.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `admin_bind`.
    pub bind: String,
    /// The token of `admin_token_file`.
    pub token: Token,
    /// `admin_tls_*`, when HTTPS is on.
    pub tls: Option<TlsConfig>,
    /// The inventory and job log (`None`: no `agents.yml` inventory, no job log).
    pub fleet: Option<FleetSettings>,
    /// `api_logins`, `api_session_max_age`: the web console's logins.
    pub console: ConsoleConfig,
}

impl AdminSettings {
    /// The admin settings of a manager configuration; `None` when `admin_bind` is not
    /// set. Reads (and checks the permissions of) `admin_token_file`.
    pub fn from_config(config: &ManagerConfig) -> Result<Option<Self>, AdminError> {
        let Some(bind) = config.admin_bind.clone() else {
            return Ok(None);
        };
        let path = config
            .admin_token_file
            .as_deref()
            .ok_or_else(|| AdminError::Setting {
                key: "admin_token_file",
                reason: "the admin API needs a bearer token file".into(),
            })?;
        Ok(Some(Self {
            bind,
            token: Token::load(path)?,
            tls: config.admin_tls.clone(),
            fleet: Some(FleetSettings::from_config(config)),
            console: config.console.clone(),
        }))
    }
}

/// Counters of the admin API itself.
#[derive(Debug, Default)]
pub(crate) struct AdminStats {
    pub(crate) unauthorized: AtomicU64,
    pub(crate) events_missed: AtomicU64,
    /// Admin connections open now (only counted by [`AdminServer`]).
    pub(crate) connections: AtomicU64,
    /// Agents whose operation a `/v1/runs` request is following now.
    pub(crate) runs_following: AtomicU64,
    /// Rate limit of the 401 log lines.
    pub(crate) refused_log: auth::RefusedLog,
}

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) manager: Manager,
    pub(crate) token: Arc<Token>,
    pub(crate) stats: Arc<AdminStats>,
    pub(crate) started: SystemTime,
    pub(crate) shutdown: CancellationToken,
    /// Runs in progress (`/v1/runs`).
    pub(crate) runs: Arc<run_table::RunTable>,
    /// The inventory and the job log.
    pub(crate) fleet: Arc<fleet::Fleet>,
    /// The web console: its logins and sessions.
    pub(crate) console: Arc<console::Console>,
}

/// Largest request body accepted (413 `payload_too_large` above it).
pub(crate) const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// An HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    /// The method as `openapi.json` keys its operations: `get`, `post`, `delete`.
    #[cfg(test)]
    pub(crate) fn openapi(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One route of the API: [`app`] builds the router from [`ROUTES`], and a test checks
/// that `openapi.json` describes each one.
pub(crate) struct ApiRoute {
    pub(crate) verb: Verb,
    pub(crate) path: &'static str,
    /// Behind the token check (else answered to anyone: health checks).
    pub(crate) token: bool,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

/// A route behind the token check.
const fn api(
    verb: Verb,
    path: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
) -> ApiRoute {
    ApiRoute {
        verb,
        path,
        token: true,
        handler,
    }
}

/// A route answered to anyone (health checks).
const fn open(
    verb: Verb,
    path: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
) -> ApiRoute {
    ApiRoute {
        token: false,
        ..api(verb, path, handler)
    }
}

/// Every route of the API (the web console's page, assets, login and logout are
/// `console::routes`). A new route goes here and into `openapi.json`.
pub(crate) const ROUTES: &[ApiRoute] = &[
    api(Verb::Get, "/v1/status", |m| on(m, routes::status)),
    api(Verb::Get, "/v1/agents", |m| on(m, routes::agents)),
    api(Verb::Get, "/v1/agents/{id}", |m| on(m, routes::agent)),
    api(Verb::Delete, "/v1/agents/{id}", |m| {
        on(m, health::disconnect)
    }),
    api(Verb::Get, "/v1/cluster", |m| on(m, routes::cluster)),
    api(Verb::Post, "/v1/agents/{id}/calls", |m| on(m, routes::call)),
    api(Verb::Post, "/v1/agents/{id}/notifications", |m| {
        on(m, routes::notify)
    }),
    api(Verb::Post, "/v1/calls", |m| on(m, routes::broadcast)),
    api(Verb::Post, "/v1/runs", |m| on(m, runs::run)),
    api(Verb::Get, "/v1/runs", |m| on(m, runs::list)),
    api(Verb::Delete, "/v1/runs/{run_id}", |m| on(m, runs::cancel)),
    api(Verb::Get, "/v1/events", |m| on(m, events::events)),
    api(Verb::Get, "/v1/jobs", |m| on(m, jobs::list)),
    api(Verb::Get, "/v1/jobs/{run_id}", |m| on(m, jobs::show)),
    api(Verb::Get, "/v1/openapi.json", |m| on(m, routes::openapi)),
    api(Verb::Get, "/metrics", |m| on(m, routes::metrics)),
    // Without the token: health for load balancers and orchestrators.
    open(Verb::Get, "/healthz", |m| on(m, health::healthz)),
    open(Verb::Get, "/readyz", |m| on(m, health::readyz)),
];

/// The API's routes for `manager`, every one behind the token check. Event streams
/// end when `shutdown` is cancelled.
pub fn router(manager: Manager, token: Token, shutdown: CancellationToken) -> Router {
    let console = console::Console::new(ConsoleConfig::default(), false);
    app(manager, token, console, shutdown, Arc::default(), None)
}

/// [`router`] counting into `stats`.
pub(crate) fn app(
    manager: Manager,
    token: Token,
    console: console::Console,
    shutdown: CancellationToken,
    stats: Arc<AdminStats>,
    fleet: Option<&FleetSettings>,
) -> Router {
    let fleet = Arc::new(fleet.map(fleet::Fleet::open).unwrap_or_default());
    fleet.spawn_watch(&manager, shutdown.clone());
    let state = AppState {
        manager,
        token: Arc::new(token),
        stats,
        started: SystemTime::now(),
        shutdown,
        runs: Arc::default(),
        fleet,
        console: Arc::new(console),
    };
    let (mut public, mut protected) = (Router::new(), Router::new());
    for route in ROUTES {
        let handler = (route.handler)(route.verb.filter());
        if route.token {
            protected = protected.route(route.path, handler);
        } else {
            public = public.route(route.path, handler);
        }
    }
    let protected = protected
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    public
        .merge(protected)
        // The web console's page, assets, login and logout: outside the token check.
        .merge(console::routes())
        // Outermost: every error answer, whoever made it, is `{code, error}` JSON.
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}
