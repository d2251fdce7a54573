//! A minimal custom manager: serve agents with the configured transports, and call
//! `echo` plus RedPepper's `echo.Echo` operation on every agent that connects.
//!
//! ```text
//! cargo run -p redpepper-manager --example custom_manager -- /etc/redpepper/manager.yml
//! ```

use std::time::Duration;

use redpepper_config::{ConfigFile, ManagerConfig};
use redpepper_core::Value;
use redpepper_manager::{Manager, ManagerEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "manager.yml".into());
    let config = ManagerConfig::load(Some(path.as_ref()), &[])?;
    let manager = Manager::start(&config).await?;
    let mut events = manager.events();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(ManagerEvent::Connected { agent, peer }) => {
                    let manager = manager.clone();
                    tokio::spawn(async move {
                        let hello = manager
                            .call(&agent, "echo", vec![Value::from("hello")], vec![], Duration::from_secs(10))
                            .await;
                        println!("{agent} ({peer}) answered echo: {hello:?}");
                        let run = manager
                            .run_command(&agent, "echo.Echo", vec![], vec![("message".into(), Value::from("hi"))])
                            .await;
                        match run {
                            Ok(run) => {
                                let result = run.wait(Duration::from_secs(60), |c, t, m| println!("{agent}: {c}/{t} {m}")).await;
                                println!("{agent}: {result:?}");
                            }
                            Err(e) => println!("{agent}: {e}"),
                        }
                    });
                }
                Ok(ManagerEvent::Disconnected { agent, reason }) => println!("{agent} left: {reason}"),
                Ok(_) => {}
                Err(e) => println!("missed events: {e}"),
            },
        }
    }
    manager.shutdown().await;
    Ok(())
}
