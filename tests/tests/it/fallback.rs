//! Agent transport fallback end to end (`transport: [tls, websocket]`,
//! `[tls, amqp]`), with the real `redpepper-manager` / `redpepper-agent` binaries, a
//! relay in front of the manager's TLS port that the test opens and closes
//! (`redpepper_tests::relay`), a real tinyproxy and a private RabbitMQ node:
//!
//! - TLS refused: the agent lands on WebSocket; TLS back: it moves to TLS while calls
//!   through the admin API keep succeeding, and `/v1/agents` shows the new transport;
//! - TLS refused and `HTTPS_PROXY` set: WebSocket through tinyproxy;
//! - the TLS listener going down under a `[tls, amqp]` agent: it comes back over AMQP
//!   (the time from the cut to the new session is printed), then moves back to TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redpepper_tests::fleet::{http, json_after_at, secret_of, Entry, Fleet, ADMIN_TOKEN};
use redpepper_tests::proxy::{Tinyproxy, TinyproxyConfig};
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_tests::relay::Relay;
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{Proc, TIMEOUT};

use crate::support::amqp::{broker_users, password, QUEUE};

/// A manager serving tls and websocket (wss) with the admin API, knowing `agents`
/// ([`crate::websocket::fleet`]).
fn fleet(agents: &[&str]) -> Fleet {
    crate::websocket::fleet(agents, &["tls", "websocket"], "  tls: true\n")
}

/// `[tls, websocket]` YAML: TLS to `tls_port` on localhost, WebSocket to `ws_url`,
/// probes every 0.5 to 1 s.
fn tls_then_ws(tls_port: u16, ws_url: &str) -> String {
    format!(
        "transport: [tls, websocket]\ntransport_probe_interval: 1\nmanager_host: localhost\n\
         manager_port: {tls_port}\nwebsocket:\n  url: {ws_url}\n"
    )
}

/// The agent's next JSON log line with `message` at index `from` or later.
fn agent_says(agent: &Proc, from: usize, message: &str) -> (usize, Value) {
    json_after_at(agent, from, message, |v| v["message"] == message)
}

/// The `transport` the admin API lists for agent `id`.
fn listed_transport(f: &Fleet, id: &str) -> Value {
    let answer = f.manager().get("/v1/agents");
    assert_eq!(answer.status, 200, "{answer:?}");
    let listed = answer.json();
    let agents = listed["agents"].as_array().unwrap();
    agents
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"))["transport"]
        .clone()
}

/// Calls `echo` on agent `id` through the admin API, one after the other, until
/// stopped; counts them and keeps the answers that were not a success.
struct Caller {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Caller {
    fn start(f: &Fleet, id: &str) -> Caller {
        let admin = f.manager().admin();
        let path = format!("/v1/agents/{id}/calls");
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, d, fl) = (stop.clone(), done.clone(), failures.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::SeqCst) {
                n += 1;
                let body = json!({"method": "echo", "args": [n]});
                let a = http(admin, "POST", &path, Some(ADMIN_TOKEN), Some(&body));
                let ok = a.status == 200 && a.json()["success"] == true;
                if !ok {
                    fl.lock().unwrap().push(format!("call {n}: {a:?}"));
                }
                d.fetch_add(1, Ordering::SeqCst);
            }
        });
        Caller {
            stop,
            done,
            failures,
            thread,
        }
    }

    /// Wait until `more` calls have been made since now.
    fn wait_calls(&self, more: usize) {
        let target = self.done.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + TIMEOUT;
        while self.done.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "calls stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop; how many calls were made, and the failures.
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (self.done.load(Ordering::SeqCst), failures)
    }
}

#[test]
fn tls_refused_lands_on_websocket_then_moves_back_to_tls_with_calls_succeeding() {
    let f = fleet(&["a1"]);
    let m = f.manager();
    let relay = Relay::start(m.tls_addr.unwrap());
    relay.refuse(true);
    let yaml = tls_then_ws(relay.addr().port(), &m.ws_url(true));
    let config = f.write_agent_yml("a1", &f.agent_yml("a1", &secret_of("a1"), &yaml));
    let agent = f.spawn_agent_from("a1", &config, &[]);

    // TLS fails (accepted and closed: the TLS handshake breaks), WebSocket answers.
    let (line, peer) = m.connected("a1", 0);
    assert!(peer.starts_with("websocket://"), "{peer}");
    let (skipped, v) = agent_says(
        &agent,
        0,
        "cannot connect over this transport, trying the next",
    );
    assert_eq!(v["transport"], "tls", "{v}");
    assert_eq!(v["next"], "websocket", "{v}");
    let (seen, v) = agent_says(&agent, skipped, "connected to manager");
    assert_eq!(v["transport"], "websocket", "{v}");
    assert_eq!(listed_transport(&f, "a1"), "websocket");
    assert_eq!(relay.relayed(), 0);

    // Calls all along; TLS comes back.
    let caller = Caller::start(&f, "a1");
    caller.wait_calls(20);
    relay.refuse(false);
    let (_, peer) = m.connected("a1", line + 1);
    assert!(peer.starts_with("tls://"), "{peer}");
    let (_, v) = agent_says(&agent, seen + 1, "moved to a better transport");
    assert_eq!(v["transport"], "tls", "{v}");
    assert_eq!(v["from_transport"], "websocket", "{v}");
    caller.wait_calls(20);
    let (calls, failures) = caller.finish();
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {failures:#?}",
        failures.len()
    );
    assert_eq!(listed_transport(&f, "a1"), "tls");
    assert!(relay.relayed() >= 1);
    // The old session ended with the agent's Bye or the manager's replacement.
    let text = m.proc.lines().join("\n");
    assert!(
        text.contains("moving to a better transport")
            || text.contains("replacing its older session"),
        "{text}"
    );
}

#[test]
fn tls_refused_and_https_proxy_set_lands_on_websocket_through_tinyproxy() {
    let f = fleet(&["p1"]);
    let m = f.manager();
    let ws_port = m.ws_addr.unwrap().port();
    let relay = Relay::start(m.tls_addr.unwrap());
    relay.refuse(true);
    let proxy = Tinyproxy::start(&f.path("proxy"), TinyproxyConfig::connect_to(ws_port));
    let yaml = tls_then_ws(relay.addr().port(), &m.ws_url(true));
    let config = f.write_agent_yml("p1", &f.agent_yml("p1", &secret_of("p1"), &yaml));
    let agent = f.spawn_agent_from("p1", &config, &[("HTTPS_PROXY", proxy.url())]);

    let (_, peer) = m.connected("p1", 0);
    assert!(peer.starts_with("websocket://127.0.0.1:"), "{peer}");
    let (_, v) = agent_says(&agent, 0, "connected to manager");
    assert_eq!(v["transport"], "websocket", "{v}");
    let tunnel = format!("CONNECT localhost:{ws_port} HTTP/1.1");
    assert!(proxy.proc().find_line(|l| l.contains(&tunnel)).is_some());
    // The TLS transport does not read HTTPS_PROXY: its attempt went to the relay.
    assert!(proxy
        .proc()
        .find_line(|l| l.contains(&format!(":{}", relay.addr().port())))
        .is_none());
    assert_eq!(listed_transport(&f, "p1"), "websocket");
}

#[test]
fn the_tls_listener_going_down_moves_the_agent_to_amqp_and_back() {
    let node = RabbitNode::shared();
    let vhost = "e2e-fallback";
    node.add_users(vhost, &broker_users(&["f1"]));
    let mut f = Fleet::builder()
        .entry(Entry::pinned("f1"))
        .transports(&["tls", "amqp"])
        .amqp(
            &node.amqp_url("manager", &password("manager"), vhost),
            QUEUE,
        )
        .admin()
        .agent_host("localhost")
        .agent_defaults("ping_interval: 2\n")
        .agent_json_logs()
        .build();
    f.spawn_manager();
    let m = f.manager();
    let relay = Relay::start(m.tls_addr.unwrap());
    let yaml = format!(
        "transport: [tls, amqp]\ntransport_probe_interval: 1\nmanager_host: localhost\n\
         manager_port: {}\namqp:\n  url: {}\n  queue: {QUEUE}\n",
        relay.addr().port(),
        node.amqp_url("f1", &password("f1"), vhost)
    );
    let config = f.write_agent_yml("f1", &f.agent_yml("f1", &secret_of("f1"), &yaml));
    let agent = f.spawn_agent_from("f1", &config, &[]);
    let (line, peer) = m.connected("f1", 0);
    assert!(peer.starts_with("tls://"), "{peer}");
    let (seen, _) = agent_says(&agent, 0, "connected to manager");

    // The TLS listener goes away: connections cut, new ones refused.
    relay.refuse(true);
    let cut_at = Instant::now();
    assert_eq!(relay.cut(), 1);
    let (line, peer) = m.connected("f1", line + 1);
    assert!(peer.starts_with("amqp://"), "{peer}");
    let answer = m.post(
        "/v1/agents/f1/calls",
        &json!({"method": "echo", "args": ["over amqp"]}),
    );
    let back = cut_at.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["success"], true, "{answer:?}");
    eprintln!("fallback tls -> amqp: callable again {back:?} after the cut");
    let (seen, v) = agent_says(&agent, seen + 1, "connected to manager");
    assert_eq!(v["transport"], "amqp", "{v}");
    assert_eq!(listed_transport(&f, "f1"), "amqp");

    // TLS back: the agent moves up again.
    relay.refuse(false);
    let (_, peer) = m.connected("f1", line + 1);
    assert!(peer.starts_with("tls://"), "{peer}");
    let (_, v) = agent_says(&agent, seen + 1, "moved to a better transport");
    assert_eq!(v["from_transport"], "amqp", "{v}");
    assert_eq!(listed_transport(&f, "f1"), "tls");
}
