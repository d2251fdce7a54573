//! [`ManagerProc`]: a `redpepper-manager` process started by a [`Fleet`](super::Fleet),
//! with the addresses it logged (JSON lines), and waits on its log.

use std::net::SocketAddr;

use serde_json::Value;

use super::http::{http, Answer};
use super::ADMIN_TOKEN;
use crate::process::Proc;
use crate::TIMEOUT;

/// A running manager and what it bound.
#[derive(Debug)]
pub struct ManagerProc {
    /// The process (logs JSON lines).
    pub proc: Proc,
    /// The TLS TCP listener, when it serves `tls`.
    pub tls_addr: Option<SocketAddr>,
    /// The WebSocket listener, when it serves `websocket`.
    pub ws_addr: Option<SocketAddr>,
    /// The admin API's URL (`http://…` or `https://…`), when it is on.
    pub admin_url: Option<String>,
}

impl ManagerProc {
    /// Wait until `proc` logged a listener for each of `listeners` (`tls`,
    /// `websocket`) and, if `admin`, the admin API.
    pub(super) fn ready(proc: Proc, listeners: &[String], admin: bool) -> ManagerProc {
        let listening = |transport: &str| -> Option<SocketAddr> {
            if !listeners.iter().any(|l| l == transport) {
                return None;
            }
            let line = json_after(&proc, 0, &format!("the {transport} listener"), |v| {
                v["message"] == "listening for agents" && v["transport"] == transport
            });
            Some(addr_of(&line["address"], "address", &line))
        };
        let tls_addr = listening("tls");
        let ws_addr = listening("websocket");
        let admin_url = admin.then(|| {
            let line = json_after(&proc, 0, "the admin API", |v| {
                v["message"] == "admin API listening"
            });
            match line["url"].as_str() {
                Some(url) => url.to_owned(),
                None => panic!("no url in {line}"),
            }
        });
        ManagerProc {
            proc,
            tls_addr,
            ws_addr,
            admin_url,
        }
    }

    /// The admin API's address.
    ///
    /// # Panics
    ///
    /// When the admin API is off.
    pub fn admin(&self) -> SocketAddr {
        let url = self
            .admin_url
            .as_ref()
            .unwrap_or_else(|| panic!("the admin API is off (FleetBuilder::admin)"));
        addr_of(&Value::from(url.as_str()), "admin url", &Value::Null)
    }

    /// `GET path` on the admin API with the token.
    pub fn get(&self, path: &str) -> Answer {
        http(self.admin(), "GET", path, Some(ADMIN_TOKEN), None)
    }

    /// `POST path` with a JSON `body` on the admin API with the token.
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        http(self.admin(), "POST", path, Some(ADMIN_TOKEN), Some(body))
    }

    /// `ws(s)://localhost:PORT/redpepper` of the WebSocket listener.
    ///
    /// # Panics
    ///
    /// When it serves no WebSocket.
    pub fn ws_url(&self, secure: bool) -> String {
        let scheme = if secure { "wss" } else { "ws" };
        let addr = self
            .ws_addr
            .unwrap_or_else(|| panic!("the manager serves no websocket"));
        format!("{scheme}://localhost:{}/redpepper", addr.port())
    }

    /// Wait for "agent connected" for `id` at line `from` or later; the index of the
    /// line and the peer (`websocket://ADDR`, `tls://ADDR`).
    pub fn connected(&self, id: &str, from: usize) -> (usize, String) {
        let (i, v) = json_after_at(&self.proc, from, &format!("{id} to connect"), |v| {
            v["message"] == "agent connected" && v["agent"] == id
        });
        let peer = v["peer"]
            .as_str()
            .unwrap_or_else(|| panic!("no peer in {v}"));
        (i, peer.to_owned())
    }
}

/// `HOST:PORT` out of `scheme://HOST:PORT[/path]` in `value`.
fn addr_of(value: &Value, what: &str, line: &Value) -> SocketAddr {
    value
        .as_str()
        .and_then(|a| a.split("://").nth(1))
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no {what} as scheme://HOST:PORT in {value} ({line})"))
}

/// The JSON log line at index `from` or later that satisfies `pred`.
///
/// # Panics
///
/// When none comes (the message says `what` was awaited and shows the output).
pub fn json_after(proc: &Proc, from: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    json_after_at(proc, from, what, pred).1
}

/// Like [`json_after`], also returning the line's index.
///
/// # Panics
///
/// As [`json_after`].
pub fn json_after_at(
    proc: &Proc,
    from: usize,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> (usize, Value) {
    let (index, line) = proc
        .wait_for_line_after(
            from,
            |l| serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v)),
            TIMEOUT * 2,
        )
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    let value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
    (index, value)
}
