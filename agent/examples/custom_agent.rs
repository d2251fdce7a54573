//! A minimal custom agent: connect to a manager over the transport its configuration
//! names, serve one method of our own next to RedPepper's `command` and `echo`, and
//! report the uptime to the manager as a notification.
//!
//! ```text
//! cargo run -p redpepper-agent --example custom_agent -- /etc/redpepper/agent.yml
//! ```

use std::sync::Arc;

use redpepper_agent::{operations, Agent};
use redpepper_config::{AgentConfig, ConfigFile};
use redpepper_core::{HandlerError, Value};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "agent.yml".into());
    let config = AgentConfig::load(Some(path.as_ref()), &[])?;
    let dialer = redpepper_transports::dialer(&config)?;

    // RedPepper's own methods plus one of ours.
    let handler = operations::router().method("disk_free", |ctx| async move {
        let path = ctx
            .kwarg("path")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_owned();
        let out = tokio::process::Command::new("df")
            .arg("-h")
            .arg(&path)
            .output()
            .await
            .map_err(|e| HandlerError::Failed(format!("df {path}: {e}")))?;
        Ok(Value::from(
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    });

    let agent = Agent::with_dialer(config, dialer, Arc::new(handler));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    agent
        .run(shutdown, |session| {
            let session = session.clone();
            tokio::spawn(async move {
                let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
                let _ = session.notify("uptime", Value::from(uptime.trim())).await;
            });
        })
        .await?;
    Ok(())
}
