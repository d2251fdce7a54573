//! `redpepper-ctl`: the command-line client of the RedPepper manager's admin API
//! (`docs/ADMIN.md`).
//!
//! ```text
//! redpepper-ctl agents [--connected] [--node NAME] [TARGET]
//! redpepper-ctl agents add ID [--allowed-ips CIDR] [-d KEY=VALUE] [--write]
//! redpepper-ctl cluster [--json]
//! redpepper-ctl call TARGET METHOD [ARG...] [-k KEY=VALUE...] [--timeout S] [--json]
//! redpepper-ctl run TARGET OPERATION [ARG...] [-k KEY=VALUE...] [--timeout S] [--json]
//! redpepper-ctl run TARGET state [NAME] [--timeout S] [--json]
//! redpepper-ctl run -L KEY=VALUE | -E REGEX ... [--batch N|N%]
//! redpepper-ctl jobs [--limit N] | job RUN_ID
//! redpepper-ctl runs [--json]
//! redpepper-ctl cancel RUN_ID [--json]
//! redpepper-ctl notify AGENT TYPE [DATA]
//! redpepper-ctl watch [--json] [--agent GLOB] [--types T,T] [--node NAME]
//! redpepper-ctl status | metrics
//! redpepper-ctl disconnect AGENT [--json]
//! ```
//!
//! Every command takes `--out text|json|yaml|table` (`--json` is `--out json`) and
//! `-v`.
//!
//! The manager is `--manager URL`, else `$REDPEPPER_MANAGER`, else `admin_bind` of the
//! manager configuration file (`--config-file`, default `/etc/redpepper/manager.yml`).
//! The token is read from `--token-file` (`$REDPEPPER_ADMIN_TOKEN_FILE`), else taken
//! from `$REDPEPPER_ADMIN_TOKEN`, else from the configuration's `admin_token_file`.
//!
//! Exit status: 0 when everything (every agent) succeeded, 1 when some agent failed,
//! 2 for usage, connection and authentication errors.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap).
//! - [`connect`]: finding the manager, the token and the TLS trust roots.
//! - [`client`]: [`client::AdminClient`], JSON requests and line streams over reqwest
//!   (rustls with the ring provider).
//! - [`values`]: `-k KEY=VALUE` parsing (YAML scalars and JSON).
//! - [`commands`]: `agents`, `call`, `notify`, `status`, `metrics`.
//! - [`cluster`]: `cluster`, the manager cluster's nodes.
//! - [`run`]: `run`, with per-agent progress bars on a terminal; Ctrl-C cancels.
//! - [`runs`]: `runs` and `cancel`, the runs in progress.
//! - [`watch`]: `watch`, the event stream.
//! - [`disconnect`]: `disconnect`, end an agent's session now.
//! - [`jobs`]: `jobs` and `job RUN_ID`, finished runs from the manager's job log.
//! - [`fleet`]: `agents add`, a new agent's secret and entries.
//! - [`output`]: the `--out` format.
//! - [`table`]: aligned tables and durations.
//! - [`error`]: [`CtlError`] and exit codes.

pub mod cli;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod connect;
pub mod disconnect;
pub mod error;
pub mod fleet;
pub mod jobs;
pub mod output;
pub mod run;
pub mod runs;
pub mod table;
pub mod values;
pub mod watch;

pub use error::CtlError;

use cli::{Cli, Command};

/// Exit status: everything succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit status: some agent failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: usage, connection or authentication error.
pub const EXIT_ERROR: i32 = 2;
/// Exit status: interrupted by a second Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Run one command line; the exit status.
pub async fn main(cli: Cli) -> Result<i32, CtlError> {
    output::set(cli.out.unwrap_or_default());
    let doc = output::structured();
    if let Command::Agents {
        action: Some(cli::AgentsAction::Add(args)),
        ..
    } = &cli.command
    {
        return fleet::add(args, &cli.connection);
    }
    let client = connect::client(&cli.connection)?;
    match cli.command {
        Command::Agents {
            json,
            connected,
            node,
            target,
            ..
        } => {
            let filter = commands::AgentsFilter {
                node: node.as_deref(),
                target: target.as_deref(),
                down: !connected,
            };
            commands::agents(&client, json || doc, filter).await
        }
        Command::Cluster { json } => cluster::cluster(&client, json || doc).await,
        Command::Call(mut args) => {
            args.json |= doc;
            commands::call(&client, &args).await
        }
        Command::Run(mut args) => {
            args.json |= doc;
            run::run(&client, &args, cli.verbose).await
        }
        Command::Runs { json } => runs::list(&client, json || doc).await,
        Command::Cancel { run_id, json } => runs::cancel(&client, &run_id, json || doc).await,
        Command::Jobs { limit } => jobs::list(&client, limit).await,
        Command::Job { run_id } => jobs::show_job(&client, &run_id).await,
        Command::Notify { agent, kind, data } => {
            commands::notify(&client, &agent, &kind, data.as_deref()).await
        }
        Command::Watch(mut args) => {
            args.json |= doc;
            watch::watch(&client, &args).await
        }
        Command::Status => commands::status(&client).await,
        Command::Metrics => commands::metrics(&client).await,
        Command::Disconnect { agent, json } => disconnect::disconnect(&client, &agent, json).await,
    }
}
