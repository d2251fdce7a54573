//! The manager's `cluster:` section (ours): several managers joined through a RabbitMQ
//! broker into one fleet (docs/CLUSTER.md). Absent: a lone manager, exactly as before.

use std::fmt;
use std::time::Duration;

use figment::Figment;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::{check_url, is_valid_id, redact_url, OneOrMany, Seconds, Str};

/// Shortest heartbeat interval: below it the heartbeats alone load the broker.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
/// Longest heartbeat interval.
const MAX_HEARTBEAT: Duration = Duration::from_secs(60);

/// `cluster:`: how this manager joins its cluster.
#[derive(Clone, PartialEq)]
pub struct ClusterConfig {
    /// `cluster.url`: broker URL(s) (`amqp://` or `amqps://`), one string or a list;
    /// tried in turn. Required.
    pub urls: Vec<String>,
    /// `cluster.name`: prefix of the cluster's exchange and queues, so several clusters
    /// can share a vhost. Default `redpepper`.
    pub name: String,
    /// `cluster.node`: this manager's node name, `[A-Za-z0-9_-]+`, unique in the
    /// cluster. Default: the host name (its characters outside the set become `-`).
    pub node: String,
    /// `cluster.heartbeat`: seconds between this node's heartbeats. Default 1.
    pub heartbeat: Duration,
    /// `cluster.dead_after`: heartbeats a node may miss before the others count it dead
    /// (its agents leave the directory, calls forwarded to it fail). Default 3.
    pub dead_after: u32,
    /// `cluster.manager_users`: broker users whose cluster messages are believed (the
    /// AMQP `user_id`, which RabbitMQ validates). Default: the user of `cluster.url`
    /// only. List every manager's user when managers log in as different users.
    pub manager_users: Vec<String>,
}

impl ClusterConfig {
    /// How long a node may stay silent before the others count it dead.
    pub fn dead_timeout(&self) -> Duration {
        self.heartbeat * self.dead_after
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("ClusterConfig")
            .field("urls", &urls)
            .field("name", &self.name)
            .field("node", &self.node)
            .field("heartbeat", &self.heartbeat)
            .field("dead_after", &self.dead_after)
            .field("manager_users", &self.manager_users)
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCluster {
    url: Option<OneOrMany<Str>>,
    name: Option<Str>,
    node: Option<Str>,
    heartbeat: Option<Seconds>,
    dead_after: Option<u32>,
    manager_users: Option<OneOrMany<Str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTop {
    cluster: Option<RawCluster>,
}

/// The host name as a node name: characters outside `[A-Za-z0-9_-]` become `-`.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "manager".to_owned()
    } else {
        name
    }
}

/// The user name of an `amqp[s]://user:pass@host/vhost` URL (`guest` when absent or
/// empty, as lapin logs in).
pub fn url_user(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => match userinfo.split(':').next().unwrap_or("") {
            "" => "guest".to_owned(),
            user => percent_decode(user),
        },
        None => "guest".to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read `cluster:`; `None` when the section is absent (a lone manager).
pub(crate) fn read(fig: &Figment) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(raw) = fig.extract_lossy::<RawTop>().map_err(from_figment)?.cluster else {
        return Ok(None);
    };
    let urls: Vec<String> = raw.url.map(OneOrMany::strings).unwrap_or_default();
    if urls.is_empty() {
        return Err(invalid(
            fig,
            "cluster.url",
            "a cluster needs the broker: expected an amqp:// or amqps:// URL (or a list)",
        ));
    }
    for url in &urls {
        check_url(url, &["amqp", "amqps"]).map_err(|m| invalid(fig, "cluster.url", m))?;
    }
    let name = match raw.name {
        Some(n) if !is_valid_name(&n.0) => {
            return Err(invalid(
                fig,
                "cluster.name",
                format!("`{}` is not a cluster name: expected [A-Za-z0-9_.-]+", n.0),
            ))
        }
        Some(n) => n.0,
        None => "redpepper".to_owned(),
    };
    let node = match raw.node {
        Some(n) if !is_valid_id(&n.0) => {
            return Err(invalid(
                fig,
                "cluster.node",
                format!("`{}` is not a node name: expected [A-Za-z0-9_-]+", n.0),
            ))
        }
        Some(n) => n.0,
        None => default_node_name(),
    };
    let heartbeat = match raw.heartbeat {
        Some(Seconds(t)) if !(MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&t) => {
            return Err(invalid(
                fig,
                "cluster.heartbeat",
                format!(
                    "expected seconds from {} to {}, found {}",
                    MIN_HEARTBEAT.as_secs_f64(),
                    MAX_HEARTBEAT.as_secs(),
                    t.as_secs_f64()
                ),
            ))
        }
        Some(Seconds(t)) => t,
        None => Duration::from_secs(1),
    };
    let dead_after = match raw.dead_after {
        Some(n) if !(2..=100).contains(&n) => {
            return Err(invalid(
                fig,
                "cluster.dead_after",
                format!("expected a count from 2 to 100, found {n}"),
            ))
        }
        Some(n) => n,
        None => 3,
    };
    let mut manager_users: Vec<String> = raw
        .manager_users
        .map(OneOrMany::strings)
        .unwrap_or_default();
    if manager_users.is_empty() {
        for url in &urls {
            let user = url_user(url);
            if !manager_users.contains(&user) {
                manager_users.push(user);
            }
        }
    }
    Ok(Some(ClusterConfig {
        urls,
        name,
        node,
        heartbeat,
        dead_after,
        manager_users,
    }))
}

fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn url_user_reads_the_login() {
        assert_eq!(url_user("amqps://mgr:pw@host:5671/v"), "mgr");
        assert_eq!(url_user("amqp://red%40pepper:pw@host/v"), "red@pepper");
        assert_eq!(url_user("amqp://host:5672/%2f"), "guest");
    }
}
