//! Shared by the AMQP end-to-end tests: a private RabbitMQ node (one per test binary,
//! one vhost per test), broker users with the permissions docs/AMQP.md prescribes, a
//! manager run in-process from a real `manager.yml` (the library, so the test can call
//! agents and watch events), and real `redpepper-agent` processes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use redpepper_config::{ConfigFile, ManagerConfig};
use redpepper_core::TransportKind;
use redpepper_manager::{Manager, ManagerEvent};
use redpepper_tests::rabbitmq::{BrokerUser, Perms, RabbitNode};
use redpepper_tests::{bin, scratch_dir, sha256_hex, Proc, TempDir, TestCerts, TIMEOUT};
use tokio::sync::broadcast;

/// The manager's hello queue.
pub const QUEUE: &str = "redpepper.manager";

/// A broker user's password in these tests.
pub fn password(user: &str) -> String {
    format!("pw-{user}")
}

/// An agent's secret in these tests.
pub fn secret(id: &str) -> String {
    format!("secret-of-{id}")
}

/// One `agents.yml` entry.
pub struct Entry {
    pub id: String,
    pub allowed_ips: Vec<String>,
    pub amqp_user: Option<String>,
}

impl Entry {
    /// Agent `id`, pinned to broker user `id`, from loopback only (so AMQP relies on
    /// the pin).
    pub fn pinned(id: &str) -> Entry {
        Entry {
            id: id.into(),
            allowed_ips: vec!["127.0.0.1/32".into()],
            amqp_user: Some(id.into()),
        }
    }
}

/// A manager in-process with its scratch directory, on a vhost of a RabbitMQ node.
pub struct Cluster {
    pub node: &'static RabbitNode,
    pub vhost: String,
    pub dir: TempDir,
    pub certs: TestCerts,
    pub manager: Manager,
    pub events: broadcast::Receiver<ManagerEvent>,
    pub agents: Vec<(String, Proc)>,
}

impl Cluster {
    /// Broker users `manager` and one per id in `broker_users` (the id is the user),
    /// `agents.yml` from `entries`, and a manager with `transports: [amqp]` and
    /// `ping_interval: 1` (unless `extra` sets them) plus `extra` YAML.
    pub async fn start(
        node: &'static RabbitNode,
        vhost: &str,
        broker_users: &[&str],
        entries: &[Entry],
        extra: &str,
    ) -> Cluster {
        let url = node.amqp_url("manager", &password("manager"), vhost);
        Self::start_on(node, vhost, broker_users, entries, extra, &url).await
    }

    /// [`Cluster::start`] with the manager's `amqp.url` given.
    pub async fn start_on(
        node: &'static RabbitNode,
        vhost: &str,
        broker_users: &[&str],
        entries: &[Entry],
        extra: &str,
        manager_url: &str,
    ) -> Cluster {
        let mut users = vec![BrokerUser {
            name: "manager".into(),
            password: password("manager"),
            perms: Perms::manager(QUEUE),
        }];
        users.extend(broker_users.iter().map(|id| BrokerUser {
            name: (*id).into(),
            password: password(id),
            perms: Perms::agent(id),
        }));
        let node_for_users = node;
        let vhost_owned = vhost.to_owned();
        tokio::task::spawn_blocking(move || node_for_users.add_users(&vhost_owned, &users))
            .await
            .unwrap();
        let dir = scratch_dir();
        let certs = TestCerts::generate(&dir.path().join("certs"));
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("agents.yml"), agents_yml(entries)).unwrap();
        let transports = if extra.contains("transports:") {
            ""
        } else {
            "transports: [amqp]\n"
        };
        let ping = if extra.contains("ping_interval:") {
            ""
        } else {
            "ping_interval: 1\n"
        };
        let yaml = format!(
            "data_base_dir: {}\n{ping}hello_timeout: 10\n{transports}\
             amqp:\n  url: {manager_url}\n  queue: {QUEUE}\n{extra}",
            data.display(),
        );
        let config = ManagerConfig::from_yaml_str(&yaml).unwrap();
        config.validate().unwrap();
        let manager = Manager::start(&config).await.unwrap();
        let events = manager.events();
        Cluster {
            node,
            vhost: vhost.into(),
            dir,
            certs,
            manager,
            events,
            agents: Vec::new(),
        }
    }

    /// `agent.yml` for agent `id` over AMQP as broker user `user`, plus `extra` YAML.
    pub fn agent_yaml(&self, id: &str, user: &str, agent_secret: &str, extra: &str) -> String {
        format!(
            "agent_id: {id}\nagent_secret: {agent_secret}\nping_interval: 1\nhello_timeout: 10\n\
             transport: amqp\namqp:\n  url: {}\n  queue: {QUEUE}\n{extra}",
            self.node.amqp_url(user, &password(user), &self.vhost)
        )
    }

    /// Start a `redpepper-agent` process with this configuration.
    pub fn spawn_agent(&mut self, id: &str, yaml: &str) {
        let path: PathBuf = self.dir.path().join(format!("agent-{id}.yml"));
        std::fs::write(&path, yaml).unwrap();
        let mut cmd = Command::new(bin("redpepper-agent"));
        cmd.arg("--config-file")
            .arg(&path)
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LOG");
        self.agents.push((id.to_owned(), Proc::spawn(id, cmd)));
    }

    /// Start agent `id` as broker user `id` with its right secret.
    pub fn start_agent(&mut self, id: &str) {
        let yaml = self.agent_yaml(id, id, &secret(id), "");
        self.spawn_agent(id, &yaml);
    }

    pub fn agent(&self, id: &str) -> &Proc {
        &self.agents.iter().find(|(a, _)| a == id).unwrap().1
    }

    /// Wait until every agent of `ids` is connected (manager events).
    pub async fn wait_connected(&self, ids: &[String]) {
        let deadline = Instant::now() + TIMEOUT * 2;
        for id in ids {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.manager.wait_for_agent(id, left).await.is_none() {
                let tail = self
                    .agents
                    .iter()
                    .find(|(a, _)| a == id)
                    .map(|(_, p)| p.tail(20))
                    .unwrap_or_default();
                panic!("agent {id} did not connect; its output:\n{tail}");
            }
        }
    }

    /// The next manager event that satisfies `pred`.
    pub async fn next_event(&mut self, pred: impl Fn(&ManagerEvent) -> bool) -> ManagerEvent {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Ok(e) if pred(&e) => return e,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => panic!("manager gone"),
                }
            }
        };
        tokio::time::timeout(TIMEOUT * 2, wait)
            .await
            .expect("the event did not happen in time")
    }

    /// Wait until every agent of `ids` has disconnected (in any order).
    pub async fn wait_disconnected(&mut self, ids: &[String]) {
        let mut left: Vec<String> = ids.to_vec();
        while !left.is_empty() {
            let e = self
                .next_event(|e| {
                    matches!(e, ManagerEvent::Disconnected { agent, .. } if left.contains(agent))
                })
                .await;
            if let ManagerEvent::Disconnected { agent, .. } = e {
                left.retain(|id| *id != agent);
            }
        }
    }

    /// Wait until the manager has measured a ping round trip to `id`.
    pub async fn wait_ping(&self, id: &str) -> Duration {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let info = self.manager.agents().into_iter().find(|a| a.id == id);
            if let Some(rtt) = info.and_then(|a| a.last_rtt) {
                return rtt;
            }
            assert!(Instant::now() < deadline, "no ping round trip to {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The transport and broker user the manager records for `id`.
    pub fn peer_of(&self, id: &str) -> (TransportKind, Option<String>, bool) {
        let a = self
            .manager
            .agents()
            .into_iter()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("{id} is not connected"));
        (a.transport, a.broker_user, a.remote_addr.is_some())
    }
}

/// `agents.yml` with `amqp_user` where given.
pub fn agents_yml(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(out, "{}:", e.id);
        let _ = writeln!(out, "  secret_hash: {}", sha256_hex(&secret(&e.id)));
        let _ = writeln!(out, "  allowed_ips: [{}]", e.allowed_ips.join(", "));
        if let Some(u) = &e.amqp_user {
            let _ = writeln!(out, "  amqp_user: {u}");
        }
    }
    if out.is_empty() {
        out.push_str("{}\n");
    }
    out
}
