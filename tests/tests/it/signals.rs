//! Signals to the real programs (`redpepper_config::signals`): SIGHUP reloads the
//! manager (what it reloads: `operate::reload`) and is logged and ignored by the agent,
//! and neither dies of it; SIGTERM then stops the manager with Bye to its agents,
//! SIGINT stops the agent, both exiting 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use redpepper_config::signals::{SIGHUP_IGNORED, SIGHUP_RELOADING};
use redpepper_tests::*;

const SECRET: &str = "s3cret-for-a1";

/// Our program `name` with `--config-file config_file`.
fn program(name: &str, config_file: &Path) -> Proc {
    let mut cmd = bin_command(name);
    cmd.arg("--config-file").arg(config_file);
    Proc::spawn(name, cmd)
}

/// Our manager and our agent programs over TLS, from RedPepper-style files.
fn manager_and_agent() -> (TempDir, Proc, Proc) {
    let dir = scratch_dir();
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let mut manager_config = PyManagerConfig::new(&dir.path().join("manager"), &certs);
    manager_config.write_agents(&[("a1", SECRET, &["127.0.0.1/32"])]);
    manager_config.bind_port = free_port();
    let manager_yml = manager_config.write();
    let manager = program("redpepper-manager", &manager_yml);
    manager
        .wait_for_line(|l| l.contains("listening for agents"), TIMEOUT)
        .unwrap();
    let agent_yml = PyAgentConfig::new(
        &dir.path().join("agent"),
        &certs,
        manager_config.bind_port,
        "a1",
        SECRET,
    )
    .write();
    let agent = program("redpepper-agent", &agent_yml);
    agent
        .wait_for_line(|l| l.contains("connected to manager"), TIMEOUT)
        .unwrap();
    manager
        .wait_for_line(|l| l.contains("agent connected"), TIMEOUT)
        .unwrap();
    (dir, manager, agent)
}

#[test]
fn sighup_reloads_or_is_ignored_then_sigterm_says_bye() {
    let (_dir, manager, agent) = manager_and_agent();

    manager.signal(Signal::SIGHUP).unwrap();
    manager
        .wait_for_line(|l| l.contains(SIGHUP_RELOADING), TIMEOUT)
        .unwrap();
    manager
        .wait_for_line(|l| l.contains("reload done"), TIMEOUT)
        .unwrap();
    agent.signal(Signal::SIGHUP).unwrap();
    agent
        .wait_for_line(|l| l.contains(SIGHUP_IGNORED), TIMEOUT)
        .unwrap();
    // Both still run, and the session between them was not touched.
    assert_eq!(manager.exit_status(), None, "{}", manager.tail(40));
    assert_eq!(agent.exit_status(), None, "{}", agent.tail(40));
    assert!(
        agent
            .find_line(|l| l.contains("disconnected from manager"))
            .is_none(),
        "{}",
        agent.tail(40)
    );

    // SIGTERM: the manager says Bye to its agent and exits 0.
    manager.signal(Signal::SIGTERM).unwrap();
    let line = agent
        .wait_for_line(|l| l.contains("disconnected from manager"), TIMEOUT)
        .unwrap();
    assert!(
        line.contains("peer said bye: server shutting down"),
        "{line}"
    );
    let status = manager.wait_exit(TIMEOUT).unwrap();
    assert!(status.success(), "{status:?}\n{}", manager.tail(40));

    // SIGINT stops the agent (now retrying) cleanly too.
    agent.signal(Signal::SIGINT).unwrap();
    let status = agent.wait_exit(TIMEOUT).unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.tail(40));
}
