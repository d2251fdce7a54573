//! `redpepper-manager`: flags, configuration, logging, signals (SIGHUP reloads), then
//! [`redpepper_manager::run_reloadable`] (or the demo, or `--check-config`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use redpepper_config::service::{generate, nofile, notify};
use redpepper_config::{logging, signals, ConfigFile, ManagerConfig};
use redpepper_manager::demo::{self, DemoOptions};
use redpepper_manager::ReloadOptions;
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
    /// Load and check the configuration and everything it names (certificates and
    /// keys, agents.yml, the admin token), print it with secrets redacted, and exit:
    /// 0 when it is good, 1 naming the file and key when not.
    #[arg(short = 't', long)]
    check_config: bool,
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
            // The report lists ignored keys itself.
            logging::init(cli.log_level.as_deref().unwrap_or("ERROR"), json)?;
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
        None if cli.check_config => {
            logging::init(cli.log_level.as_deref().unwrap_or("WARN"), json)?;
            match redpepper_manager::check::check_config(cli.config_file.as_deref(), &cli.config) {
                Ok(text) => {
                    print!("{text}");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("redpepper-manager: configuration check failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        None => {
            logging::init(cli.log_level.as_deref().unwrap_or("INFO"), json)?;
            nofile::raise_and_log(nofile::MANAGER_MIN);
            let config = ManagerConfig::load(cli.config_file.as_deref(), &cli.config)
                .context("loading the manager configuration")?;
            if let (None, Some(level)) = (&cli.log_level, &config.log_level) {
                logging::set_level(level, "log_level")?;
            }
            let shutdown = CancellationToken::new();
            let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
            signals::on_signals(shutdown.clone(), Some(reload_tx))?;
            notify::stopping_on(shutdown.clone());
            let reload = ReloadOptions {
                config_file: cli.config_file,
                overrides: cli.config,
                level_fixed: cli.log_level.is_some(),
                requests: reload_rx,
            };
            redpepper_manager::run_reloadable(&config, shutdown, Some(reload)).await?;
            Ok(())
        }
    }
}
