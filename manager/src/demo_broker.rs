//! A private RabbitMQ node for `demo --transport amqp` when no broker answers: started
//! from the installed `rabbitmq-server` on free loopback ports, with its own `epmd`,
//! Erlang cookie and directories in a temporary directory, stopped (and the directory
//! removed) when the demo ends. `guest` may log in from loopback, as on any fresh node.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::ManagerError;

/// Where Debian installs RabbitMQ's scripts (`rabbitmq-server`, `rabbitmqctl`).
const DEBIAN_SCRIPTS: &str = "/usr/lib/rabbitmq/bin";
/// How long a node may take to say "Server startup complete".
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `rabbitmqctl stop` may take before the node is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private node; [`PrivateBroker::stop`] stops it.
pub struct PrivateBroker {
    dir: tempfile::TempDir,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    name: String,
    server: Child,
    epmd: Child,
}

impl std::fmt::Debug for PrivateBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateBroker")
            .field("name", &self.name)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Names the `rabbitmq-server` script to start (its directory also holds
/// `rabbitmqctl`); default: Debian's, else the one on `PATH`.
pub const SERVER_ENV: &str = "REDPEPPER_DEMO_RABBITMQ";

/// `rabbitmq-server` / `rabbitmqctl` / `epmd`: beside [`SERVER_ENV`]'s script when it
/// is set, else Debian's place, else `PATH` (`epmd`: always `PATH`, as Erlang installs it).
fn program(name: &str) -> Option<PathBuf> {
    if let (Some(server), true) = (std::env::var_os(SERVER_ENV), name != "epmd") {
        let server = PathBuf::from(server);
        let path = if name == "rabbitmq-server" {
            server
        } else {
            server.parent()?.join(name)
        };
        return path.is_file().then_some(path);
    }
    let debian = Path::new(DEBIAN_SCRIPTS).join(name);
    if debian.is_file() {
        return Some(debian);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether `rabbitmq-server` (and Erlang's `epmd`) are installed here.
pub fn installed() -> bool {
    program("rabbitmq-server").is_some() && program("epmd").is_some()
}

fn free_port() -> Result<u16, ManagerError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ManagerError::Other(format!("no free loopback port for RabbitMQ: {e}")))
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> ManagerError + '_ {
    move |e| ManagerError::Other(format!("private RabbitMQ node: {what}: {e}"))
}

impl PrivateBroker {
    /// Start a node and wait until it is ready.
    pub async fn start() -> Result<PrivateBroker, ManagerError> {
        let (Some(server), Some(epmd_prog)) = (program("rabbitmq-server"), program("epmd")) else {
            return Err(ManagerError::Other(
                "rabbitmq-server is not installed".to_owned(),
            ));
        };
        let dir = tempfile::Builder::new()
            .prefix("redpepper-demo-rabbitmq-")
            .tempdir()
            .map_err(io("temporary directory"))?;
        let (port, dist_port, epmd_port) = (free_port()?, free_port()?, free_port()?);
        let d = dir.path();
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(d.join(sub)).map_err(io("directories"))?;
        }
        let cookie = d.join("home/.erlang.cookie");
        std::fs::write(&cookie, format!("{:032X}", rand::random::<u128>()))
            .map_err(io("cookie"))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
                .map_err(io("cookie"))?;
        }
        std::fs::write(d.join("enabled_plugins"), "[].\n").map_err(io("plugins file"))?;
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!("listeners.tcp.1 = 127.0.0.1:{port}\n"),
        )
        .map_err(io("rabbitmq.conf"))?;
        let epmd = Command::new(epmd_prog)
            .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(io("epmd"))?;
        let name = format!("redpepper-demo-{port}@localhost");
        let mut cmd = Command::new(server);
        let mut broker = PrivateBroker {
            port,
            dist_port,
            epmd_port,
            name,
            server: Self::env(&mut cmd, d, port, dist_port, epmd_port)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(io("rabbitmq-server"))?,
            epmd,
            dir,
        };
        broker.wait_ready().await?;
        Ok(broker)
    }

    fn env<'a>(
        cmd: &'a mut Command,
        d: &Path,
        port: u16,
        dist_port: u16,
        epmd_port: u16,
    ) -> &'a mut Command {
        cmd.current_dir(d)
            .env("HOME", d.join("home"))
            .env(
                "RABBITMQ_NODENAME",
                format!("redpepper-demo-{port}@localhost"),
            )
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_ENABLED_PLUGINS", "")
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .env_remove("RABBITMQ_ERLANG_COOKIE")
    }

    /// Read the node's output until it says it started (or exits, or the time runs out).
    async fn wait_ready(&mut self) -> Result<(), ManagerError> {
        let Some(out) = self.server.stdout.take() else {
            return Err(ManagerError::Other(
                "private RabbitMQ node: no output to follow".to_owned(),
            ));
        };
        let mut lines = BufReader::new(out).lines();
        let mut last = String::new();
        let started = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Server startup complete") {
                    return true;
                }
                last = line;
            }
            false
        };
        match tokio::time::timeout(START_TIMEOUT, started).await {
            Ok(true) => {
                // Keep draining its output so the node never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(())
            }
            Ok(false) => Err(ManagerError::Other(format!(
                "private RabbitMQ node exited before it started; its last line: {last}"
            ))),
            Err(_) => Err(ManagerError::Other(format!(
                "private RabbitMQ node did not start within {}s",
                START_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The URL of `guest` on the node's default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The node's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stop the node (`rabbitmqctl stop`, then a kill if it does not end in time) and
    /// its `epmd`, and remove its directory.
    pub async fn stop(mut self) {
        let d = self.dir.path().to_path_buf();
        if let Some(ctl) = program("rabbitmqctl") {
            let mut cmd = Command::new(ctl);
            Self::env(&mut cmd, &d, self.port, self.dist_port, self.epmd_port)
                .args(["-n", &self.name, "stop"])
                .arg(d.join("rabbitmq.pid"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            let _ = tokio::time::timeout(STOP_TIMEOUT, cmd.status()).await;
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.server.wait())
            .await
            .is_err()
        {
            let _ = self.server.kill().await;
        }
        let _ = self.epmd.kill().await;
    }
}
