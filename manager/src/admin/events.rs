//! `GET /v1/events`: the manager's events as server-sent events.
//!
//! Every event is `event: TYPE` plus one `data:` line of JSON holding `type`, `time`
//! (RFC 3339) and the fields below. A comment line (`: keepalive`) goes out every 15 s
//! of silence.
//!
//! | type               | fields                                                 |
//! |--------------------|--------------------------------------------------------|
//! | `connected`        | `peer` (transport connection accepted, before hello)   |
//! | `authenticated`    | `agent`, `peer`, `version` (session established)       |
//! | `auth_failed`      | `agent` (as claimed), `peer`                           |
//! | `disconnected`     | `agent`, `reason`                                      |
//! | `notification`     | `agent`, `notification_type`, `data`                   |
//! | `command_progress` | `agent`, `command_id`, `current`, `total`, `message`   |
//! | `command_result`   | `agent`, `command_id`, `success`, `changed`, `output`  |
//! | `lagged`           | `missed`: this client read too slowly and lost N events |
//!
//! Every event also has `node`: the cluster node it happened on (this node's name for
//! its own events and for `lagged`; a lone manager's node name is its host name by
//! default).
//!
//! The stream reads the manager's broadcast channel: a slow client never slows the
//! manager; it gets a `lagged` event instead. Query `?agent=GLOB` keeps the events of
//! matching agents (and drops `connected`, which has no agent yet); `?types=a,b` keeps
//! those types; `?node=NAME` keeps one node's events (and `lagged`).
//!
//! In a cluster, other nodes' agents connecting and leaving always reach this node
//! ([`ManagerEvent::Remote`]); their other events (notifications, command progress and
//! results, refused hellos) only while someone here watches: an open stream holds a
//! [`Manager::watch_events`] guard. The `version` of another node's `authenticated`
//! event is `null` (`/v1/agents` has it): looking it up would scan the whole fleet's
//! directory for every event, on every stream.
//!
//! An agent's notification data over 64 KiB (`EVENT_DATA_LIMIT`) is not carried whole:
//! the event keeps its small top-level fields and says `"truncated": SIZE` (bytes);
//! the rest (a long `output`, say) is `null`/absent. This bounds what the manager's
//! event ring (1024 events) holds; `/v1/runs` always gets the whole result. Every
//! string an agent chose (notification type, agent id of a refused hello, Bye reason)
//! is at most 128 characters, escaped (`redpepper_core::quiet::printable`), so one
//! event is at most about 64 KiB + 4 KiB (kept fields) + a few KiB of strings, and a
//! stalled `/v1/events` reader pins at most the ring: 1024 x ~70 KiB, about 70 MiB.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use glob::Pattern;
use redpepper_core::quiet::printable;
use redpepper_core::{Notification, Value};
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::MissedTickBehavior;

use super::convert::value_to_json;
use super::error::ApiError;
use super::target::rfc3339;
use super::AppState;
use crate::cluster::EventWatch;
use crate::{Manager, ManagerEvent};

/// Silence after which a keepalive comment is sent.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Query of `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    pub(crate) agent: Option<String>,
    pub(crate) types: Option<String>,
    pub(crate) node: Option<String>,
}

/// Which events a stream keeps.
pub(crate) struct Filter {
    agent: Option<Pattern>,
    types: Option<Vec<String>>,
    node: Option<String>,
}

impl Filter {
    /// The filter of a query; empty values filter nothing.
    pub(crate) fn new(q: EventsQuery) -> Result<Self, ApiError> {
        let agent = q
            .agent
            .filter(|a| !a.is_empty())
            .map(|a| Pattern::new(&a))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("agent: bad glob: {e}")))?;
        let types = q.types.filter(|t| !t.is_empty()).map(|t| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        });
        let node = q.node.filter(|n| !n.is_empty());
        Ok(Self { agent, types, node })
    }

    fn keeps(&self, ev: &Rendered) -> bool {
        let (kind, agent) = (ev.kind, ev.agent.as_deref());
        let agent_ok = match (&self.agent, agent) {
            (None, _) => true,
            (Some(p), Some(a)) => p.matches(a),
            (Some(_), None) => kind == "lagged",
        };
        let type_ok = self
            .types
            .as_ref()
            .is_none_or(|t| kind == "lagged" || t.iter().any(|k| k == kind));
        let node_ok = self
            .node
            .as_ref()
            .is_none_or(|n| kind == "lagged" || *n == ev.node);
        agent_ok && type_ok && node_ok
    }
}

/// `GET /v1/events`.
pub(crate) async fn events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let filter = Filter::new(q)?;
    // Subscribe first, then say we watch: no event of the other nodes sent because of
    // the watch can come before we listen.
    let rx = state.manager.events();
    let watch = state.manager.watch_events();
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(event_stream(state, rx, filter, watch)),
    )
        .into_response())
}

/// The SSE chunks of `rx`'s events that `filter` keeps, keepalives in the silences,
/// until the manager or the admin API shuts down. Holds `watch` as long as it lives.
pub(crate) fn event_stream(
    state: AppState,
    rx: broadcast::Receiver<ManagerEvent>,
    filter: Filter,
    watch: EventWatch,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    futures::stream::unfold(
        (rx, tick, state, filter, watch),
        |(mut rx, mut tick, state, filter, watch)| async move {
            loop {
                let chunk = tokio::select! {
                    () = state.shutdown.cancelled() => return None,
                    _ = tick.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
                    ev = rx.recv() => match ev {
                        Ok(ev) => render(&ev, &state.manager)
                            .filter(|r| filter.keeps(r))
                            .map(Rendered::sse),
                        Err(RecvError::Lagged(n)) => {
                            state.stats.events_missed.fetch_add(n, Ordering::Relaxed);
                            let lagged = Rendered {
                                kind: "lagged",
                                agent: None,
                                node: state.manager.node_name().to_owned(),
                                json: json!({"missed": n}),
                            };
                            filter.keeps(&lagged).then(|| lagged.sse())
                        }
                        Err(RecvError::Closed) => return None,
                    },
                };
                if let Some(chunk) = chunk {
                    tick.reset();
                    return Some((Ok::<_, Infallible>(chunk), (rx, tick, state, filter, watch)));
                }
            }
        },
    )
}

/// One event, ready to be filtered and sent.
#[derive(Debug)]
pub(crate) struct Rendered {
    /// Its type.
    pub(crate) kind: &'static str,
    /// The agent it is about, if any.
    pub(crate) agent: Option<String>,
    /// The node it happened on.
    pub(crate) node: String,
    /// Its fields (`type`, `node` and `time` are added by [`Rendered::sse`]).
    pub(crate) json: Json_,
}

impl Rendered {
    /// `event: TYPE` and the `data:` line.
    fn sse(mut self) -> Bytes {
        let kind = self.kind;
        self.json["type"] = json!(kind);
        self.json["node"] = json!(self.node);
        self.json["time"] = json!(rfc3339(SystemTime::now()));
        Bytes::from(format!("event: {kind}\ndata: {}\n\n", self.json))
    }
}

fn field<'a>(data: &'a Value, name: &str) -> Option<&'a Value> {
    data.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

/// An event as it goes out: this node's own, or another node's
/// ([`ManagerEvent::Remote`], rendered like the local kind with that node's name).
pub(crate) fn render(ev: &ManagerEvent, manager: &Manager) -> Option<Rendered> {
    let (node, ev, local) = match ev {
        ManagerEvent::Remote { node, event } => (node.clone(), &**event, false),
        other => (manager.node_name().to_owned(), other, true),
    };
    let (kind, agent, json) = event_json(ev, manager, local)?;
    Some(Rendered {
        kind,
        agent,
        node,
        json,
    })
}

/// An event's type, agent and JSON fields; `local`: it happened on this node (the
/// `authenticated` event's `version` is read from the local session then, else
/// `null`).
fn event_json(
    ev: &ManagerEvent,
    manager: &Manager,
    local: bool,
) -> Option<(&'static str, Option<String>, Json_)> {
    Some(match ev {
        // Another node's event is never itself `Remote`; one that is is dropped.
        ManagerEvent::Remote { .. } => return None,
        ManagerEvent::Accepted { peer } => ("connected", None, json!({"peer": peer})),
        ManagerEvent::Connected { agent, peer } => {
            let version = local
                .then(|| manager.session(agent).map(|s| s.peer_version().to_owned()))
                .flatten();
            (
                "authenticated",
                Some(agent.clone()),
                json!({"agent": agent, "peer": peer, "version": version}),
            )
        }
        ManagerEvent::AuthFailed { agent, peer } => (
            "auth_failed",
            Some(agent.clone()),
            json!({"agent": agent, "peer": peer}),
        ),
        ManagerEvent::Disconnected { agent, reason } => (
            "disconnected",
            Some(agent.clone()),
            json!({"agent": agent, "reason": reason}),
        ),
        ManagerEvent::Notification {
            agent,
            notification,
        } => {
            let data = &notification.data;
            let get = |name: &str| field(data, name).map_or(Json_::Null, value_to_json);
            let (kind, agent, mut json) = match notification.r#type.as_str() {
                "command_progress" => (
                    "command_progress",
                    Some(agent.clone()),
                    json!({"agent": agent, "command_id": get("command_id"), "current": get("current"),
                           "total": get("total"), "message": get("message")}),
                ),
                "command_result" => (
                    "command_result",
                    Some(agent.clone()),
                    json!({"agent": agent, "command_id": get("id"), "success": get("success"),
                           "changed": get("changed"), "output": get("output")}),
                ),
                other => (
                    "notification",
                    Some(agent.clone()),
                    json!({"agent": agent, "notification_type": other, "data": value_to_json(data)}),
                ),
            };
            if let Some(size) = field(data, "$truncated") {
                json["truncated"] = value_to_json(size);
            }
            (kind, agent, json)
        }
    })
}

/// Most bytes of small top-level fields a capped notification keeps.
const KEPT_FIELDS_LIMIT: usize = 4096;

/// `n` with its data cut down to the small top-level fields and `$truncated` (its size)
/// when it is over `limit` (the manager's `EVENT_DATA_LIMIT`): what an event in the
/// broadcast ring may hold.
///
/// The type (a string the agent chose) goes through [`printable`]: at most 128
/// characters, escaped. The small fields kept total at most [`KEPT_FIELDS_LIMIT`]
/// bytes, so a capped event is a few KiB whatever the agent sent.
pub(crate) fn capped_notification(mut n: Notification, limit: usize) -> Notification {
    n.r#type = printable(&n.r#type);
    let size = value_size(&n.data);
    if size <= limit {
        return n;
    }
    let mut budget = KEPT_FIELDS_LIMIT;
    let mut kept: Vec<(Value, Value)> = match std::mem::replace(&mut n.data, Value::Nil) {
        Value::Map(entries) => entries
            .into_iter()
            .filter(|(k, v)| {
                let cost = value_size(k).saturating_add(value_size(v));
                let keep = k.is_str() && value_size(v) <= 256 && cost <= budget;
                if keep {
                    budget -= cost;
                }
                keep
            })
            .collect(),
        _ => Vec::new(),
    };
    kept.push((
        Value::from("$truncated"),
        Value::from(u64::try_from(size).unwrap_or(u64::MAX)),
    ));
    n.data = Value::Map(kept);
    n
}

/// About the MessagePack size of `v` (never less).
fn value_size(v: &Value) -> usize {
    match v {
        Value::String(s) => 5usize.saturating_add(s.as_bytes().len()),
        Value::Binary(b) | Value::Ext(_, b) => 6usize.saturating_add(b.len()),
        Value::Array(a) => a
            .iter()
            .fold(5usize, |n, v| n.saturating_add(value_size(v))),
        Value::Map(m) => m.iter().fold(5usize, |n, (k, v)| {
            n.saturating_add(value_size(k))
                .saturating_add(value_size(v))
        }),
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_notification_is_small_whatever_the_agent_sent() {
        let many: Vec<(Value, Value)> = (0..100_000)
            .map(|i| (Value::from(format!("k{i}")), Value::from("v".repeat(200))))
            .collect();
        let n = Notification {
            r#type: format!("t\n{}", "x".repeat(1 << 20)),
            data: Value::Map(many),
        };
        let capped = capped_notification(n, 64 * 1024);
        assert!(capped.r#type.starts_with("t\\n") && capped.r#type.len() < 200);
        assert!(value_size(&capped.data) <= KEPT_FIELDS_LIMIT + 64);
    }
}
