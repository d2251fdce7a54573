//! Shared by the AMQP transport tests: a vhost per test on the private RabbitMQ node
//! with the broker users and permissions docs/AMQP.md prescribes, a manager (an
//! `AmqpListener` plus the session layer's accept), agents (`AmqpDialer` plus
//! `Session::connect`), and handlers that record what they see.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redpepper_core::codec::AgentHello;
use redpepper_core::{
    Authenticator, Event, Listener, Notification, PeerInfo, Router, Session, SessionConfig,
    SessionError, Value,
};
use redpepper_tests::rabbitmq::{Perms, RabbitNode};
use redpepper_transports::amqp::{AmqpDialer, AmqpListener, AmqpOptions, BrokerUrl};
use redpepper_transports::tls::client_config;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Generous limit for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(60);
/// The manager's hello queue in every test.
pub const QUEUE: &str = "redpepper.manager";

/// One test's corner of a broker: its own vhost and users.
pub struct Env {
    pub node: &'static RabbitNode,
    pub vhost: String,
}

/// The password of broker user `user` in these tests.
pub fn password(user: &str) -> String {
    format!("pw-{user}")
}

impl Env {
    /// A vhost named `vhost` on `node` with broker users `manager` and one per agent
    /// id (the agent's id is its broker user), permissions as documented.
    pub fn new(node: &'static RabbitNode, vhost: &str, agents: &[&str]) -> Env {
        let mut users = vec![redpepper_tests::rabbitmq::BrokerUser {
            name: "manager".into(),
            password: password("manager"),
            perms: Perms::manager(QUEUE),
        }];
        for id in agents {
            users.push(redpepper_tests::rabbitmq::BrokerUser {
                name: (*id).into(),
                password: password(id),
                perms: Perms::agent(id),
            });
        }
        // rabbitmqctl takes a second or so: keep the runtime's other tasks going.
        tokio::task::block_in_place(|| node.add_users(vhost, &users));
        Env {
            node,
            vhost: vhost.into(),
        }
    }

    pub fn url(&self, user: &str) -> BrokerUrl {
        BrokerUrl::parse(
            "amqp.url",
            &self.node.amqp_url(user, &password(user), &self.vhost),
        )
        .unwrap()
    }

    pub fn tls_url(&self, user: &str) -> BrokerUrl {
        BrokerUrl::parse(
            "amqp.url",
            &self.node.amqps_url(user, &password(user), &self.vhost),
        )
        .unwrap()
    }

    /// A manager on this vhost (plain AMQP).
    pub async fn manager(&self, config: SessionConfig) -> TestManager {
        let listener = AmqpListener::bind(
            self.url("manager"),
            QUEUE,
            None,
            config.max_message_size,
            options(),
        )
        .await
        .unwrap();
        TestManager::serve(listener, config)
    }

    /// A raw lapin publishing channel (confirms on) logged in as broker user `user`:
    /// what a test uses to put hand-made messages into queues.
    pub async fn publisher(&self, user: &str) -> (lapin::Connection, lapin::Channel) {
        let url = self.node.amqp_url(user, &password(user), &self.vhost);
        let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .unwrap();
        (conn, ch)
    }

    /// The dialer of agent `id` (plain AMQP; generous connect timeout: a hundred
    /// agents connecting at once on a busy CI machine take a while).
    pub fn dialer(&self, id: &str) -> AmqpDialer {
        AmqpDialer::new(self.url(id), QUEUE, id, None, 1024 * 1024)
            .unwrap()
            .with_options(options())
    }
}

/// Transport options of the tests: the defaults with a generous connect timeout.
pub fn options() -> AmqpOptions {
    AmqpOptions {
        connect_timeout: WAIT,
        ..AmqpOptions::default()
    }
}

/// Publish `body` to `exchange` with routing key `key`, mandatory, on `ch` (in confirm
/// mode: [`Env::publisher`]), and assert that the broker confirmed it routed to a
/// queue (acked, not returned).
pub async fn publish_routed(
    ch: &lapin::Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: lapin::BasicProperties,
) {
    let mandatory = lapin::options::BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = ch
        .basic_publish(exchange.into(), key.into(), mandatory, body, props)
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(confirm, lapin::Confirmation::Ack(None)),
        "{confirm:?}"
    );
}

/// rustls settings that trust only `ca`.
pub fn trusting(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    client_config(&super::trusting_tls(ca)).unwrap()
}

/// Accepts agents whose secret is "good" and whose broker user is their id.
pub struct TestAuth;

impl Authenticator for TestAuth {
    fn authenticate<'a>(
        &'a self,
        hello: &'a AgentHello,
        peer: &'a PeerInfo,
    ) -> BoxFuture<'a, Result<(), String>> {
        let ok = hello.credentials == "good" && peer.broker_user.as_deref() == Some(&hello.id);
        async move {
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "refused {} as broker user {:?}",
                    hello.id, peer.broker_user
                ))
            }
        }
        .boxed()
    }
}

/// What a handler saw.
#[derive(Debug)]
pub enum Seen {
    Notification(Notification),
    Rtt(Duration),
}

/// `echo` (returns its args), `hang` (never answers), `fail` ("boom"); reports
/// notifications and ping round trips to the returned receiver.
pub fn router() -> (Router, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx2 = tx.clone();
    let router = Router::new()
        .method("echo", |ctx| async move { Ok(Value::Array(ctx.args)) })
        .method("hang", |_ctx| futures::future::pending())
        .method("fail", |_ctx| async move {
            Err(redpepper_core::HandlerError::Failed("boom".into()))
        })
        .on_notification(move |_s, n| {
            let _ = tx.send(Seen::Notification(n));
        })
        .on_event(move |_s, e| {
            if let Event::PingRtt(rtt) = e {
                let _ = tx2.send(Seen::Rtt(*rtt));
            }
        });
    (router, rx)
}

/// Session settings of the tests: no pings unless asked for.
pub fn config() -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::ZERO,
        hello_timeout: Duration::from_secs(10),
        call_timeout: WAIT,
        ..SessionConfig::default()
    }
}

/// A manager: accepts sessions on a listener, hands the results to the test.
pub struct TestManager {
    pub sessions: mpsc::UnboundedReceiver<Result<Session, SessionError>>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub task: JoinHandle<()>,
}

impl TestManager {
    pub fn serve(mut listener: impl Listener, config: SessionConfig) -> TestManager {
        let (tx, sessions) = mpsc::unbounded_channel();
        let (router, seen) = router();
        let router = Arc::new(router);
        let task = tokio::spawn(async move {
            while let Ok(connecting) = listener.accept().await {
                let (tx, router, config) = (tx.clone(), router.clone(), config.clone());
                tokio::spawn(async move {
                    let transport = connecting.await.unwrap();
                    let _ = tx.send(Session::accept(transport, config, &TestAuth, router).await);
                });
            }
        });
        TestManager {
            sessions,
            seen,
            task,
        }
    }

    /// The next session the manager accepted (or failed to).
    pub async fn next(&mut self) -> Result<Session, SessionError> {
        tokio::time::timeout(WAIT, self.sessions.recv())
            .await
            .expect("no session reached the manager in time")
            .expect("the accept loop ended")
    }
}

/// Connect agent `id` with `secret` through `dialer`.
pub async fn agent(
    dialer: &AmqpDialer,
    id: &str,
    secret: &str,
    config: SessionConfig,
) -> (Result<Session, SessionError>, mpsc::UnboundedReceiver<Seen>) {
    let (router, seen) = router();
    let transport = dialer
        .connect()
        .await
        .unwrap_or_else(|e| panic!("agent {id} cannot connect: {e}"));
    let session = Session::connect(transport, id, secret, config, Arc::new(router)).await;
    (session, seen)
}

/// `args` as a list of strings.
pub fn strs(args: &[&str]) -> Vec<Value> {
    args.iter().map(|s| Value::from(*s)).collect()
}

/// Wait for the next notification (skipping ping round trips).
pub async fn next_notification(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Notification {
    loop {
        match tokio::time::timeout(WAIT, seen.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Seen::Notification(n) => return n,
            Seen::Rtt(_) => {}
        }
    }
}

/// Wait for the next ping round trip (skipping notifications).
pub async fn next_rtt(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Duration {
    loop {
        match tokio::time::timeout(WAIT, seen.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Seen::Rtt(rtt) => return rtt,
            Seen::Notification(_) => {}
        }
    }
}
