//! Shared by the admin API end-to-end tests: one fleet for the whole test binary (a
//! real `redpepper-manager` with its admin API and real `redpepper-agent` processes,
//! tied to the test process, see [`shared`]), `redpepper-ctl` runs, and Prometheus
//! text parsing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use redpepper_tests::fleet::Fleet;
use redpepper_tests::serde_json::{self, Value};
use redpepper_tests::{bin, Proc, TIMEOUT};

/// The shared fleet's agents: `web-00`…`web-49` and `db-00`, `db-01` (for globs),
/// `idle-00` (no test calls it), `slow-00` (runs that time out) and `cancel-00` (the
/// run cancelled with Ctrl-C: its own agent, so `redpepper-ctl runs` finds that run
/// alone on it).
pub fn shared_ids() -> Vec<String> {
    let mut all = ids("web-", 50);
    all.extend(ids("db-", 2));
    all.extend(["idle-00", "slow-00", "cancel-00"].map(str::to_owned));
    all
}

struct Shared {
    fleet: Fleet,
    _agents: Vec<Proc>,
}

/// The manager and agents every test of `admin` that leaves the connected set as it
/// is shares: started by the first test that asks, connected before it returns. Its
/// processes die with the test process (the fleet is never dropped); tests run in
/// parallel on it, so none of them disconnects an agent.
pub fn shared() -> &'static Fleet {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    &SHARED
        .get_or_init(|| {
            let all = shared_ids();
            let fleet = started(&all, Fleet::builder().tied_to_test_process());
            let agents = all.iter().map(|id| fleet.spawn_agent(id)).collect();
            wait_connected(&fleet, &all);
            Shared {
                fleet,
                _agents: agents,
            }
        })
        .fleet
}

/// A fleet from `builder` knowing `ids`, admin API on, pings every second; its
/// manager started.
pub fn started(ids: &[String], builder: redpepper_tests::fleet::FleetBuilder) -> Fleet {
    let mut fleet = builder.agents(ids).admin().ping_interval(1).build();
    fleet.spawn_manager();
    fleet
}

/// Wait until the manager logged every agent of `ids` as connected.
pub fn wait_connected(fleet: &Fleet, ids: &[String]) {
    for id in ids {
        fleet.manager().connected(id, 0);
    }
}

/// `redpepper-ctl` with `--manager` and `--token-file` of `fleet`, plus `args`.
pub fn ctl_cmd(fleet: &Fleet, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["--manager", admin_url(fleet)])
        .arg("--token-file")
        .arg(fleet.token_file.as_ref().expect("the admin API is on"))
        .args(args)
        .env_remove("REDPEPPER_MANAGER")
        .env_remove("REDPEPPER_ADMIN_TOKEN");
    cmd
}

/// `redpepper-ctl ARGS` on `fleet`, run to its end.
pub fn ctl(fleet: &Fleet, args: &[&str]) -> CtlRun {
    finish(ctl_cmd(fleet, args))
}

/// The admin API's URL of `fleet`'s manager.
pub fn admin_url(fleet: &Fleet) -> &str {
    fleet
        .manager()
        .admin_url
        .as_deref()
        .expect("the admin API is on")
}

/// The result of a finished `redpepper-ctl` run.
pub struct CtlRun {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl CtlRun {
    /// Stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout.join("\n")).unwrap_or_else(|e| panic!("{e}: {self}"))
    }

    /// Each stdout line as a JSON document (`--json` run output: one event a line).
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{self}")))
            .collect()
    }
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

/// `PREFIX00`, `PREFIX01`, … (`n` of them).
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}
