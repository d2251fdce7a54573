//! Shared by the WebSocket end-to-end tests: a real `redpepper-manager` (JSON logs,
//! optional admin API), real `redpepper-agent` processes whose YAML file and proxy
//! environment the test chooses, and waits on their log lines.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use redpepper_tests::serde_json::{self, Value};
use redpepper_tests::{
    bin_command, scratch_dir, write_agents_yml, Proc, TempDir, TestCerts, TIMEOUT,
};

pub const TOKEN: &str = "e2e-websocket-admin-token-3d91";

/// A scratch directory with certificates.
pub struct Setup {
    pub dir: TempDir,
    pub certs: TestCerts,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = scratch_dir();
        let certs = TestCerts::generate(&dir.path().join("certs"));
        Setup { dir, certs }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Start a manager named `name` serving `transports` (`tls`, `websocket`), knowing
    /// `agents` (secret `secret-ID`, allowed from 127.0.0.1 only), with `websocket`
    /// as the YAML body of its `websocket:` section.
    pub fn manager(
        &self,
        name: &str,
        agents: &[&str],
        transports: &[&str],
        websocket: &str,
    ) -> Manager {
        let dir = self.path(name);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let secrets: Vec<String> = agents.iter().map(|a| secret(a)).collect();
        let entries: Vec<(&str, &str, &[&str])> = agents
            .iter()
            .zip(&secrets)
            .map(|(a, s)| (*a, s.as_str(), &["127.0.0.1/32"][..]))
            .collect();
        write_agents_yml(&data.join("agents.yml"), &entries);
        let token_file = dir.join("admin-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.join("manager.yml");
        let text = format!(
            "bind_host: 127.0.0.1\nbind_port: 0\ntls_cert_file: {}\ntls_key_file: {}\n\
             data_base_dir: {}\nadmin_bind: 127.0.0.1:0\nadmin_token_file: {}\n\
             transports: [{}]\nwebsocket:\n  bind: 127.0.0.1:0\n{websocket}",
            self.certs.manager_cert.display(),
            self.certs.manager_key.display(),
            data.display(),
            token_file.display(),
            transports.join(", "),
        );
        std::fs::write(&config, text).unwrap();
        let mut cmd = bin_command("redpepper-manager");
        cmd.arg("--config-file")
            .arg(&config)
            .args(["--log-format", "json"]);
        let proc = Proc::spawn(name, cmd);
        let listening = |transport: &str| -> Option<SocketAddr> {
            if !transports.contains(&transport) {
                return None;
            }
            let line = json_after(&proc, 0, &format!("the {transport} listener"), |v| {
                v["message"] == "listening for agents" && v["transport"] == transport
            });
            let address = line["address"].as_str().unwrap();
            let hostport = address
                .split("://")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            Some(hostport.parse().unwrap())
        };
        let tls_addr = listening("tls");
        let ws_addr = listening("websocket");
        let admin = json_after(&proc, 0, "the admin API", |v| {
            v["message"] == "admin API listening"
        });
        let admin: SocketAddr = admin["url"]
            .as_str()
            .unwrap()
            .rsplit("://")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Manager {
            proc,
            tls_addr,
            ws_addr,
            admin,
        }
    }

    /// Write `agent-ID.yml` for agent `id` with `extra` YAML (transport, websocket…).
    pub fn agent_config(&self, id: &str, extra: &str) -> PathBuf {
        let path = self.path(&format!("agent-{id}.yml"));
        let text = format!(
            "agent_id: {id}\nagent_secret: {}\nmanager_host: localhost\ntls_ca_file: {}\n\
             ping_interval: 2\n{extra}",
            secret(id),
            self.certs.ca_cert.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Start agent `id` from `config` with a clean proxy environment plus `env`.
    pub fn agent(&self, id: &str, config: &Path, env: &[(&str, String)]) -> Proc {
        let mut cmd = bin_command("redpepper-agent");
        cmd.arg("--config-file")
            .arg(config)
            .args(["--log-format", "json"]);
        for var in [
            "https_proxy",
            "HTTPS_PROXY",
            "http_proxy",
            "HTTP_PROXY",
            "no_proxy",
            "NO_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc::spawn(id, cmd)
    }
}

pub fn secret(id: &str) -> String {
    format!("secret-{id}")
}

/// YAML for a websocket agent: `transport: websocket` and the url (and proxy).
pub fn ws_yaml(url: &str, proxy: Option<&str>) -> String {
    let mut yaml = format!("transport: websocket\nwebsocket:\n  url: {url}\n");
    if let Some(p) = proxy {
        yaml.push_str(&format!("  proxy: {p}\n"));
    }
    yaml
}

/// The JSON log line at index `from` or later that satisfies `pred`.
pub fn json_after(proc: &Proc, from: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    json_after_at(proc, from, what, pred).1
}

/// Like [`json_after`], also returning the line's index.
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
    (index, serde_json::from_str(&line).unwrap())
}

/// A running manager and the addresses it bound.
pub struct Manager {
    pub proc: Proc,
    pub tls_addr: Option<SocketAddr>,
    pub ws_addr: Option<SocketAddr>,
    pub admin: SocketAddr,
}

impl Manager {
    /// `ws(s)://localhost:PORT/redpepper` of the WebSocket listener.
    pub fn ws_url(&self, secure: bool) -> String {
        let scheme = if secure { "wss" } else { "ws" };
        format!(
            "{scheme}://localhost:{}/redpepper",
            self.ws_addr.unwrap().port()
        )
    }

    /// Wait for "agent connected" for `id` at line `from` or later; returns the index
    /// of the line and the peer (`websocket://ADDR`, `tls://ADDR`).
    pub fn connected(&self, id: &str, from: usize) -> (usize, String) {
        let (i, v) = json_after_at(&self.proc, from, &format!("{id} to connect"), |v| {
            v["message"] == "agent connected" && v["agent"] == id
        });
        (i, v["peer"].as_str().unwrap().to_owned())
    }

    /// One admin API request (Bearer token, `Connection: close`); status and JSON body.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut s = TcpStream::connect(self.admin).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.admin,
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer: {text}"));
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "chunked answer not expected: {head}"
        );
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, json)
    }
}
