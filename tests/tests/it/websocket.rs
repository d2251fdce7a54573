//! The WebSocket transport end to end, with the real `redpepper-manager` and
//! `redpepper-agent` binaries and real nginx and tinyproxy instances started privately
//! on loopback ports (installed by `scripts/test`; a missing one fails the test, it is
//! never skipped):
//!
//! - nginx terminating TLS in front of a `tls: false` manager: the agent's own address
//!   reaches `allowed_ips` only when nginx is in `trusted_proxies`; restarting nginx,
//!   the agent comes back by itself;
//! - tinyproxy allowing CONNECT only to the manager's port, without and with Basic
//!   auth (a wrong password and missing credentials are errors naming the proxy and
//!   its status), for WebSocket and for TLS TCP (`proxy` key); restarting it, the
//!   agent comes back;
//! - `NO_PROXY` honoured; a proxy that is down is named and retried until it is up;
//! - one manager serving tls and websocket at once, both agents listed and callable;
//! - switching an agent from tls to websocket by editing its config file only.
//!
//! Loopback addresses only: nginx reaches the manager from 127.0.0.3 (`proxy_bind`),
//! agents connect from 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redpepper_tests::fleet::{
    http, json_after, json_after_at, secret_of, Fleet, ManagerProc, ADMIN_TOKEN,
};
use redpepper_tests::nginx::{Nginx, NginxConfig};
use redpepper_tests::proxy::{Tinyproxy, TinyproxyConfig};
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{free_port, Proc};

/// A started manager serving `transports` (`tls`, `websocket`) with `websocket` as the
/// body of its `websocket:` section and the admin API on, knowing `agents` (allowed
/// from 127.0.0.1 only); agents dial `localhost`, ping every 2 s and log JSON.
pub fn fleet(agents: &[&str], transports: &[&str], websocket: &str) -> Fleet {
    let mut fleet = Fleet::builder()
        .agents(agents)
        .transports(transports)
        .websocket(websocket)
        .admin()
        .agent_host("localhost")
        .agent_defaults("ping_interval: 2\n")
        .agent_json_logs()
        .build();
    fleet.spawn_manager();
    fleet
}

/// Write `agent-ID.yml` for agent `id` with `extra` YAML (transport, websocket…).
fn agent_config(f: &Fleet, id: &str, extra: &str) -> std::path::PathBuf {
    let text = f.agent_yml(id, &secret_of(id), extra);
    f.write_agent_yml(id, &text)
}

/// One admin API request; status and JSON body (never chunked).
fn api(m: &ManagerProc, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let a = http(m.admin(), method, path, Some(ADMIN_TOKEN), body);
    assert!(
        a.header("transfer-encoding").is_none(),
        "chunked answer not expected: {a:?}"
    );
    (a.status, a.json())
}

/// YAML for a websocket agent: `transport: websocket` and the url (and proxy).
fn ws_yaml(url: &str, proxy: Option<&str>) -> String {
    let mut yaml = format!("transport: websocket\nwebsocket:\n  url: {url}\n");
    if let Some(p) = proxy {
        yaml.push_str(&format!("  proxy: {p}\n"));
    }
    yaml
}

/// Wait for the agent's next "connected to manager" at line `from` or later.
fn agent_connected(agent: &Proc, from: usize) -> usize {
    json_after_at(agent, from, "the agent to connect", |v| {
        v["message"] == "connected to manager"
    })
    .0
}

/// Wait for a "cannot connect to manager" whose error contains every one of `parts`;
/// returns the line index and the error.
fn agent_cannot_connect(agent: &Proc, from: usize, parts: &[&str]) -> (usize, String) {
    let what = format!("a connection error mentioning {parts:?}");
    let (i, v) = json_after_at(agent, from, &what, |v| {
        v["message"] == "cannot connect to manager"
            && parts
                .iter()
                .all(|p| v["error"].as_str().is_some_and(|e| e.contains(p)))
    });
    (i, v["error"].as_str().unwrap().to_owned())
}

fn nginx_in_front_of(f: &Fleet) -> Nginx {
    let mut config = NginxConfig::new(&f.certs, f.manager().ws_addr.unwrap());
    config.proxy_bind = Some("127.0.0.3".parse().unwrap());
    Nginx::start(&f.path("nginx"), config)
}

#[test]
fn behind_nginx_a_trusted_proxy_passes_the_agent_address_and_restarts_are_survived() {
    let f = fleet(
        &["a1"],
        &["websocket"],
        "  tls: false\n  trusted_proxies: [127.0.0.3/32]\n",
    );
    let m = f.manager();
    let mut nginx = nginx_in_front_of(&f);
    let config = agent_config(&f, "a1", &ws_yaml(&nginx.url(), None));
    let agent = f.spawn_agent_from("a1", &config, &[]);

    // agents.yml allows 127.0.0.1 only; the manager's TCP peer is nginx (127.0.0.3).
    let (line, peer) = m.connected("a1", 0);
    assert_eq!(
        peer, "websocket://127.0.0.1:0",
        "the address from X-Forwarded-For"
    );
    let seen = agent_connected(&agent, 0);
    let (_, agents) = api(m, "GET", "/v1/agents", None);
    assert_eq!(agents["agents"][0]["transport"], "websocket", "{agents}");
    assert_eq!(
        agents["agents"][0]["remote_addr"], "127.0.0.1:0",
        "{agents}"
    );

    nginx.restart();
    json_after(&agent, seen + 1, "the agent to notice", |v| {
        v["message"] == "disconnected from manager"
    });
    let (_, peer) = m.connected("a1", line + 1);
    assert_eq!(peer, "websocket://127.0.0.1:0");
    agent_connected(&agent, seen + 1);
}

#[test]
fn behind_nginx_an_untrusted_proxy_is_the_peer_and_is_refused() {
    let f = fleet(&["a1"], &["websocket"], "  tls: false\n");
    let m = f.manager();
    let nginx = nginx_in_front_of(&f);
    let config = agent_config(&f, "a1", &ws_yaml(&nginx.url(), None));
    let agent = f.spawn_agent_from("a1", &config, &[]);
    let refused = json_after(&m.proc, 0, "the authentication failure", |v| {
        v["message"] == "authentication failed" && v["agent"] == "a1"
    });
    let peer = refused["peer"].as_str().unwrap();
    assert!(peer.starts_with("websocket://127.0.0.3:"), "{refused}");
    assert!(!peer.ends_with(":0"), "the TCP peer: {refused}");
    json_after(&agent, 0, "the agent to be refused", |v| {
        v["message"] == "manager refused this agent"
    });
    assert!(m
        .proc
        .find_line(|l| l.contains("agent connected"))
        .is_none());
}

#[test]
fn through_tinyproxy_with_and_without_basic_auth() {
    let ids = ["open", "auth", "wrong", "anon", "other_port", "tls_tcp"];
    let f = fleet(&ids, &["tls", "websocket"], "  tls: true\n");
    let m = f.manager();
    let ws_port = m.ws_addr.unwrap().port();
    let tls_port = m.tls_addr.unwrap().port();
    let wss = m.ws_url(true);

    // An open proxy that allows CONNECT to the WebSocket port only.
    let open = Tinyproxy::start(&f.path("open-proxy"), TinyproxyConfig::connect_to(ws_port));
    let config = agent_config(&f, "open", &ws_yaml(&wss, Some(&open.url())));
    let open_agent = f.spawn_agent_from("open", &config, &[]);
    let (_, peer) = m.connected("open", 0);
    assert!(peer.starts_with("websocket://127.0.0.1:"), "{peer}");
    agent_connected(&open_agent, 0);
    let tunnel = format!("CONNECT localhost:{ws_port} HTTP/1.1");
    assert!(open.proc().find_line(|l| l.contains(&tunnel)).is_some());
    // Another port of the same manager is not allowed: 403.
    let url = format!("wss://localhost:{tls_port}/redpepper");
    let config = agent_config(&f, "other_port", &ws_yaml(&url, Some(&open.url())));
    let other = f.spawn_agent_from("other_port", &config, &[]);
    agent_cannot_connect(&other, 0, &[&open.url(), "403"]);

    // With Basic auth.
    let mut auth = Tinyproxy::start(
        &f.path("auth-proxy"),
        TinyproxyConfig::connect_to(ws_port).with_basic_auth("agent", "s3cret"),
    );
    let good = auth.url_with_credentials("agent", "s3cret");
    let config = agent_config(&f, "auth", &ws_yaml(&wss, Some(&good)));
    let auth_agent = f.spawn_agent_from("auth", &config, &[]);
    let (line, _) = m.connected("auth", 0);
    let seen = agent_connected(&auth_agent, 0);

    let bad = auth.url_with_credentials("agent", "wrong");
    let config = agent_config(&f, "wrong", &ws_yaml(&wss, Some(&bad)));
    let wrong = f.spawn_agent_from("wrong", &config, &[]);
    // tinyproxy 1.11 answers 401 to wrong credentials (407 to none at all).
    let (_, error) = agent_cannot_connect(&wrong, 0, &[&auth.url(), "proxy"]);
    assert!(
        error.contains("407 Proxy Authentication Required") || error.contains("401 Unauthorized"),
        "{error}"
    );
    assert!(!error.contains("wrong"), "no password in errors: {error}");
    let config = agent_config(&f, "anon", &ws_yaml(&wss, Some(&auth.url())));
    let anon = f.spawn_agent_from("anon", &config, &[]);
    agent_cannot_connect(
        &anon,
        0,
        &[&auth.url(), "407 Proxy Authentication Required"],
    );

    // The TLS TCP transport through the same kind of proxy (`proxy` key).
    let tls_proxy = Tinyproxy::start(&f.path("tls-proxy"), TinyproxyConfig::connect_to(tls_port));
    let yaml = format!(
        "transport: tls\nmanager_port: {tls_port}\nproxy: {}\n",
        tls_proxy.url()
    );
    let config = agent_config(&f, "tls_tcp", &yaml);
    let tls_agent = f.spawn_agent_from("tls_tcp", &config, &[]);
    let (_, peer) = m.connected("tls_tcp", 0);
    assert!(peer.starts_with("tls://127.0.0.1:"), "{peer}");
    agent_connected(&tls_agent, 0);

    // Restarting the proxy: the agent comes back by itself.
    auth.restart();
    m.connected("auth", line + 1);
    agent_connected(&auth_agent, seen + 1);
}

#[test]
fn no_proxy_is_honoured_and_a_proxy_that_is_down_is_retried_until_up() {
    let f = fleet(&["direct", "waiting"], &["websocket"], "  tls: true\n");
    let m = f.manager();
    let ws_port = m.ws_addr.unwrap().port();
    let dead = free_port();
    let dead_url = format!("http://127.0.0.1:{dead}");

    // HTTPS_PROXY points at nothing, NO_PROXY exempts the manager: direct connection.
    let config = agent_config(&f, "direct", &ws_yaml(&m.ws_url(true), None));
    let env = [
        ("HTTPS_PROXY", dead_url.clone()),
        ("NO_PROXY", "example.org, localhost".to_owned()),
    ];
    let direct = f.spawn_agent_from("direct", &config, &env);
    agent_connected(&direct, 0);
    let (_, peer) = m.connected("direct", 0);
    assert!(!peer.ends_with(":0"), "a direct TCP peer: {peer}");

    // Without NO_PROXY the dead proxy is used: a clear error, retried with backoff.
    let config = agent_config(&f, "waiting", &ws_yaml(&m.ws_url(true), None));
    let waiting = f.spawn_agent_from("waiting", &config, &[("https_proxy", dead_url.clone())]);
    let parts = [dead_url.as_str(), "cannot reach the proxy"];
    let (first, _) = agent_cannot_connect(&waiting, 0, &parts);
    let (second, _) = agent_cannot_connect(&waiting, first + 1, &parts);
    let proxy = Tinyproxy::start(
        &f.path("proxy"),
        TinyproxyConfig::connect_to(ws_port).on_port(dead),
    );
    agent_connected(&waiting, second + 1);
    m.connected("waiting", 0);
    assert!(proxy
        .proc()
        .find_line(|l| l.contains("CONNECT localhost:"))
        .is_some());
}

#[test]
fn one_manager_serves_tls_and_websocket_at_once() {
    let f = fleet(&["t1", "w1"], &["tls", "websocket"], "  tls: true\n");
    let m = f.manager();
    // Over TLS TCP to the manager's port, the fleet's default.
    let _t1 = f.spawn_agent("t1");
    let config = agent_config(&f, "w1", &ws_yaml(&m.ws_url(true), None));
    let _w1 = f.spawn_agent_from("w1", &config, &[]);
    m.connected("t1", 0);
    m.connected("w1", 0);

    let (status, listed) = api(m, "GET", "/v1/agents", None);
    assert_eq!(status, 200, "{listed}");
    let agents = listed["agents"].as_array().unwrap();
    let transport =
        |id: &str| -> Value { agents.iter().find(|a| a["id"] == id).unwrap()["transport"].clone() };
    assert_eq!(agents.len(), 2, "{listed}");
    assert_eq!(transport("t1"), "tls");
    assert_eq!(transport("w1"), "websocket");

    for id in ["t1", "w1"] {
        let body = json!({"method": "echo", "args": [id, 42]});
        let (status, answer) = api(m, "POST", &format!("/v1/agents/{id}/calls"), Some(&body));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["success"], true, "{answer}");
        assert_eq!(answer["data"]["args"], json!([id, 42]), "{answer}");
    }
}

#[test]
fn switching_from_tls_to_websocket_is_a_config_file_edit() {
    let f = fleet(&["a1"], &["tls", "websocket"], "  tls: true\n");
    let m = f.manager();
    // Over TLS TCP to the manager's port, the fleet's default.
    let config = agent_config(&f, "a1", "");
    let agent = f.spawn_agent_from("a1", &config, &[]);
    let (line, peer) = m.connected("a1", 0);
    assert!(peer.starts_with("tls://"), "{peer}");
    agent.kill();

    // The same file, two keys added; the same command line.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}{}", ws_yaml(&m.ws_url(true), None))).unwrap();
    let _agent = f.spawn_agent_from("a1", &config, &[]);
    let (_, peer) = m.connected("a1", line + 1);
    assert!(peer.starts_with("websocket://127.0.0.1:"), "{peer}");
}
