//! `redpepper-agent`: flags, configuration, logging, signals, then [`Agent::run`] (or
//! `--check-config`).

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
    /// Load and check the configuration and everything it names (certificates and
    /// keys, the transport settings), print it with secrets redacted, and exit: 0 when
    /// it is good, 1 naming the file and key when not.
    #[arg(short = 't', long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(done) = generate::generate_if_asked(Cli::command) {
        return done.context("writing man pages or completions");
    }
    let cli = Cli::parse();
    if cli.check_config {
        // The report lists ignored keys itself.
        logging::init("ERROR", cli.log_format == "json")?;
        match check_config(&cli) {
            Ok(text) => {
                print!("{text}");
                return Ok(());
            }
            Err(e) => {
                eprintln!("redpepper-agent: configuration check failed: {e:#}");
                std::process::exit(1);
            }
        }
    }
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

/// `--check-config`: load the configuration and build the transport it names (which
/// reads the certificates, keys and CAs), without connecting.
fn check_config(cli: &Cli) -> anyhow::Result<String> {
    let config = AgentConfig::load(cli.config_file.as_deref(), &cli.config)?;
    let loaded = AgentConfig::load_with_report(cli.config_file.as_deref(), &cli.config)?;
    let mut report = redpepper_config::CheckReport::new();
    redpepper_transports::dialer(&config)?;
    report.ok(
        "transport",
        format!("{}: settings, certificates and keys load", config.transport),
    );
    Ok(report.render("redpepper-agent", &loaded))
}
