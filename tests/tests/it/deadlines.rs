//! Deadlines and cancellation against the real RedPepper 0.3.4 (Python): every call
//! we make carries our `timeout` Request key, which both Python peers must accept
//! (pydantic ignores unknown keys; a rejected message would close the connection), and
//! our `cancel` request, which a Python agent does not know, reads as "cannot cancel".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::support::manager::{run_op, start_in_process};
use crate::support::python::{agent_config, secret, setup, ID};
use redpepper_agent::Agent;
use redpepper_config::{AgentConfig, ConfigFile};
use redpepper_core::{CallError, TransportKind, Value};
use redpepper_manager::ManagerError;
use redpepper_tests::*;

/// Our manager calls a Python agent: the `command` request and a plain call carry
/// `timeout` and are answered as usual; `cancel` is "cannot cancel", not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_agent_accepts_requests_carrying_a_timeout() {
    let (fleet, config) = setup();
    let manager = start_in_process(&config.write()).await;
    let port = manager.local_addr(TransportKind::Tls).unwrap().port();
    let agent = PyAgent::start(&agent_config(&fleet, port, &secret()));
    tokio::task::block_in_place(|| agent.wait_connected(TIMEOUT)).unwrap();
    let session = manager
        .wait_for_agent(ID, TIMEOUT)
        .await
        .expect("python agent connected");

    // `run_op` sends `command` with `Session::call`: it carries the call timeout.
    let message = ("message", Value::from("deadline"));
    let (r, _) = run_op(&manager, ID, "echo.Echo", &[message]).await;
    assert!(r.success, "{r:?}");
    assert!(r.output.ends_with("\ndeadline"), "{r:?}");

    let err = manager
        .call(ID, "nope", vec![], vec![], Duration::from_secs(45))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ManagerError::Call { source: CallError::Remote(t), .. } if t == "Method nope not found"),
        "{err}"
    );

    // Our `cancel`: the Python agent has no such method; that reads as false.
    assert!(!manager.cancel_command(ID, "0123abcd").await.unwrap());
    assert!(
        !session.is_closed(),
        "the Python agent closed the session: {:?}",
        session.close_reason()
    );
    manager.shutdown().await;
}

/// Our agent (the library, configured from the RedPepper agent.yml) calls a Python
/// manager's `custom` request with a timeout: the manager dispatches it (its answer
/// is the request module's own error) and the session stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_manager_accepts_requests_carrying_a_timeout() {
    let (fleet, config) = setup();
    let manager = PyManager::start(&config);
    let agent_yml = agent_config(&fleet, manager.port(), &secret()).write();
    let agent_config = AgentConfig::load(Some(&agent_yml), &[])
        .unwrap_or_else(|e| panic!("{}: {e}", agent_yml.display()));
    let agent = Agent::new(agent_config).unwrap();
    let session = agent
        .connect()
        .await
        .expect("connected to the Python manager");
    for _ in 0..2 {
        let err = session
            .call_with_timeout(
                "custom",
                vec![Value::from("data")],
                vec![("name".into(), Value::from("no-such-key"))],
                Duration::from_secs(45),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CallError::Remote("Data not found: no-such-key".into()),
            "{err}"
        );
    }
    assert!(
        !session.is_closed(),
        "the Python manager closed the session: {:?}",
        session.close_reason()
    );
    session.close("done").await;
}
