//! `redpepper-manager demo`: a manager and N agents in one process on loopback.
//!
//! Development certificates are generated on the fly into a temporary directory
//! (printed as such; never use them elsewhere). Each agent runs `echo.Echo` and
//! `command.Run` through RedPepper's `command` request; the progress, the results and
//! the ping round trips are printed, then everything shuts down with Bye.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use redpepper_agent::Agent;
use redpepper_config::{AgentConfig, ConfigFile, ManagerConfig};
use redpepper_core::{TransportKind, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::error::ManagerError;
use crate::server::Manager;

/// How long the demo waits for anything (connections, results).
const WAIT: Duration = Duration::from_secs(30);

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Transport name: `tls`, `websocket` or `amqp`.
    pub transport: String,
    /// Number of agents.
    pub agents: usize,
    /// The broker for `amqp` (manager and agents log in as the URL's user, who must be
    /// allowed to declare queues and publish to the default exchange).
    pub amqp_url: String,
}

/// The broker the amqp demo uses unless told otherwise: a local RabbitMQ's `guest`.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

use redpepper_config::url_user as amqp_user;

/// How long a broker has to accept a TCP connection before the demo says none answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether something accepts TCP connections at the host and port of the broker URL
/// `url` (`Err`: the URL is not an amqp:// URL or its host does not resolve). The
/// demo and the benchmark ask this before using a broker.
pub fn broker_answers(url: &str) -> Result<bool, String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let broker = redpepper_transports::amqp::BrokerUrl::parse("--amqp-url", url)
        .map_err(|e| e.to_string())?;
    let rest = url.trim().split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => p
            .parse::<u16>()
            .map_err(|_| format!("--amqp-url: bad port `{p}`"))?,
        _ if broker.is_tls() => 5671,
        _ => 5672,
    };
    let host = broker.host().trim_start_matches('[').trim_end_matches(']');
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving the broker host {host}: {e}"))?;
    Ok(addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, PROBE_TIMEOUT).is_ok()))
}

/// `Err` at once, saying why and what to do, when no broker answers at `url`.
fn check_broker(url: &str) -> Result<(), ManagerError> {
    let describe = redpepper_transports::amqp::BrokerUrl::parse("--amqp-url", url)
        .map(|b| b.describe().to_owned())
        .unwrap_or_else(|_| "the --amqp-url given".to_owned());
    match broker_answers(url) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ManagerError::Other(format!(
            "no broker answers at {describe}: start RabbitMQ (`apt-get install rabbitmq-server`, \
             then `systemctl start rabbitmq-server`) or point --amqp-url at one"
        ))),
        Err(e) => Err(ManagerError::Other(format!("--amqp-url {describe}: {e}"))),
    }
}

/// A YAML double-quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn other(e: impl std::fmt::Display) -> ManagerError {
    ManagerError::Other(e.to_string())
}

/// Run the demo; `Ok(true)` when every command succeeded.
///
/// Over AMQP with no broker answering at the URL: where `rabbitmq-server` is
/// installed, a private node is started for the demo (and stopped at its end);
/// elsewhere it fails at once saying so.
pub async fn run(opts: &DemoOptions) -> Result<bool, ManagerError> {
    if opts.transport != "amqp" {
        return run_with(opts).await;
    }
    let url = opts.amqp_url.clone();
    let answers = tokio::task::spawn_blocking(move || broker_answers(&url))
        .await
        .map_err(other)?;
    if answers != Ok(false) || !crate::demo_broker::installed() {
        let url = opts.amqp_url.clone();
        tokio::task::spawn_blocking(move || check_broker(&url))
            .await
            .map_err(other)??;
        return run_with(opts).await;
    }
    println!("No broker answers at the --amqp-url: starting a private RabbitMQ node for the demo");
    let broker = crate::demo_broker::PrivateBroker::start().await?;
    println!(
        "Private RabbitMQ node {} at {} (stopped at the end)",
        broker.name(),
        broker.url().replace("guest:guest@", "guest@")
    );
    let opts = DemoOptions {
        amqp_url: broker.url(),
        ..opts.clone()
    };
    let outcome = run_with(&opts).await;
    broker.stop().await;
    println!("Private RabbitMQ node stopped");
    outcome
}

async fn run_with(opts: &DemoOptions) -> Result<bool, ManagerError> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("redpepper-demo-")
        .tempdir()
        .map_err(other)?;
    let certs = redpepper_transports::devcerts::generate(dir.path())?;
    println!(
        "Development certificates (demo only, never use them elsewhere) in {}",
        dir.path().display()
    );
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(other)?;
    let ids: Vec<String> = (1..=opts.agents.max(1))
        .map(|i| format!("demo-agent-{i}"))
        .collect();
    let secrets: Vec<String> = ids
        .iter()
        .map(|_| format!("{:032x}", rand::random::<u128>()))
        .collect();
    // Over AMQP there is no peer address: the agents are pinned to the broker user.
    let broker_user = (opts.transport == "amqp").then(|| amqp_user(&opts.amqp_url));
    write_agents_file(&data, &ids, &secrets, broker_user.as_deref())?;
    let amqp_section = format!("amqp: {{url: {}}}\n", quoted(&opts.amqp_url));

    let manager_yaml = format!(
        "bind_host: 127.0.0.1\nbind_port: 0\ntls_cert_file: {}\ntls_key_file: {}\n\
         tls_verify_mode: none\ndata_base_dir: {}\nping_interval: 1\ntransports: [{}]\n\
         websocket: {{bind: \"127.0.0.1:0\"}}\n{amqp_section}",
        certs.manager_cert.display(),
        certs.manager_key.display(),
        data.display(),
        opts.transport
    );
    let manager_config = ManagerConfig::from_yaml_str(&manager_yaml)?;
    let manager = Manager::start(&manager_config).await?;
    let kind = match opts.transport.as_str() {
        "websocket" => TransportKind::WebSocket,
        "amqp" => TransportKind::Amqp,
        _ => TransportKind::Tls,
    };
    let port = manager.local_addr(kind).map(|a| a.port()).unwrap_or(0);
    println!(
        "Manager listening on {} ({}); starting {} agent(s)",
        manager
            .listening()
            .iter()
            .map(|(_, d, _)| d.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        opts.transport,
        ids.len()
    );

    let stop_agents = CancellationToken::new();
    for (id, secret) in ids.iter().zip(&secrets) {
        let yaml = format!(
            "agent_id: {id}\nagent_secret: {secret}\nmanager_host: localhost\nmanager_port: {port}\n\
             tls_ca_file: {}\nping_interval: 1\ntransport: {}\n{amqp_section}\
             websocket: {{url: \"wss://localhost:{port}/redpepper\"}}\n",
            certs.ca_cert.display(),
            opts.transport
        );
        let agent = Agent::new(AgentConfig::from_yaml_str(&yaml)?).map_err(other)?;
        let token = stop_agents.child_token();
        tokio::spawn(async move {
            if let Err(e) = agent.run(token, |_| {}).await {
                eprintln!("agent stopped: {e}");
            }
        });
    }
    for id in &ids {
        if manager.wait_for_agent(id, WAIT).await.is_none() {
            stop_agents.cancel();
            manager.shutdown().await;
            return Err(ManagerError::NotConnected(id.clone()));
        }
    }
    println!("All {} agent(s) connected\n", ids.len());

    let mut all_ok = true;
    for id in &ids {
        for (op, kwargs) in [
            (
                "echo.Echo",
                vec![(
                    "message".to_owned(),
                    Value::from("Hello from the RedPepper demo"),
                )],
            ),
            (
                "command.Run",
                vec![(
                    "command".to_owned(),
                    Value::from("echo \"$(uname -sr) on $(hostname)\""),
                )],
            ),
        ] {
            let run = manager.run_command(id, op, vec![], kwargs).await?;
            let result = run
                .wait(WAIT, |current, total, message| {
                    println!("[{id}] {op}: progress {current}/{total}: {message}");
                })
                .await?;
            all_ok &= result.success;
            println!(
                "[{id}] {op}: {} (changed: {})\n{}",
                if result.success {
                    "succeeded"
                } else {
                    "FAILED"
                },
                result.changed,
                indent(&result.output)
            );
        }
    }

    // Pings run every second: wait (bounded) until each agent has a measured round trip.
    let deadline = Instant::now() + Duration::from_secs(5);
    while manager.agents().iter().any(|a| a.last_rtt.is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for a in manager.agents() {
        let rtt = a
            .last_rtt
            .map(|d| format!("{:.0} us", d.as_secs_f64() * 1e6))
            .unwrap_or_else(|| "not measured yet".into());
        println!(
            "[{}] ping round trip {rtt} over {} from {}",
            a.id,
            a.transport,
            a.remote_addr.map(|a| a.to_string()).unwrap_or_default()
        );
    }

    stop_agents.cancel();
    manager.shutdown().await;
    println!(
        "\nDemo finished in {:.2}s: {}",
        started.elapsed().as_secs_f64(),
        if all_ok {
            "all commands succeeded"
        } else {
            "some commands FAILED"
        }
    );
    Ok(all_ok)
}

fn indent(text: &str) -> String {
    text.lines().fold(String::new(), |mut out, line| {
        let _ = writeln!(out, "    {line}");
        out
    })
}

fn write_agents_file(
    data: &Path,
    ids: &[String],
    secrets: &[String],
    broker_user: Option<&str>,
) -> Result<(), ManagerError> {
    let mut yaml = String::new();
    for (id, secret) in ids.iter().zip(secrets) {
        let hash = hex::encode(Sha256::digest(secret.as_bytes()));
        let _ = writeln!(
            yaml,
            "{id}:\n  secret_hash: {hash}\n  allowed_ips: [127.0.0.1/32, \"::1/128\"]"
        );
        if let Some(user) = broker_user {
            let _ = writeln!(yaml, "  amqp_user: {}", quoted(user));
        }
    }
    std::fs::write(data.join("agents.yml"), yaml).map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_answering_is_said_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        // Bound then dropped: nothing listens there now.
        let url = format!("amqp://u:secret-pw@127.0.0.1:{port}/%2f");
        assert_eq!(broker_answers(&url), Ok(false));
        let e = check_broker(&url)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("no broker answers at") && e.contains("rabbitmq-server"),
            "{e}"
        );
        assert!(!e.contains("secret-pw"), "{e}");
        assert!(broker_answers("http://x").is_err());
    }

    #[test]
    fn amqp_user_of_a_url() {
        assert_eq!(amqp_user("amqp://bob:pw@host:5672/%2f"), "bob");
        assert_eq!(amqp_user("amqps://alice@host/vh"), "alice");
        assert_eq!(amqp_user("amqp://host:5672"), "guest");
        assert_eq!(amqp_user("amqp://:pw@host"), "guest");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
