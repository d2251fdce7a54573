//! The manager library over the in-memory transport: agents connect, commands run,
//! newest session wins (a replaced one answers its calls first), shutdown says Bye and
//! fails pending calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redpepper_agent::{operations, Agent};
use redpepper_config::{AgentConfig, ConfigFile};
use redpepper_core::codec::AgentHello;
use redpepper_core::memory::{listener, MemoryDialer};
use redpepper_core::{
    Authenticator, CallError, PeerInfo, Router, Session, SessionConfig, SessionError, Value,
};
use redpepper_manager::{CommandUpdate, Manager, ManagerError, ManagerEvent};
use tokio_util::sync::CancellationToken;

// Kept in a subdirectory so Cargo does not build it as a test binary of its own.
#[path = "manager/admission.rs"]
mod admission;
#[path = "manager/cluster.rs"]
mod cluster;
#[path = "manager/flood.rs"]
mod flood;
#[path = "manager/grace.rs"]
mod grace;

const WAIT: Duration = Duration::from_secs(20);

struct SecretIsS;

impl Authenticator for SecretIsS {
    fn authenticate<'a>(
        &'a self,
        hello: &'a AgentHello,
        _: &'a PeerInfo,
    ) -> BoxFuture<'a, Result<(), String>> {
        let ok = hello.credentials == "s";
        async move {
            if ok {
                Ok(())
            } else {
                Err("bad secret".into())
            }
        }
        .boxed()
    }
}

fn cfg() -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::ZERO,
        ..SessionConfig::default()
    }
}

fn start() -> (Manager, MemoryDialer) {
    let (l, d) = listener(64);
    (
        Manager::start_with(cfg(), vec![Box::new(l)], Arc::new(SecretIsS)),
        d,
    )
}

async fn raw_agent(d: &MemoryDialer, id: &str, router: Router) -> Session {
    Session::connect(d.connect().unwrap(), id, "s", cfg(), Arc::new(router))
        .await
        .unwrap()
}

/// An agent that accepts commands and never reports on its own.
fn silent() -> Router {
    Router::new().method("command", |_| async { Ok(Value::Nil) })
}

/// The data of a successful, unchanged `command_result` notification for command `id`.
fn command_result(id: &str, output: &str) -> Value {
    Value::Map(vec![
        (Value::from("id"), Value::from(id)),
        (Value::from("success"), Value::from(true)),
        (Value::from("changed"), Value::from(false)),
        (Value::from("output"), Value::from(output)),
    ])
}

#[tokio::test]
async fn agent_program_connects_runs_commands_and_answers_echo() {
    let (manager, dialer) = start();
    let config =
        AgentConfig::from_yaml_str("agent_id: web1\nagent_secret: s\nping_interval: 0\n").unwrap();
    let agent = Agent::with_dialer(config, Box::new(dialer), Arc::new(operations::router()));
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { agent.run(stop, |_| {}).await }
    });
    manager
        .wait_for_agent("web1", WAIT)
        .await
        .expect("agent connects");

    let mut run = manager
        .run_command(
            "web1",
            "echo.Echo",
            vec![],
            vec![
                ("message".into(), Value::from("hi")),
                ("reverse".into(), Value::from(true)),
            ],
        )
        .await
        .unwrap();
    let mut updates = vec![];
    while let Some(u) = tokio::time::timeout(WAIT, run.next()).await.unwrap() {
        let last = matches!(u, CommandUpdate::Result(_));
        updates.push(u);
        if last {
            break;
        }
    }
    assert!(
        matches!(
            &updates[0],
            CommandUpdate::Progress {
                current: 0,
                total: 1,
                ..
            }
        ),
        "{updates:?}"
    );
    assert!(
        matches!(
            &updates[1],
            CommandUpdate::Progress {
                current: 1,
                total: 1,
                ..
            }
        ),
        "{updates:?}"
    );
    let CommandUpdate::Result(r) = &updates[2] else {
        panic!("{updates:?}")
    };
    assert!(r.success);
    assert!(r.output.ends_with("\nih"), "{}", r.output);

    let run = manager
        .run_command(
            "web1",
            "command.Run",
            vec![],
            vec![("command".into(), Value::from("exit 4"))],
        )
        .await
        .unwrap();
    let r = run.wait(WAIT, |_, _, _| {}).await.unwrap();
    assert!(
        !r.success && r.output.contains("return code 4"),
        "{}",
        r.output
    );

    let run = manager
        .run_command("web1", "nope.Nope", vec![], vec![])
        .await
        .unwrap();
    let r = run.wait(WAIT, |_, _, _| {}).await.unwrap();
    assert!(!r.success && r.output.contains("nope.Nope"));

    let echoed = manager
        .call(
            "web1",
            "echo",
            vec![Value::from("a")],
            vec![("k".into(), Value::from(1))],
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        echoed,
        redpepper_core::echo_reply(vec![Value::from("a")], vec![("k".into(), Value::from(1))])
    );

    let info = manager.agents();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].id, "web1");
    assert_eq!(info[0].version, redpepper_core::VERSION);

    // SIGTERM path: the agent says Bye "shutting down" and the manager drops it.
    let mut events = manager.events();
    stop.cancel();
    task.await.unwrap().unwrap();
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ManagerEvent::Disconnected { agent, reason } => {
                assert_eq!(agent, "web1");
                assert!(reason.contains("shutting down"), "{reason}");
                break;
            }
            _ => continue,
        }
    }
    assert!(manager.agents().is_empty());
}

#[tokio::test]
async fn newest_session_wins() {
    let (manager, d) = start();
    let first = raw_agent(&d, "dup", Router::new()).await;
    manager.wait_for_agent("dup", WAIT).await.unwrap();
    let second = raw_agent(&d, "dup", Router::new()).await;
    assert_eq!(
        first.closed().await,
        SessionError::ByeReceived("replaced by a new connection".into())
    );
    let current = manager.wait_for_agent("dup", WAIT).await.unwrap();
    assert_eq!(current.peer_version(), second.peer_version());
    assert_eq!(manager.agents().len(), 1);
    assert!(!second.is_closed());
    // The old session's end does not remove the new one.
    assert!(manager
        .call("dup", "echo", vec![], vec![], WAIT)
        .await
        .is_err_and(|e| e.to_string().contains("not found")));
}

#[tokio::test]
async fn a_replaced_session_answers_its_calls_before_its_bye() {
    let (manager, d) = start();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let slow = Router::new().method("slow", {
        let release = release.clone();
        move |_| {
            let (started_tx, release) = (started_tx.clone(), release.clone());
            async move {
                let _ = started_tx.send(());
                release.notified().await;
                Ok(Value::from("done"))
            }
        }
    });
    let first = raw_agent(&d, "dup", slow).await;
    manager.wait_for_agent("dup", WAIT).await.unwrap();
    let m2 = manager.clone();
    let call = tokio::spawn(async move { m2.call("dup", "slow", vec![], vec![], WAIT).await });
    tokio::time::timeout(WAIT, started.recv())
        .await
        .unwrap()
        .unwrap();
    let mut events = manager.events();
    let _second = raw_agent(&d, "dup", Router::new()).await;
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ManagerEvent::Disconnected { reason, .. } if reason.contains("replaced") => break,
            _ => continue,
        }
    }
    // Replaced, with its call still in flight: the call is answered on it, then Bye.
    release.notify_one();
    let answer = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert_eq!(answer.unwrap(), Value::from("done"));
    assert_eq!(
        tokio::time::timeout(WAIT, first.closed()).await.unwrap(),
        SessionError::ByeReceived("replaced by a new connection".into())
    );
}

#[tokio::test]
async fn shutdown_says_bye_and_fails_pending_calls() {
    let (manager, d) = start();
    let hang = Router::new().method("hang", |_| futures::future::pending());
    let agent = raw_agent(&d, "a1", hang).await;
    manager.wait_for_agent("a1", WAIT).await.unwrap();
    let m2 = manager.clone();
    let call = tokio::spawn(async move {
        m2.call("a1", "hang", vec![], vec![], Duration::from_secs(3600))
            .await
    });
    // Wait until the call is really in flight.
    let session = manager.session("a1").unwrap();
    while session.calls_in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    manager.shutdown().await;
    let err = tokio::time::timeout(WAIT, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ManagerError::Call {
                source: CallError::SessionClosed(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        agent.closed().await,
        SessionError::ByeReceived("server shutting down".into())
    );
    // No new agents after shutdown.
    assert!(
        d.connect().is_err()
            || manager
                .wait_for_agent("a2", Duration::from_millis(1))
                .await
                .is_none()
    );
}

#[tokio::test]
async fn command_fails_when_agent_disconnects_before_result() {
    let (manager, d) = start();
    // Accepts the command, never reports a result.
    let silent = Router::new().method("command", |_| async { Ok(Value::Nil) });
    let agent = raw_agent(&d, "s1", silent).await;
    manager.wait_for_agent("s1", WAIT).await.unwrap();
    let run = manager
        .run_command("s1", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    agent.close("going away").await;
    let err = run
        .wait(Duration::from_secs(3600), |_, _, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("agent disconnected"), "{err}");
    assert!(matches!(
        manager.call("s1", "echo", vec![], vec![], WAIT).await,
        Err(ManagerError::NotConnected(_))
    ));
}

#[tokio::test]
async fn bad_secret_is_refused_and_reported() {
    let (manager, d) = start();
    let mut events = manager.events();
    let err = Session::connect(
        d.connect().unwrap(),
        "intruder",
        "wrong",
        cfg(),
        Arc::new(Router::new()),
    )
    .await
    .unwrap_err();
    assert_eq!(err, SessionError::Refused("authentication failed".into()));
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ManagerEvent::Accepted { .. } => continue,
            ManagerEvent::AuthFailed { agent, .. } => break assert_eq!(agent, "intruder"),
            other => panic!("{other:?}"),
        }
    }
    assert!(manager.agents().is_empty());
}

#[tokio::test]
async fn agent_reconnects_after_losing_its_session() {
    let (manager, dialer) = start();
    let config =
        AgentConfig::from_yaml_str("agent_id: r1\nagent_secret: s\nping_interval: 0\n").unwrap();
    let agent = Agent::with_dialer(config, Box::new(dialer), Arc::new(operations::router()));
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move { agent.run(stop, |_| {}).await }
    });
    let first = manager.wait_for_agent("r1", WAIT).await.unwrap();
    let mut events = manager.events();
    first.close("kicked").await;
    // It comes back by itself (backoff: at most 1 s for the first retry).
    loop {
        if let ManagerEvent::Connected { agent, .. } = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            assert_eq!(agent, "r1");
            break;
        }
    }
    let second = manager.session("r1").unwrap();
    assert!(!second.same_session(&first));
    assert!(manager
        .call("r1", "echo", vec![], vec![], WAIT)
        .await
        .is_ok());
    stop.cancel();
}

/// A listener without sockets (AMQP's case; here the in-memory one) has a plain budget:
/// when it is full the accept loop waits.
#[tokio::test(start_paused = true)]
async fn connections_not_yet_authenticated_are_capped() {
    let (l, d) = listener(64);
    let manager_cfg = SessionConfig {
        ping_interval: Duration::ZERO,
        hello_timeout: Duration::from_secs(600),
        ..SessionConfig::default()
    };
    let manager = Manager::start_limited(manager_cfg, vec![Box::new(l)], Arc::new(SecretIsS), 2);
    // Two connections that never say hello take both slots.
    let silent_1 = d.connect().unwrap();
    let silent_2 = d.connect().unwrap();
    // A third agent is not served meanwhile: its own hello timeout (paused time runs
    // ahead when everything waits) ends its attempt.
    let agent_cfg = SessionConfig {
        ping_interval: Duration::ZERO,
        hello_timeout: Duration::from_secs(5),
        ..SessionConfig::default()
    };
    let refused = Session::connect(
        d.connect().unwrap(),
        "a3",
        "s",
        agent_cfg.clone(),
        Arc::new(Router::new()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(refused, SessionError::HelloTimeout { .. }),
        "{refused:?}"
    );
    assert!(manager.agents().is_empty());
    // One silent connection goes: its slot frees and the next agent gets in.
    drop(silent_1);
    let session = Session::connect(
        d.connect().unwrap(),
        "a4",
        "s",
        agent_cfg,
        Arc::new(Router::new()),
    )
    .await
    .unwrap();
    assert!(manager.wait_for_agent("a4", WAIT).await.is_some());
    drop((silent_2, session));
    manager.shutdown().await;
}
