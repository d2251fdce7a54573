//! Shared by the AMQP end-to-end tests: a private RabbitMQ node (one per test binary,
//! one vhost per test), broker users with the permissions docs/AMQP.md prescribes, a
//! manager run in-process from the fleet's real `manager.yml` (the library, so the
//! test can call agents and watch events), and real `redpepper-agent` processes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use redpepper_core::TransportKind;
use redpepper_manager::{Manager, ManagerEvent};
use redpepper_tests::fleet::{secret_of, Fleet, FleetBuilder};
use redpepper_tests::rabbitmq::{BrokerUser, Perms, RabbitNode};
use redpepper_tests::{Proc, TIMEOUT};
use tokio::sync::broadcast;

use super::manager::start_in_process;

/// The manager's hello queue.
pub const QUEUE: &str = "redpepper.manager";

/// A broker user's password in these tests.
pub fn password(user: &str) -> String {
    format!("pw-{user}")
}

/// Broker user `manager` (permissions `Perms::manager(QUEUE)`) and one user per id in
/// `agents` (the id is the user, `Perms::agent`), each with its [`password`].
pub fn broker_users(agents: &[&str]) -> Vec<BrokerUser> {
    let mut users = vec![BrokerUser {
        name: "manager".into(),
        password: password("manager"),
        perms: Perms::manager(QUEUE),
    }];
    users.extend(agents.iter().map(|id| BrokerUser {
        name: (*id).into(),
        password: password(id),
        perms: Perms::agent(id),
    }));
    users
}

/// A manager in-process with its fleet, on a vhost of a RabbitMQ node.
pub struct Cluster {
    pub node: &'static RabbitNode,
    pub vhost: String,
    pub fleet: Fleet,
    pub manager: Manager,
    pub events: broadcast::Receiver<ManagerEvent>,
    pub agents: Vec<(String, Proc)>,
}

impl Cluster {
    /// A fleet over AMQP only: `transports: [amqp]`, the manager as broker user
    /// `manager` on `vhost`, pings every second and a 10 s hello timeout on both sides.
    pub fn fleet(node: &RabbitNode, vhost: &str) -> FleetBuilder {
        let url = node.amqp_url("manager", &password("manager"), vhost);
        Fleet::builder()
            .no_tls()
            .transports(&["amqp"])
            .amqp(&url, QUEUE)
            .ping_interval(1)
            .hello_timeout(10)
            .agent_defaults("ping_interval: 1\nhello_timeout: 10\ntransport: amqp\n")
    }

    /// Broker users `manager` and one per id in `agents` ([`broker_users`]), then the
    /// fleet from `builder` and its manager in this process.
    pub async fn start(
        node: &'static RabbitNode,
        vhost: &str,
        agents: &[&str],
        builder: FleetBuilder,
    ) -> Cluster {
        let users = broker_users(agents);
        let vhost_owned = vhost.to_owned();
        tokio::task::spawn_blocking(move || node.add_users(&vhost_owned, &users))
            .await
            .unwrap();
        let fleet = builder.build();
        let manager = start_in_process(&fleet.manager_yml).await;
        let events = manager.events();
        Cluster {
            node,
            vhost: vhost.into(),
            fleet,
            manager,
            events,
            agents: Vec::new(),
        }
    }

    /// `agent.yml` for agent `id` over AMQP as broker user `user`, plus `extra` YAML.
    pub fn agent_yaml(&self, id: &str, user: &str, agent_secret: &str, extra: &str) -> String {
        let url = self.node.amqp_url(user, &password(user), &self.vhost);
        let amqp = format!("amqp:\n  url: {url}\n  queue: {QUEUE}\n{extra}");
        self.fleet.agent_yml(id, agent_secret, &amqp)
    }

    /// Start a `redpepper-agent` process with this configuration.
    pub fn spawn_agent(&mut self, id: &str, yaml: &str) {
        let path = self.fleet.write_agent_yml(id, yaml);
        let proc = self.fleet.spawn_agent_from(id, &path, &[]);
        self.agents.push((id.to_owned(), proc));
    }

    /// Start agent `id` as broker user `id` with its right secret.
    pub fn start_agent(&mut self, id: &str) {
        let yaml = self.agent_yaml(id, id, &secret_of(id), "");
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
