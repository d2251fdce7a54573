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
    /// Output format: text, json (the API's JSON; NDJSON lines for `run`), yaml, table.
    #[arg(long, value_enum, global = true, value_name = "FORMAT")]
    pub out: Option<crate::output::Out>,
    /// Past a handful of agents, `run` shows one summary bar and a line per failure;
    /// with -v a line per agent.
    #[arg(short, long, global = true)]
    pub verbose: bool,
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
    /// List the agents: connected ones (in a cluster: every node's; NODE holds the
    /// session) and those of agents.yml connected nowhere, as `down` with when they
    /// were last seen. `agents add ID` makes a new agent's entry.
    #[command(args_conflicts_with_subcommands = true)]
    Agents {
        /// `add`: a new agent.
        #[command(subcommand)]
        action: Option<AgentsAction>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        /// Only connected agents.
        #[arg(long)]
        connected: bool,
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
    /// List finished runs, newest first (the manager's job log).
    Jobs {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one finished run's per-agent results (from the manager's job log).
    Job {
        /// The run's id (or a unique prefix of 6+ characters; `jobs` lists them).
        run_id: String,
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

/// `agents` actions.
#[derive(Debug, Subcommand)]
pub enum AgentsAction {
    /// Make a new agent: generate its secret, print its agents.yml entry and the
    /// agent.yml lines (the secret is shown only here), or append the entry to
    /// agents.yml with --write.
    Add(AddArgs),
}

/// `agents add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new agent's id ([A-Za-z0-9_-]+).
    pub id: String,
    /// Networks it may connect from (CIDR; repeat or comma-separate).
    #[arg(
        long,
        value_name = "CIDR",
        value_delimiter = ',',
        default_value = "0.0.0.0/0"
    )]
    pub allowed_ips: Vec<String>,
    /// `data` of the entry, KEY=VALUE (repeatable), e.g. role=web.
    #[arg(short = 'd', long = "data", value_name = "KEY=VALUE")]
    pub data: Vec<String>,
    /// Append the entry to agents.yml (--agents-file, else data_base_dir of the
    /// manager configuration).
    #[arg(long)]
    pub write: bool,
    /// The agents.yml to write [default: DATA_BASE_DIR/agents.yml].
    #[arg(long, value_name = "PATH")]
    pub agents_file: Option<PathBuf>,
    /// manager_host for the agent.yml lines [default: this host's name].
    #[arg(long, value_name = "HOST")]
    pub manager_host: Option<String>,
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
    /// Agent id, glob (`web*`) or comma-separated list; with -L, KEY=VALUE[,KEY=VALUE]
    /// of agents.yml data; with -E, a regular expression. Agents of agents.yml that
    /// are down are selected too, and fail as `not_connected`.
    pub target: String,
    /// TARGET is KEY=VALUE[,KEY=VALUE] matched against each agent's agents.yml
    /// `data` (dotted keys reach nested maps; values may be globs).
    #[arg(short = 'L', long = "data", conflicts_with = "regex")]
    pub data: bool,
    /// TARGET is a regular expression over agent ids (`^web-\d+$`).
    #[arg(short = 'E', long)]
    pub regex: bool,
    /// Run in waves of N agents, or N% of them (`--batch 10`, `--batch 25%`).
    #[arg(long, value_name = "N|N%")]
    pub batch: Option<String>,
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
