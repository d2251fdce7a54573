//! `redpepper-manager`: flags, configuration, logging, signals, then
//! [`redpepper_manager::run`] (or the demo).

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use redpepper_config::service::{generate, nofile, notify};
use redpepper_config::{logging, signals, ConfigFile, ManagerConfig};
use redpepper_manager::demo::{self, DemoOptions};
use tokio_util::sync::CancellationToken;

/// jemalloc: with glibc malloc, allocation was the largest cost of ours on the message
/// path (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The RedPepper manager.
#[derive(Debug, Parser)]
#[command(name = "redpepper-manager", version, about = "RedPepper manager")]
struct Cli {
    /// Configuration file (YAML or TOML).
    #[arg(long, value_name = "PATH", global = true)]
    config_file: Option<PathBuf>,
    /// Set a configuration value (repeatable), e.g. -c bind_port=7052.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", global = true)]
    config: Vec<String>,
    /// Log level: TRACE, DEBUG, INFO, WARN, ERROR (RUST_LOG wins when set).
    /// Default INFO, and WARN for `demo`.
    #[arg(short = 'l', long, global = true)]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"], global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a manager and agents in this process on loopback and show them working.
    Demo {
        /// Transport to use.
        #[arg(long, default_value = "tls", value_parser = ["tls", "websocket", "amqp"])]
        transport: String,
        /// Number of agents.
        #[arg(long, default_value_t = 3)]
        agents: usize,
        /// Broker URL for `--transport amqp`.
        #[arg(long, value_name = "URL", default_value = demo::DEFAULT_AMQP_URL)]
        amqp_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(done) = generate::generate_if_asked(Cli::command) {
        return done.context("writing man pages or completions");
    }
    let cli = Cli::parse();
    let json = cli.log_format == "json";
    match cli.command {
        Some(Command::Demo {
            transport,
            agents,
            amqp_url,
        }) => {
            logging::init(cli.log_level.as_deref().unwrap_or("WARN"), json)?;
            let ok = demo::run(&DemoOptions {
                transport,
                agents,
                amqp_url,
            })
            .await?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        None => {
            logging::init(cli.log_level.as_deref().unwrap_or("INFO"), json)?;
            nofile::raise_and_log(nofile::MANAGER_MIN);
            let config = ManagerConfig::load(cli.config_file.as_deref(), &cli.config)
                .context("loading the manager configuration")?;
            let shutdown = CancellationToken::new();
            signals::cancel_on_signals(shutdown.clone())?;
            notify::stopping_on(shutdown.clone());
            redpepper_manager::run(&config, shutdown).await?;
            Ok(())
        }
    }
}
