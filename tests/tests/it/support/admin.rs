//! Shared by the admin API end-to-end tests: a real `redpepper-manager` with its admin
//! API on, real `redpepper-agent` processes, `redpepper-ctl` runs, and a minimal
//! HTTP/1.1 client (std TCP, `Connection: close`, chunked bodies decoded) so the API
//! is also checked without any of our code on the client side.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use redpepper_tests::serde_json::{self, Value};
use redpepper_tests::{bin, scratch_dir, write_agents_yml, Proc, TempDir, TestCerts, TIMEOUT};

pub const TOKEN: &str = "e2e-admin-token-6f1c2a9b7d";

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over plain TCP.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT * 2)).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        let _ = write!(req, "Authorization: Bearer {t}\r\n");
    }
    if !body.is_empty() {
        let _ = write!(req, "Content-Type: application/json\r\n");
    }
    let _ = write!(req, "Content-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        rest = dechunk(&rest);
    }
    Answer {
        status,
        headers,
        body: String::from_utf8(rest).unwrap(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&data[..eol]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// A manager with the admin API on and agents started from it.
pub struct Cluster {
    pub dir: TempDir,
    pub certs: TestCerts,
    pub manager: Proc,
    pub admin: SocketAddr,
    pub admin_url: String,
    pub agent_port: u16,
    pub token_file: PathBuf,
    pub config_file: PathBuf,
    pub agents: Vec<(String, Proc)>,
}

pub fn secret_of(id: &str) -> String {
    format!("secret-of-{id}")
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Cluster {
    /// Start the manager (admin API on `admin_bind`, e.g. `127.0.0.1:0`) knowing `ids`,
    /// with `extra` YAML appended to its configuration; no agents yet.
    pub fn manager(ids: &[String], admin_bind: &str, extra: &str) -> Cluster {
        let dir = scratch_dir();
        let certs = TestCerts::generate(&dir.path().join("certs"));
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let secrets: Vec<String> = ids.iter().map(|id| secret_of(id)).collect();
        let entries: Vec<(&str, &str, &[&str])> = ids
            .iter()
            .zip(&secrets)
            .map(|(id, s)| (id.as_str(), s.as_str(), &["127.0.0.1/32"][..]))
            .collect();
        write_agents_yml(&data.join("agents.yml"), &entries);
        let token_file = dir.path().join("admin-token");
        write_private(&token_file, &format!("{TOKEN}\n"));
        let config_file = dir.path().join("manager.yml");
        let config = format!(
            "bind_host: 127.0.0.1\nbind_port: 0\ntls_cert_file: {}\ntls_key_file: {}\n\
             data_base_dir: {}\nping_interval: 1\nadmin_bind: {admin_bind}\nadmin_token_file: {}\n{extra}",
            certs.manager_cert.display(),
            certs.manager_key.display(),
            data.display(),
            token_file.display(),
        );
        std::fs::write(&config_file, config).unwrap();
        let mut cmd = Command::new(bin("redpepper-manager"));
        cmd.arg("--config-file")
            .arg(&config_file)
            .args(["--log-format", "json"]);
        let manager = Proc::spawn("manager", cmd);
        let ready = manager
            .wait_for_json(|v| v["message"] == "admin API listening", TIMEOUT)
            .unwrap();
        let admin_url = ready["url"].as_str().unwrap().to_owned();
        let admin: SocketAddr = admin_url.rsplit("://").next().unwrap().parse().unwrap();
        let mut cluster = Cluster {
            dir,
            certs,
            manager,
            admin,
            admin_url,
            agent_port: 0,
            token_file,
            config_file,
            agents: Vec::new(),
        };
        if !cluster.admin_url.starts_with("https") {
            let status = cluster.get("/v1/status").json();
            let tls = status["listening"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["transport"] == "tls")
                .unwrap()["bound"]
                .as_str()
                .unwrap()
                .to_owned();
            cluster.agent_port = tls.rsplit(':').next().unwrap().parse().unwrap();
        }
        cluster
    }

    /// Start a real agent process for `id`.
    pub fn start_agent(&mut self, id: &str) {
        assert_ne!(self.agent_port, 0, "agent port unknown");
        let path = self.dir.path().join(format!("agent-{id}.yml"));
        let config = format!(
            "agent_id: {id}\nagent_secret: {}\nmanager_host: 127.0.0.1\nmanager_port: {}\n\
             tls_ca_file: {}\n",
            secret_of(id),
            self.agent_port,
            self.certs.ca_cert.display()
        );
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(bin("redpepper-agent"));
        cmd.arg("--config-file").arg(&path);
        self.agents.push((id.to_owned(), Proc::spawn(id, cmd)));
    }

    /// Start a real agent process claiming to be `id` with a wrong secret (it is
    /// refused, and keeps retrying at its backoff's cap).
    pub fn start_impostor(&mut self, id: &str) {
        let path = self.dir.path().join(format!("impostor-{id}.yml"));
        let config = format!(
            "agent_id: {id}\nagent_secret: not-the-secret\nmanager_host: 127.0.0.1\n\
             manager_port: {}\ntls_ca_file: {}\n",
            self.agent_port,
            self.certs.ca_cert.display()
        );
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(bin("redpepper-agent"));
        cmd.arg("--config-file").arg(&path);
        self.agents
            .push((format!("impostor-{id}"), Proc::spawn("impostor", cmd)));
    }

    pub fn agent(&self, id: &str) -> &Proc {
        &self.agents.iter().find(|(a, _)| a == id).unwrap().1
    }

    pub fn get(&self, path: &str) -> Answer {
        http(self.admin, "GET", path, Some(TOKEN), None)
    }

    pub fn post(&self, path: &str, body: Value) -> Answer {
        http(self.admin, "POST", path, Some(TOKEN), Some(&body))
    }

    /// Poll `/v1/agents` until exactly `ids` are connected.
    pub fn wait_agents(&self, ids: &[String]) {
        let deadline = Instant::now() + TIMEOUT * 2;
        let mut want: Vec<String> = ids.to_vec();
        want.sort();
        loop {
            let got: Vec<String> = self.get("/v1/agents").json()["agents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agents connected: {got:?}, wanted {want:?}; manager output:\n{}",
                self.manager.tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redpepper-ctl` with `--manager` and `--token-file` set, plus `args`.
    pub fn ctl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("redpepper-ctl"));
        cmd.args(["--manager", &self.admin_url])
            .arg("--token-file")
            .arg(&self.token_file)
            .args(args)
            .env_remove("REDPEPPER_MANAGER")
            .env_remove("REDPEPPER_ADMIN_TOKEN");
        cmd
    }
}

/// The result of a finished `redpepper-ctl` run.
pub struct CtlRun {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl std::fmt::Display for CtlRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }
}

/// Run a command to its end (bounded by [`TIMEOUT`]).
pub fn finish(cmd: Command) -> CtlRun {
    let proc = Proc::spawn("redpepper-ctl", cmd);
    let status = proc.wait_exit(TIMEOUT * 2).unwrap();
    // The exit status can arrive before the reader threads saw the last lines.
    let _ = proc.wait_for_line(|_| false, Duration::from_secs(10));
    let tagged = proc.tagged_lines();
    let pick = |s| {
        tagged
            .iter()
            .filter(|l| l.stream == s)
            .map(|l| l.text.clone())
            .collect()
    };
    CtlRun {
        code: status.code().unwrap_or(-1),
        stdout: pick(redpepper_tests::Stream::Stdout),
        stderr: pick(redpepper_tests::Stream::Stderr),
    }
}

/// Parse Prometheus text: `(name, labels, value)` per sample; panics on a bad line.
pub fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.split_whitespace().nth(1).unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "bad TYPE line: {line}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad sample value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                l.strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels: {line}")),
            ),
            None => (series, ""),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        out.push((name.to_owned(), labels.to_owned(), value));
    }
    out
}

/// The value of one sample.
pub fn sample(samples: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
        .2
}

pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}
