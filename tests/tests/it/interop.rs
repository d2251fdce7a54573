//! Interoperability with the real RedPepper 0.3.4 (Python, from PyPI) over TLS TCP:
//! a Python agent on our manager, our agent on a Python manager, RedPepper's own
//! configuration files starting our programs unchanged, and a burst of messages from
//! our side reaching a Python peer (one frame per TLS record).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use crate::support::manager::{run_op, start_in_process};
use crate::support::python::{agent_config, run_succeeds, secret, setup};
use redpepper_core::{CallError, TransportKind, Value};
use redpepper_manager::ManagerError;
use redpepper_tests::python::HELLO_ACCEPTED;
use redpepper_tests::serde_json::json;
use redpepper_tests::*;

/// Our `redpepper-agent` program started with the RedPepper `agent.yml` at `config`,
/// logging at `DEBUG` when `debug`.
fn our_agent(config: &Path, debug: bool) -> Proc {
    let mut c = bin_command("redpepper-agent");
    c.arg("--config-file").arg(config);
    if debug {
        c.args(["-l", "DEBUG"]);
    }
    Proc::spawn("our-agent", c)
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Our manager program started with a manager.yml written for RedPepper 0.3.4
/// (api_* keys, command_log_file, ...): a Python agent authenticates, a wrong secret
/// gets Bye, and SIGTERM says Bye "server shutting down".
#[test]
fn python_agent_on_our_manager_program() {
    let (fleet, mut config) = setup();
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

    let agent = PyAgent::start(&agent_config(&fleet, config.bind_port, &secret()));
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

    let intruder =
        PyAgent::start(&fleet.py_agent_config("intruder", config.bind_port, "a1", "wrong"));
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
    let (fleet, config) = setup();
    let manager = start_in_process(&config.write()).await;
    let port = manager.local_addr(TransportKind::Tls).unwrap().port();
    let agent = PyAgent::start(&agent_config(&fleet, port, &secret()));
    blocking(|| agent.wait_connected(TIMEOUT)).unwrap();
    manager
        .wait_for_agent("a1", TIMEOUT)
        .await
        .expect("python agent connected");

    let (r, _) = run_op(&manager, "a1", "noop.Noop", &[]).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.output, "Operation no-op succeeded:\n");

    let message = ("message", Value::from("hello python"));
    let (r, progress) = run_op(&manager, "a1", "echo.Echo", &[message]).await;
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
    assert!(run_op(&manager, "a1", "noop.Noop", &[]).await.0.success);
    manager.shutdown().await;
}

/// Our agent program, started with an agent.yml written for RedPepper 0.3.4, on the
/// Python manager: it authenticates, the manager's send_command reaches it and the
/// result notification arrives there.
#[test]
fn our_agent_program_on_python_manager() {
    let (fleet, config) = setup();
    let manager = PyManager::start(&config);
    let mut agent_cfg = agent_config(&fleet, manager.port(), &secret());
    agent_cfg.ping_interval = Some(1);
    let agent = our_agent(&agent_cfg.write(), true);
    agent
        .wait_for_line(|l| l.contains("connected to manager"), TIMEOUT)
        .unwrap();
    manager.wait_agent("a1", TIMEOUT).unwrap();

    let result = run_succeeds(&manager, "echo.Echo", json!({"message": "from python"}));
    assert_eq!(
        result["output"],
        "Operation echo.Echo(\"from python\") succeeded:\nfrom python"
    );

    let result = run_succeeds(
        &manager,
        "command.Run",
        json!({"command": "echo ran-by-python-manager"}),
    );
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
    run_succeeds(&manager, "noop.Noop", json!({}));

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
    let (fleet, config) = setup();
    let manager = PyManager::start(&config);
    let agent = our_agent(
        &agent_config(&fleet, manager.port(), "wrong").write(),
        false,
    );
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

/// Our agent (library) on the Python manager delivers a result twice, as its outbox
/// does when a connection drops after the result but before the receipt: RedPepper
/// 0.3.4 takes the copy without complaint (the receipt barrier's Ping is answered,
/// the session stays up) and the next command works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_delivered_twice_is_harmless_to_the_python_manager() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use redpepper_agent::commands::Outcome;
    use redpepper_agent::Agent;
    use redpepper_config::{AgentConfig, ConfigFile};

    let (fleet, config) = setup();
    let manager = PyManager::start(&config);
    let agent_yml = agent_config(&fleet, manager.port(), &secret()).write();
    let agent_config = AgentConfig::load(Some(&agent_yml), &[]).unwrap();
    let agent = Agent::new(agent_config).unwrap();
    let commands = agent.commands().unwrap().clone();
    let sessions = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let (stop, sessions) = (stop.clone(), sessions.clone());
        async move {
            agent
                .run(stop, move |_| {
                    sessions.fetch_add(1, Ordering::SeqCst);
                })
                .await
        }
    });
    blocking(|| manager.wait_agent("a1", TIMEOUT)).unwrap();
    let first = blocking(|| run_succeeds(&manager, "echo.Echo", json!({"message": "once"})));
    // The first result went through the outbox: confirmed by a Pong from Python.
    tokio::time::timeout(TIMEOUT, commands.outbox().wait_pending(0))
        .await
        .expect("the python manager answers the receipt barrier");
    commands.outbox().push(Outcome {
        id: first["id"].as_str().unwrap().to_owned(),
        success: true,
        changed: false,
        output: first["output"].as_str().unwrap().to_owned(),
    });
    tokio::time::timeout(TIMEOUT, commands.outbox().wait_pending(0))
        .await
        .expect("the copy is read and its receipt barrier answered");
    let again = blocking(|| run_succeeds(&manager, "echo.Echo", json!({"message": "twice"})));
    assert!(
        again["output"].as_str().unwrap().contains("twice"),
        "{again}"
    );
    assert_eq!(sessions.load(Ordering::SeqCst), 1, "one session throughout");
    stop.cancel();
    task.await.unwrap().unwrap();
}
