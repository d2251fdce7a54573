//! `redpepper-agent`: flags, configuration, logging, signals, then [`Agent::run`].

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use redpepper_agent::Agent;
use redpepper_config::service::{generate, nofile, notify};
use redpepper_config::{logging, signals, AgentConfig, ConfigFile};
use tokio_util::sync::CancellationToken;

/// jemalloc: with glibc malloc, allocation was the largest cost of ours on the message
/// path (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The RedPepper agent.
#[derive(Debug, Parser)]
#[command(name = "redpepper-agent", version, about = "RedPepper agent")]
struct Cli {
    /// Configuration file (YAML or TOML).
    #[arg(long, value_name = "PATH")]
    config_file: Option<PathBuf>,
    /// Set a configuration value (repeatable), e.g. -c manager_port=7052.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Log level: TRACE, DEBUG, INFO, WARN, ERROR (RUST_LOG wins when set).
    #[arg(short = 'l', long, default_value = "INFO")]
    log_level: String,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(done) = generate::generate_if_asked(Cli::command) {
        return done.context("writing man pages or completions");
    }
    let cli = Cli::parse();
    logging::init(&cli.log_level, cli.log_format == "json")?;
    nofile::raise_and_log(0);
    let config = AgentConfig::load(cli.config_file.as_deref(), &cli.config)
        .context("loading the agent configuration")?;
    let shutdown = CancellationToken::new();
    signals::cancel_on_signals(shutdown.clone())?;
    let agent = Agent::new(config)?;
    // Ready once configured: the agent keeps dialing until the manager answers, which
    // may be never, so readiness does not wait for it (docs/INSTALL.md).
    notify::ready();
    notify::stopping_on(shutdown.clone());
    agent.run(shutdown, |_| {}).await?;
    Ok(())
}
