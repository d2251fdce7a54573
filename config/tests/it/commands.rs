//! The `commands:` section of both programs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use redpepper_config::{
    AgentCommandsConfig, AgentConfig, ConfigFile, ManagerCommandsConfig, ManagerConfig,
};

#[test]
fn defaults_and_values() {
    let a = AgentConfig::from_yaml_str("agent_id: a1\n").unwrap();
    assert_eq!(a.commands, AgentCommandsConfig::default());
    assert_eq!(a.commands.outbox, 1000);
    assert_eq!(a.commands.outbox_bytes, 64 * 1024 * 1024);
    assert_eq!(a.commands.output_limit, 262_144);
    let a = AgentConfig::from_yaml_str(
        "commands:\n  outbox: 5\n  outbox_bytes: 4096\n  output_limit: 1000\n",
    )
    .unwrap();
    assert_eq!(
        a.commands,
        AgentCommandsConfig {
            outbox: 5,
            outbox_bytes: 4096,
            output_limit: 1000
        }
    );
    let m = ManagerConfig::from_yaml_str("bind_port: 7051\n").unwrap();
    assert_eq!(m.commands, ManagerCommandsConfig::default());
    assert_eq!(m.commands.grace, Duration::from_secs(300));
    let m = ManagerConfig::from_yaml_str("commands:\n  grace: 2.5\n").unwrap();
    assert_eq!(m.commands.grace, Duration::from_millis(2500));
    let m = ManagerConfig::from_yaml_str("commands:\n  grace: 0\n").unwrap();
    assert_eq!(m.commands.grace, Duration::ZERO);
}

#[test]
fn bad_values_name_the_key() {
    let e = AgentConfig::from_yaml_str("commands:\n  outbox: 0\n").unwrap_err();
    assert!(e.to_string().contains("commands.outbox"), "{e}");
    let e = ManagerConfig::from_yaml_str("commands:\n  grace: 1e19\n").unwrap_err();
    assert!(e.to_string().contains("commands.grace"), "{e}");
    // Each program knows only its own keys.
    let e = ManagerConfig::from_yaml_str("commands:\n  outbox: 3\n").unwrap_err();
    assert!(e.to_string().contains("outbox"), "{e}");
    let e = AgentConfig::from_yaml_str("commands:\n  grace: 3\n").unwrap_err();
    assert!(e.to_string().contains("grace"), "{e}");
}
