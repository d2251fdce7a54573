//! The fleet as `agents.yml` knows it: the inventory (connected and `down` agents,
//! with their last-seen times), selection by regex and by `agents.yml` `data`, and the
//! job log ([`crate::jobs`]).
//!
//! A [`Fleet`] is made from the manager's configuration ([`FleetSettings`]); the
//! library's [`super::router`] has an empty one (no `agents.yml`, no job log, last
//! seen in memory). One task per admin API follows the manager's connect and
//! disconnect events (every node's in a cluster) into [`LastSeen`], saves it every
//! [`SAVE_EVERY`] and at shutdown, and purges the job log every
//! `command_log_purge_interval`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redpepper_config::{CachedRegistry, CommandLogConfig, ManagerConfig};
use regex::Regex;
use serde_yaml::Value as Yaml;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::target::{self, Target};
use crate::jobs::{JobLog, LastSeen};
use crate::server::ManagerEvent;
use crate::Manager;

/// How often changed last-seen times are saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);
/// The last-seen file's name, beside the job log.
pub const LAST_SEEN_FILE: &str = "last_seen.json";

/// Where the inventory and the job log live (from the manager's configuration).
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `data_base_dir` (its `agents.yml`).
    pub data_base_dir: PathBuf,
    /// `command_log_*`.
    pub command_log: CommandLogConfig,
}

impl FleetSettings {
    /// The settings of `config`.
    pub fn from_config(config: &ManagerConfig) -> Self {
        Self {
            data_base_dir: config.data_base_dir.clone(),
            command_log: config.command_log.clone(),
        }
    }
}

/// The inventory and the job log.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    registry: Option<CachedRegistry>,
    pub(crate) last_seen: LastSeen,
    pub(crate) jobs: Option<Arc<JobLog>>,
    purge_interval: Duration,
}

impl Fleet {
    /// The fleet of `settings`; what cannot be opened is logged and left out (the
    /// admin API works without it).
    pub(crate) fn open(settings: &FleetSettings) -> Self {
        let agents_file = redpepper_config::agents::agents_file(&settings.data_base_dir);
        let registry = CachedRegistry::open(&agents_file)
            .map_err(|e| tracing::warn!(error = %e, "inventory: agents.yml unreadable; down agents are not listed until it is fixed"))
            .ok();
        let jobs = JobLog::open(&settings.command_log, &settings.data_base_dir)
            .map_err(|e| tracing::warn!(file = %settings.command_log.path(&settings.data_base_dir).display(), error = %e, "job log unavailable: runs are not kept"))
            .ok()
            .map(Arc::new);
        let last_seen = match &jobs {
            Some(j) => LastSeen::load(
                &j.path()
                    .parent()
                    .map_or_else(|| PathBuf::from(LAST_SEEN_FILE), |d| d.join(LAST_SEEN_FILE)),
            ),
            None => LastSeen::default(),
        };
        Self {
            registry,
            last_seen,
            jobs,
            purge_interval: settings.command_log.purge_interval,
        }
    }

    /// Every agent id of `agents.yml`, sorted.
    pub(crate) fn known(&self) -> Vec<String> {
        let Some(r) = &self.registry else {
            return Vec::new();
        };
        let mut ids: Vec<String> = r.get().ids().map(str::to_owned).collect();
        ids.sort();
        ids
    }

    /// The agents `target` selects, `kind` saying how to read it (`glob`: ids, globs
    /// and lists, the default; `regex`; `data`: `KEY=VALUE[,KEY=VALUE]` against
    /// `agents.yml` `data`), among `connected` and the agents of `agents.yml`.
    pub(crate) fn select(
        &self,
        target: &Target,
        kind: Option<&str>,
        connected: &[String],
    ) -> Result<Vec<String>, ApiError> {
        let all: Vec<String> = connected
            .iter()
            .cloned()
            .chain(self.known())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let text = || match target {
            Target::One(s) => s.clone(),
            Target::Many(v) => v.join(","),
        };
        let chosen: Vec<String> = match kind.unwrap_or("glob") {
            "glob" => return target::select(target, &all),
            "regex" => {
                let text = text();
                let re = Regex::new(&text).map_err(|e| {
                    ApiError::bad_request(format!("target: bad regular expression `{text}`: {e}"))
                })?;
                all.into_iter().filter(|id| re.is_match(id)).collect()
            }
            "data" => {
                let pairs = data_pairs(&text())?;
                let Some(registry) = &self.registry else {
                    return Err(no_match(&text()));
                };
                let registry = registry.get();
                all.into_iter()
                    .filter(|id| {
                        registry
                            .get(id)
                            .is_some_and(|e| pairs.iter().all(|(k, v)| data_matches(&e.data, k, v)))
                    })
                    .collect()
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "match: expected glob, regex or data, found `{other}`"
                )))
            }
        };
        if chosen.is_empty() {
            return Err(no_match(&text()));
        }
        Ok(chosen)
    }

    /// Follow `manager`'s events into [`LastSeen`] until `shutdown`; save it
    /// periodically; purge the job log.
    pub(crate) fn spawn_watch(self: &Arc<Self>, manager: &Manager, shutdown: CancellationToken) {
        let fleet = self.clone();
        let mut events = manager.events();
        for a in manager.agents() {
            fleet.last_seen.mark(&a.id, SystemTime::now());
        }
        tokio::spawn(async move {
            let mut save = tokio::time::interval(SAVE_EVERY);
            save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let purge_every = if fleet.purge_interval.is_zero() {
                Duration::from_secs(86_400 * 365)
            } else {
                fleet.purge_interval
            };
            let mut purge = tokio::time::interval(purge_every);
            purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = save.tick() => fleet.save().await,
                    _ = purge.tick(), if !fleet.purge_interval.is_zero() => {
                        if let Some(jobs) = fleet.jobs.clone() {
                            let removed = tokio::task::spawn_blocking(move || jobs.purge()).await.unwrap_or(0);
                            if removed > 0 {
                                tracing::info!(files = removed, "job log: removed rotated files past command_log_max_age");
                            }
                        }
                    }
                    event = events.recv() => match event {
                        Ok(event) => fleet.seen(&event),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                }
            }
            fleet.save().await;
        });
    }

    fn seen(&self, event: &ManagerEvent) {
        match event {
            ManagerEvent::Connected { agent, .. } | ManagerEvent::Disconnected { agent, .. } => {
                self.last_seen.mark(agent, SystemTime::now());
            }
            ManagerEvent::Remote { event, .. } => self.seen(event),
            _ => {}
        }
    }

    async fn save(self: &Arc<Self>) {
        let fleet = self.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || fleet.last_seen.save()).await {
            tracing::warn!(error = %e, "cannot save the last-seen file");
        }
    }
}

fn no_match(text: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_match",
        format!("no agent matches `{text}`"),
    )
}

/// `role=web,env=prod` as pairs.
fn data_pairs(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("target: expected KEY=VALUE, found `{p}`"))
                })
        })
        .collect::<Result<_, _>>()?;
    if pairs.is_empty() {
        return Err(ApiError::bad_request("target: expected KEY=VALUE"));
    }
    Ok(pairs)
}

/// Whether `data`'s `key` (dotted for nested maps) is `want` (a glob), or is a list
/// holding it. Scalars compare as their YAML text (`1`, `true`, `web`).
fn data_matches(data: &Yaml, key: &str, want: &str) -> bool {
    let mut v = data;
    for part in key.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return false,
        }
    }
    let pattern = glob::Pattern::new(want).ok();
    let one = |v: &Yaml| {
        let text = match v {
            Yaml::String(s) => s.clone(),
            Yaml::Bool(b) => b.to_string(),
            Yaml::Number(n) => n.to_string(),
            _ => return false,
        };
        text == want || pattern.as_ref().is_some_and(|p| p.matches(&text))
    };
    match v {
        Yaml::Sequence(items) => items.iter().any(one),
        other => one(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn data_and_regex_select_from_agents_yml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("agents.yml"),
            "web-1: {data: {role: web, env: {tier: prod}}}\nweb-22: {data: {role: [web, db]}}\n\
             db-1: {data: {role: db}}\nweb-x: {}\n",
        )
        .unwrap();
        let fleet = Fleet::open(&FleetSettings {
            data_base_dir: dir.path().to_owned(),
            command_log: CommandLogConfig::default(),
        });
        let sel =
            |t: &str, k: &str| fleet.select(&Target::One(t.into()), Some(k), &["other".into()]);
        assert_eq!(sel("role=web", "data").unwrap(), ["web-1", "web-22"]);
        assert_eq!(
            sel("role=db,env.tier=prod", "data").unwrap_err().code,
            "no_match"
        );
        assert_eq!(sel("env.tier=pr*", "data").unwrap(), ["web-1"]);
        assert_eq!(sel(r"^web-\d+$", "regex").unwrap(), ["web-1", "web-22"]);
        assert_eq!(sel("^oth", "regex").unwrap(), ["other"]);
        assert_eq!(sel("(", "regex").unwrap_err().code, "bad_request");
        assert_eq!(sel("role", "data").unwrap_err().code, "bad_request");
        // Globs match agents.yml too: the down ones are selected (and fail).
        assert_eq!(sel("db*", "glob").unwrap(), ["db-1"]);
        assert_eq!(sel("x", "nope").unwrap_err().code, "bad_request");
    }
}
