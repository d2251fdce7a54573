//! Commands run on our agent over an in-memory session: a fake manager answers
//! `custom` as a test says and collects the progress and the result the agent sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redpepper_core::memory::AcceptAll;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redpepper_core::memory;
use redpepper_core::{HandlerError, Kwargs, Router, Session, SessionConfig, Value};
use tokio::sync::mpsc;

/// Generous limit for anything a test waits on.
pub(crate) const WAIT: Duration = Duration::from_secs(120);

/// A manager's answer to one `custom` call: its data, or its error text.
pub(crate) type Answer = Box<dyn Fn(&[Value], &Kwargs) -> Result<Value, String> + Send + Sync>;

/// What the agent sent back for one command.
#[derive(Debug)]
pub(crate) struct Sent {
    /// `(current, total, message)` of each `command_progress`, in order.
    pub(crate) progress: Vec<(u64, u64, String)>,
    pub(crate) success: bool,
    pub(crate) changed: bool,
    pub(crate) output: String,
    /// The `custom` calls the agent made: positional and keyword arguments.
    pub(crate) calls: Vec<(Vec<Value>, Kwargs)>,
}

/// A JSON literal as the msgpack value it stands for on the wire.
pub(crate) fn v(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Nil,
        J::Bool(b) => Value::from(b),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (_, _, f) => Value::from(f.unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::from(s),
        J::Array(a) => Value::Array(a.into_iter().map(v).collect()),
        J::Object(m) => Value::Map(m.into_iter().map(|(k, x)| (Value::from(k), v(x))).collect()),
    }
}

/// Run command `cmdtype` (args, kwargs) on our agent, its manager answering `custom`
/// with `answer`; returns what the agent sent.
pub(crate) async fn run_command(
    cmdtype: &str,
    args: serde_json::Value,
    kwargs: serde_json::Value,
    answer: Answer,
) -> Sent {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let recorded = calls.clone();
    let answer = Arc::new(answer);
    let manager_router = Router::new()
        .method("custom", move |ctx| {
            recorded
                .lock()
                .unwrap()
                .push((ctx.args.clone(), ctx.kwargs.clone()));
            let answer = answer.clone();
            async move { answer(&ctx.args, &ctx.kwargs).map_err(HandlerError::Failed) }
        })
        .on_notification(move |_, n| {
            let _ = tx.send((n.r#type, n.data));
        });
    let config = SessionConfig {
        ping_interval: Duration::ZERO,
        expose_errors: true,
        ..SessionConfig::default()
    };
    let (agent_end, manager_end) = memory::pair(64);
    let (agent, manager) = tokio::join!(
        Session::connect(
            agent_end,
            "web1",
            "s",
            config.clone(),
            Arc::new(crate::operations::router())
        ),
        Session::accept(
            manager_end,
            config.clone(),
            &AcceptAll,
            Arc::new(manager_router)
        ),
    );
    let _agent = agent.expect("agent connects");
    let manager = manager.expect("manager accepts");
    let answered = manager
        .call(
            "command",
            vec![],
            vec![
                ("id".into(), Value::from("cid1")),
                ("cmdtype".into(), Value::from(cmdtype)),
                ("args".into(), v(args)),
                ("kwargs".into(), v(kwargs)),
            ],
        )
        .await
        .expect("command accepted");
    assert_eq!(answered, Value::Nil);
    let mut progress = Vec::new();
    loop {
        let (kind, data) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the agent answers in time")
            .expect("the manager session is alive");
        let field = |name: &str| {
            data.as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{kind} without {name}: {data}"))
        };
        match kind.as_str() {
            "command_progress" => {
                assert_eq!(field("command_id").as_str(), Some("cid1"));
                progress.push((
                    field("current").as_u64().unwrap(),
                    field("total").as_u64().unwrap(),
                    field("message").as_str().unwrap().to_owned(),
                ));
            }
            "command_result" => {
                assert_eq!(field("id").as_str(), Some("cid1"));
                let calls = calls.lock().unwrap().clone();
                return Sent {
                    progress,
                    success: field("success").as_bool().unwrap(),
                    changed: field("changed").as_bool().unwrap(),
                    output: field("output").as_str().unwrap().to_owned(),
                    calls,
                };
            }
            other => panic!("unexpected notification {other}"),
        }
    }
}

/// A manager whose `stateDefinition` answers `state` (JSON, as on the wire).
pub(crate) fn serves(state: serde_json::Value) -> Answer {
    let state = v(state);
    Box::new(move |args, _| {
        assert_eq!(
            args.first().and_then(Value::as_str),
            Some("stateDefinition")
        );
        Ok(state.clone())
    })
}

pub(crate) fn steps(list: &[(u64, u64, &str)]) -> Vec<(u64, u64, String)> {
    list.iter().map(|&(c, t, m)| (c, t, m.to_owned())).collect()
}
