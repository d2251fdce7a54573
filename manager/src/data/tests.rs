//! The `custom` method through a manager session (in-memory transport): answers and
//! error texts reach the agent although the manager hides other errors' details, and
//! registered requests answer after the built-in ones.

use redpepper_core::memory::AcceptAll;
use std::sync::Arc;
use std::time::Duration;

use redpepper_core::memory::{listener, MemoryDialer};
use redpepper_core::{CallError, Router, Session, SessionConfig, Value};

use crate::data::{CustomRequests, DataManager};
use crate::Manager;

const WAIT: Duration = Duration::from_secs(20);

fn cfg() -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::ZERO,
        // As the manager program runs: details of unexpected errors hidden.
        expose_errors: false,
        ..SessionConfig::default()
    }
}

async fn connect(dialer: &MemoryDialer, id: &str) -> Session {
    let transport = dialer.connect().unwrap_or_else(|e| panic!("dial: {e}"));
    Session::connect(transport, id, "s", cfg(), Arc::new(Router::new()))
        .await
        .unwrap_or_else(|e| panic!("connect {id}: {e}"))
}

async fn custom(
    session: &Session,
    args: &[&str],
    kwargs: &[(&str, Value)],
) -> Result<Value, CallError> {
    let args = args.iter().map(|a| Value::from(*a)).collect();
    let kwargs = kwargs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    session
        .call_with_timeout("custom", args, kwargs, WAIT)
        .await
}

#[tokio::test]
async fn agents_get_answers_error_texts_and_registered_requests() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(tmp.path().join("groups.yml"), "web1: [web]\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(tmp.path().join("data")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("data/web.yml"), "greeting: hello\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let requests = CustomRequests::new()
        .register("whoami", |req| async move {
            Ok(Value::from(format!("{} {}", req.agent_id, req.args.len())))
        })
        .register("data", |_| async {
            Err("never called: built-ins come first".to_owned())
        })
        .register("refuse", |_| async { Err("not today".to_owned()) });
    let (l, dialer) = listener(8);
    let manager = Manager::start_with_data(
        cfg(),
        vec![Box::new(l)],
        Arc::new(AcceptAll),
        DataManager::new(tmp.path()).with_requests(requests),
    );
    let agent = connect(&dialer, "web1").await;

    let greeting = custom(&agent, &["data"], &[("name", Value::from("greeting"))]).await;
    assert_eq!(greeting.ok(), Some(Value::from("hello")));
    let missing = custom(&agent, &["data"], &[("name", Value::from("nope"))]).await;
    assert!(
        matches!(&missing, Err(CallError::Remote(t)) if t == "Data not found: nope"),
        "{missing:?}"
    );
    let traversal = custom(
        &agent,
        &["dataFileContents"],
        &[
            ("filename", Value::from("../agents.yml")),
            ("offset", Value::from(0)),
            ("length", Value::from(100)),
        ],
    )
    .await;
    assert!(
        matches!(&traversal, Err(CallError::Remote(t)) if t == "Unacceptable file name: '../agents.yml'"),
        "{traversal:?}"
    );
    let hidden = custom(&agent, &[], &[]).await;
    assert!(
        matches!(&hidden, Err(CallError::Remote(t)) if t == "RPC call failed"),
        "{hidden:?}"
    );
    let whoami = custom(&agent, &["whoami", "x"], &[]).await;
    assert_eq!(whoami.ok(), Some(Value::from("web1 1")));
    let refused = custom(&agent, &["refuse"], &[]).await;
    assert!(
        matches!(&refused, Err(CallError::Remote(t)) if t == "not today"),
        "{refused:?}"
    );
    manager.shutdown().await;
}

#[tokio::test]
async fn a_manager_without_a_data_directory_has_no_custom_method() {
    let (l, dialer) = listener(8);
    let manager = Manager::start_with(cfg(), vec![Box::new(l)], Arc::new(AcceptAll));
    let agent = connect(&dialer, "web1").await;
    let answer = custom(&agent, &["data"], &[("name", Value::from("x"))]).await;
    assert!(
        matches!(&answer, Err(CallError::Remote(t)) if t == "Method custom not found"),
        "{answer:?}"
    );
    manager.shutdown().await;
}
