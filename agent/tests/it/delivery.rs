//! Command results over the in-memory transport, the manager a raw peer driven by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use redpepper_agent::commands::{Commands, Outcome};
use redpepper_agent::operations::router_with;
use redpepper_config::AgentCommandsConfig;
use redpepper_core::codec::{encode, Message, Notification, Request};
use redpepper_core::memory::pair;
use redpepper_core::{Session, SessionConfig, Value};

use crate::raw::Raw;
use crate::WAIT;

fn config(max: usize) -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::ZERO,
        max_message_size: max,
        ..SessionConfig::default()
    }
}

/// An agent session serving `commands` against a raw manager.
async fn connect(commands: &Arc<Commands>, max: usize) -> (Raw, Session) {
    let (a, m) = pair(64);
    let mut raw = Raw::new(m);
    let handler = Arc::new(router_with(commands.clone()));
    let agent = tokio::spawn(Session::connect(a, "web1", "s", config(max), handler));
    raw.hello().await;
    raw.welcome().await;
    (raw, agent.await.unwrap().unwrap())
}

fn field<'a>(n: &'a Notification, name: &str) -> &'a Value {
    n.data
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
        .unwrap()
}

#[tokio::test]
async fn a_result_not_confirmed_is_sent_again_on_the_next_session() {
    let commands = Commands::new(&AgentCommandsConfig::default());
    let (mut m1, s1) = connect(&commands, 1 << 20).await;
    commands.attach(&s1);
    m1.command("c1", "echo.Echo", vec![Value::from("hi")]).await;
    let mut kinds = Vec::new();
    let result = loop {
        let n = m1.notification().await;
        kinds.push(n.r#type.clone());
        if n.r#type == "command_result" {
            break n;
        }
    };
    assert_eq!(
        kinds,
        ["command_progress", "command_progress", "command_result"]
    );
    assert_eq!(field(&result, "id").as_str(), Some("c1"));
    // The barrier: a Ping behind the result. The manager "dies" before answering.
    let Message::Ping { .. } = m1.message().await else {
        panic!("expected the barrier's ping")
    };
    drop(m1);
    s1.closed().await;
    assert_eq!(commands.outbox().pending().0, 1, "kept until confirmed");

    let (mut m2, s2) = connect(&commands, 1 << 20).await;
    commands.attach(&s2);
    let again = m2.notification().await;
    assert_eq!(again.r#type, "command_result");
    assert_eq!(again.data, result.data, "the same result, again");
    let Message::Ping { data } = m2.message().await else {
        panic!("expected the barrier's ping")
    };
    m2.send(Message::Pong { data }).await;
    tokio::time::timeout(WAIT, commands.outbox().wait_pending(0))
        .await
        .expect("confirmed results leave the outbox");
    // Nothing more is sent: the next message is the answer to a new request.
    m2.send(Message::Request(Request {
        timeout: None,
        id: "e1".into(),
        method: "echo".into(),
        args: vec![],
        kwargs: vec![],
    }))
    .await;
    let Message::Response(r) = m2.message().await else {
        panic!("nothing is sent again after the receipt")
    };
    assert_eq!(r.id, "e1");
}

#[tokio::test]
async fn the_outbox_is_bounded_and_drops_the_oldest() {
    let commands = Commands::new(&AgentCommandsConfig {
        outbox: 3,
        outbox_bytes: 1 << 20,
        output_limit: 1024,
    });
    let outcome = |i: usize, len: usize| Outcome {
        id: format!("c{i}"),
        success: true,
        changed: false,
        output: "x".repeat(len),
    };
    for i in 0..5 {
        commands.outbox().push(outcome(i, 10));
    }
    assert_eq!(commands.outbox().pending().0, 3);
    let bytes = Commands::new(&AgentCommandsConfig {
        outbox: 100,
        outbox_bytes: 4096,
        output_limit: 1024,
    });
    for i in 0..3 {
        bytes.outbox().push(outcome(i, 1500));
    }
    let (n, b) = bytes.outbox().pending();
    assert_eq!(n, 2);
    assert!(b <= 4096, "{b}");
    // One result larger than the whole outbox keeps half of it (head and tail of its
    // output), making room by dropping the oldest.
    bytes.outbox().push(outcome(9, 100_000));
    let (n, b) = bytes.outbox().pending();
    assert_eq!(n, 2);
    assert!(b <= 4096, "{b}");

    // The survivors are the newest: delivered on a session, in order.
    let (mut m, s) = connect(&commands, 1 << 20).await;
    commands.attach(&s);
    for i in 2..5 {
        let n = m.notification().await;
        assert_eq!(field(&n, "id").as_str(), Some(format!("c{i}").as_str()));
    }
}

#[tokio::test]
async fn results_and_progress_are_cut_to_max_message_size() {
    let commands = Commands::new(&AgentCommandsConfig::default());
    let max = 64 * 1024;
    let (mut m, s) = connect(&commands, max).await;
    commands.attach(&s);
    let big = "y".repeat(200_000);
    m.command("big", "echo.Echo", vec![Value::from(big.as_str())])
        .await;
    let result = loop {
        let n = m.notification().await;
        assert!(encode(&Message::Notification(n.clone())).unwrap().len() <= max);
        if n.r#type == "command_result" {
            break n;
        }
    };
    let output = field(&result, "output").as_str().unwrap();
    assert!(output.contains("bytes omitted ..."), "{}", &output[..200]);
    assert!(output.len() > max - 1024, "cut no more than needed");
    assert_eq!(field(&result, "success").as_bool(), Some(true));
    assert!(output.trim_end().ends_with('y'), "the tail is kept");
}

#[tokio::test]
async fn a_duplicate_id_is_refused_and_cancel_answers_whether_it_ran() {
    let commands = Commands::new(&AgentCommandsConfig::default());
    let (mut m, s) = connect(&commands, 1 << 20).await;
    commands.attach(&s);
    let state = Value::from("sleep 5");
    m.command("long", "command.Run", vec![state.clone()]).await;
    let Message::Response(first) = m.message().await else {
        panic!("expected the answer")
    };
    assert!(first.success);
    m.command("long", "command.Run", vec![state]).await;
    let second = loop {
        match m.message().await {
            Message::Response(r) => break r,
            Message::Notification(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(!second.success);
    assert!(
        second.data.as_str().unwrap().contains("already running"),
        "{:?}",
        second.data
    );
    assert_eq!(commands.running(), 1);
    for (id, expected) in [("long", true), ("nope", false)] {
        m.send(Message::Request(Request {
            timeout: None,
            id: format!("cancel-{id}"),
            method: "cancel".into(),
            args: vec![],
            kwargs: vec![("id".into(), Value::from(id))],
        }))
        .await;
        let answer = loop {
            match m.message().await {
                Message::Response(r) => break r,
                Message::Notification(_) => {}
                other => panic!("{other:?}"),
            }
        };
        assert!(answer.success);
        assert_eq!(answer.data, Value::from(expected), "cancel {id}");
    }
}

#[tokio::test]
async fn a_cancelled_state_stops_its_running_task_and_runs_no_more() {
    let commands = Commands::new(&AgentCommandsConfig::default());
    let (mut m, s) = connect(&commands, 1 << 20).await;
    commands.attach(&s);
    m.send(Message::Request(Request {
        timeout: None,
        id: "req-st".into(),
        method: "command".into(),
        args: vec![],
        kwargs: vec![
            ("id".into(), Value::from("st")),
            ("cmdtype".into(), Value::from("state")),
            ("args".into(), Value::Array(vec![])),
            ("kwargs".into(), Value::Map(vec![])),
        ],
    }))
    .await;
    let task = |name: &str, fields: Vec<(&str, &str)>| {
        Value::Map(vec![(
            Value::from(name),
            Value::Map(
                fields
                    .into_iter()
                    .map(|(k, v)| (Value::from(k), Value::from(v)))
                    .collect(),
            ),
        )])
    };
    let definition = Value::Array(vec![
        task(
            "first",
            vec![("type", "command.Run"), ("command", "sleep 1")],
        ),
        task("second", vec![("type", "echo.Echo"), ("message", "never")]),
    ]);
    let mut cancelled = false;
    let result = loop {
        match m.message().await {
            Message::Request(r) if r.method == "custom" => {
                m.send(Message::Response(redpepper_core::codec::Response {
                    id: r.id,
                    success: true,
                    data: definition.clone(),
                }))
                .await;
            }
            Message::Notification(n) if n.r#type == "command_progress" => {
                let running_first = field(&n, "message").as_str() == Some("Running first");
                if running_first && !cancelled {
                    cancelled = true;
                    m.send(Message::Request(Request {
                        timeout: None,
                        id: "cancel-st".into(),
                        method: "cancel".into(),
                        args: vec![],
                        kwargs: vec![("id".into(), Value::from("st"))],
                    }))
                    .await;
                }
            }
            Message::Notification(n) if n.r#type == "command_result" => break n,
            Message::Response(r) if r.id == "cancel-st" => {
                assert_eq!(r.data, Value::from(true), "the state was running");
            }
            Message::Response(_) | Message::Ping { .. } => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(cancelled);
    let output = field(&result, "output").as_str().unwrap();
    assert_eq!(field(&result, "success").as_bool(), Some(false), "{output}");
    // The running task's process is stopped (command.Run honours the command's
    // cancel token) and no later task runs.
    assert!(output.contains("Command cancelled"), "{output}");
    assert!(!output.contains("never"), "{output}");
}
