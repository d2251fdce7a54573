//! Interoperability with the real RedPepper 0.3.4 (Python, from PyPI) over TLS TCP:
//! a Python agent on our manager, our agent on a Python manager, RedPepper's own
//! configuration files starting our programs unchanged, and a burst of messages from
//! our side reaching a Python peer (one frame per TLS record).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use redpepper_config::ConfigFile;
use redpepper_core::{CallError, TransportKind, Value};
use redpepper_manager::{Manager, ManagerError};
use redpepper_tests::python::HELLO_ACCEPTED;
use redpepper_tests::serde_json::json;
use redpepper_tests::*;

const SECRET: &str = "s3cret-for-a1";

fn setup() -> (TempDir, TestCerts, PyManagerConfig) {
    let dir = scratch_dir();
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let config = PyManagerConfig::new(&dir.path().join("manager"), &certs);
    config.write_agents(&[("a1", SECRET, &["127.0.0.1/32"])]);
    (dir, certs, config)
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Our manager program started with a manager.yml written for RedPepper 0.3.4
/// (api_* keys, command_log_file, ...): a Python agent authenticates, a wrong secret
/// gets Bye, and SIGTERM says Bye "server shutting down".
#[test]
fn python_agent_on_our_manager_program() {
    let (dir, certs, mut config) = setup();
    config.bind_port = free_port();
    let manager_yml = config.write();
    let manager = Proc::spawn("our-manager", {
        let mut c = bin_command("redpepper-manager");
        c.arg("--config-file")
            .arg(&manager_yml)
            .args(["-l", "DEBUG"]);
        c
    });
    // RedPepper keys we do not implement are accepted with a warning, not refused.
    manager
        .wait_for_line(|l| l.contains("api_session_secret_key"), TIMEOUT)
        .unwrap();
    manager
        .wait_for_line(|l| l.contains("listening for agents"), TIMEOUT)
        .unwrap();

    let agent = PyAgent::start(&PyAgentConfig::new(
        &dir.path().join("agent"),
        &certs,
        config.bind_port,
        "a1",
        SECRET,
    ));
    let hello = agent.wait_connected(TIMEOUT).unwrap();
    assert!(
        hello.contains(&format!("{HELLO_ACCEPTED} {}", redpepper_core::VERSION)),
        "{hello}"
    );
    manager
        .wait_for_line(
            |l| l.contains("agent connected") && l.contains("a1"),
            TIMEOUT,
        )
        .unwrap();

    let intruder = PyAgent::start(&PyAgentConfig::new(
        &dir.path().join("intruder"),
        &certs,
        config.bind_port,
        "a1",
        "wrong",
    ));
    intruder
        .wait_for_line(|l| l.contains("authentication failed"), TIMEOUT)
        .unwrap();
    manager
        .wait_for_line(
            |l| l.contains("authentication failed") && l.contains("a1"),
            TIMEOUT,
        )
        .unwrap();
    // The valid agent is untouched by the failed attempt.
    assert!(manager.find_line(|l| l.contains("replaced")).is_none());

    manager.signal(Signal::SIGTERM).unwrap();
    agent
        .wait_for_line(
            |l| l.contains("Received BYE message: server shutting down"),
            TIMEOUT,
        )
        .unwrap();
    let status = manager.wait_exit(TIMEOUT).unwrap();
    assert!(
        status.success(),
        "manager exit status {status:?}\n{}",
        manager.tail(40)
    );
}

/// Our manager (library, loaded from the same RedPepper manager.yml) runs
/// `noop.Noop` and `echo.Echo` on a Python agent and gets its command_result; a
/// burst of 200 concurrent requests all come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_manager_runs_operations_on_python_agent() {
    let (dir, certs, config) = setup();
    let manager_yml = config.write();
    let cfg = redpepper_config::ManagerConfig::load(Some(&manager_yml), &[]).unwrap();
    let manager = Manager::start(&cfg).await.unwrap();
    let port = manager.local_addr(TransportKind::Tls).unwrap().port();
    let agent = PyAgent::start(&PyAgentConfig::new(
        &dir.path().join("agent"),
        &certs,
        port,
        "a1",
        SECRET,
    ));
    blocking(|| agent.wait_connected(TIMEOUT)).unwrap();
    manager
        .wait_for_agent("a1", TIMEOUT)
        .await
        .expect("python agent connected");

    let run = manager
        .run_command("a1", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    let r = run.wait(TIMEOUT, |_, _, _| {}).await.unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(r.output, "Operation no-op succeeded:\n");

    let mut progress = vec![];
    let run = manager
        .run_command(
            "a1",
            "echo.Echo",
            vec![],
            vec![("message".into(), Value::from("hello python"))],
        )
        .await
        .unwrap();
    let r = run
        .wait(TIMEOUT, |c, t, _| progress.push((c, t)))
        .await
        .unwrap();
    assert!(r.success && !r.changed, "{r:?}");
    assert_eq!(
        r.output,
        "Operation echo.Echo(\"hello python\") succeeded:\nhello python"
    );
    assert_eq!(progress, vec![(0, 1), (1, 1)]);

    // 200 requests at once: queued together, written in batches, each frame in its
    // own TLS record. A Python peer reading two frames from one record would stall
    // and these calls would time out.
    let calls = (0..200).map(|i| {
        let m = manager.clone();
        async move {
            m.call("a1", &format!("nope{i}"), vec![], vec![], TIMEOUT)
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Err(ManagerError::Call {
                source: CallError::Remote(text),
                ..
            }) => {
                assert_eq!(text, format!("Method nope{i} not found"))
            }
            other => panic!("call {i}: {other:?}"),
        }
    }
    // And the session is still healthy afterwards.
    let run = manager
        .run_command("a1", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    assert!(run.wait(TIMEOUT, |_, _, _| {}).await.unwrap().success);
    manager.shutdown().await;
}

/// Our agent program, started with an agent.yml written for RedPepper 0.3.4, on the
/// Python manager: it authenticates, the manager's send_command reaches it and the
/// result notification arrives there.
#[test]
fn our_agent_program_on_python_manager() {
    let (dir, certs, config) = setup();
    let manager = PyManager::start(&config);
    let mut agent_cfg = PyAgentConfig::new(
        &dir.path().join("agent"),
        &certs,
        manager.port(),
        "a1",
        SECRET,
    );
    agent_cfg.ping_interval = Some(1);
    let agent_yml = agent_cfg.write();
    let agent = Proc::spawn("our-agent", {
        let mut c = bin_command("redpepper-agent");
        c.arg("--config-file").arg(&agent_yml).args(["-l", "DEBUG"]);
        c
    });
    agent
        .wait_for_line(|l| l.contains("connected to manager"), TIMEOUT)
        .unwrap();
    manager.wait_agent("a1", TIMEOUT).unwrap();

    let result = manager
        .command(
            "a1",
            "echo.Echo",
            json!({"message": "from python"}),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(
        result["output"],
        "Operation echo.Echo(\"from python\") succeeded:\nfrom python"
    );

    let result = manager
        .command(
            "a1",
            "command.Run",
            json!({"command": "echo ran-by-python-manager"}),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["changed"], true, "{result}");
    assert!(
        result["output"]
            .as_str()
            .unwrap()
            .contains("ran-by-python-manager"),
        "{result}"
    );

    // Pings every second flow both ways without upsetting either side.
    manager
        .wait_for_line(
            |l| l.contains("Received ping") || l.contains("Pong"),
            TIMEOUT,
        )
        .ok();
    let result = manager
        .command("a1", "noop.Noop", json!({}), TIMEOUT)
        .unwrap();
    assert_eq!(result["success"], true, "{result}");

    agent.signal(Signal::SIGTERM).unwrap();
    let status = agent.wait_exit(TIMEOUT).unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.tail(40));
    manager
        .wait_for_line(
            |l| l.contains("Received BYE message: shutting down"),
            TIMEOUT,
        )
        .unwrap();
}

/// A wrong secret on a Python manager surfaces "authentication failed" in our
/// agent's log, and it backs off instead of retrying in a hot loop.
#[test]
fn our_agent_refused_by_python_manager() {
    let (dir, certs, config) = setup();
    let manager = PyManager::start(&config);
    let agent_yml = PyAgentConfig::new(
        &dir.path().join("agent"),
        &certs,
        manager.port(),
        "a1",
        "wrong",
    )
    .write();
    let agent = Proc::spawn("our-agent", {
        let mut c = bin_command("redpepper-agent");
        c.arg("--config-file").arg(&agent_yml);
        c
    });
    let line = agent
        .wait_for_line(|l| l.contains("manager refused this agent"), TIMEOUT)
        .unwrap();
    assert!(line.contains("authentication failed"), "{line}");
    assert!(line.contains("retry_in"), "{line}");
    let wait = Duration::from_secs(1);
    // One attempt, then a wait of 32 s or more: no second refusal shortly after.
    assert!(agent
        .wait_for_line(|l| l.contains("manager refused this agent"), wait)
        .is_err());
}
