//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Operate a running RedPepper manager through its admin API.
#[derive(Debug, Parser)]
#[command(name = "redpepper-ctl", version, about, propagate_version = true)]
pub struct Cli {
    /// Where the manager is and how to authenticate.
    #[command(flatten)]
    pub connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Finding the manager.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Admin API URL, e.g. http://127.0.0.1:7050 [default: admin_bind of the manager
    /// configuration].
    #[arg(long, env = "REDPEPPER_MANAGER", value_name = "URL", global = true)]
    pub manager: Option<String>,
    /// File holding the admin token.
    #[arg(
        long,
        env = "REDPEPPER_ADMIN_TOKEN_FILE",
        value_name = "PATH",
        global = true
    )]
    pub token_file: Option<PathBuf>,
    /// Manager configuration file to read admin_bind, admin_token_file and
    /// admin_tls_cert_file from [default: /etc/redpepper/manager.yml if it exists].
    #[arg(long, value_name = "PATH", global = true)]
    pub config_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust for an https:// manager (in addition to
    /// the system's).
    #[arg(
        long,
        env = "REDPEPPER_ADMIN_CA_FILE",
        value_name = "PATH",
        global = true
    )]
    pub ca_file: Option<PathBuf>,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List connected agents (in a cluster: every node's; NODE holds the session).
    Agents {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        /// Only agents on this cluster node.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Only agents matching this id, glob or comma-separated list.
        target: Option<String>,
    },
    /// List the manager cluster's nodes.
    ///
    /// One line per node as the manager asked sees it: state (local: that manager,
    /// alive, dead), agents connected to it, how long ago its last heartbeat came,
    /// version. A lone manager lists itself.
    Cluster {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call a method on an agent (or on every agent a glob or list selects).
    Call(CallArgs),
    /// Run a RedPepper operation (e.g. echo.Echo, command.Run) or a state (`state
    /// [NAME]`) and wait for results. Ctrl-C cancels the run (a second Ctrl-C exits
    /// at once).
    Run(RunArgs),
    /// List the runs in progress.
    Runs {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run in progress: its agents still running the command are told to stop.
    Cancel {
        /// The run's id (`redpepper-ctl runs` lists them).
        run_id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a notification to an agent.
    Notify {
        /// Agent id.
        agent: String,
        /// Notification type.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Data: JSON or a YAML scalar [default: null].
        data: Option<String>,
    },
    /// Follow the manager's events, one line each.
    Watch(WatchArgs),
    /// Show the manager's version, node name, uptime and listeners.
    Status,
    /// Print the Prometheus metrics.
    Metrics,
    // Operations (helper "operate").
    /// Disconnect an agent now (Bye "disconnected by an operator"). It may reconnect
    /// at once while agents.yml admits it: remove its entry and reload (SIGHUP) to
    /// keep it out.
    Disconnect {
        /// Agent id.
        agent: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Agent id, glob (`web*`) or comma-separated list.
    pub target: String,
    /// Method name.
    pub method: String,
    /// Positional arguments (strings).
    pub args: Vec<String>,
    /// Keyword argument; the value is JSON or a YAML scalar (42, true, [a, b]).
    #[arg(short = 'k', long = "kwarg", value_name = "KEY=VALUE")]
    pub kwargs: Vec<String>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Agent id, glob (`web*`) or comma-separated list.
    pub target: String,
    /// Operation, `module.Class` (echo.Echo, command.Run, noop.Noop), or `state`.
    pub operation: String,
    /// Positional arguments (strings); for `state`, the state's name (none: the
    /// default state).
    pub args: Vec<String>,
    /// Keyword argument; the value is JSON or a YAML scalar (42, true, [a, b]).
    #[arg(short = 'k', long = "kwarg", value_name = "KEY=VALUE")]
    pub kwargs: Vec<String>,
    /// Seconds the run may take: the manager waits this long for every agent's result,
    /// then tells agents still running the command to stop.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Print the API's NDJSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Print each event's JSON.
    #[arg(long)]
    pub json: bool,
    /// Only events of agents matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub agent: Option<String>,
    /// Only these event types (comma-separated).
    #[arg(long, value_name = "TYPES")]
    pub types: Option<String>,
    /// Only events of this cluster node.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
}
