//! `state` commands end to end over an in-memory session: the fake manager answers
//! `custom` with canned definitions (the wire answers recorded from Python RedPepper
//! 0.3.4 in the port spec). Expected texts are Python's, with each traceback cut to its
//! last line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redpepper_core::Value;

use crate::operations::test_support::{run_command, serves, steps, Answer, Sent};

/// Runs a `state` command (`args`: `[]` or `[NAME]`) against a manager serving `state`.
async fn run_state(args: serde_json::Value, state: serde_json::Value) -> Sent {
    run_command("state", args, serde_json::json!({}), serves(state)).await
}

#[tokio::test]
async fn a_nested_interpolated_state_runs_until_a_task_fails() {
    // Python's answer for web1's default state (spec §4.3) and its run (§4.4).
    let state = serde_json::json!([
        {"common": [
            {"hello": {"type": "echo.Echo", "message": "overridden hello port 80 tags ['a', 'b'] flag True num 1.5 esc ${site.port}"}},
            {"motd": {"type": "echo.Echo", "message": "Welcome to ${<agent_id>}"}},
            {"extra": {"type": "noop.Noop"}}]},
        {"pkgs": {"type": "echo.Echo", "message": {"name": "override-site"}}},
        {"web": {"type": "echo.Echo", "message": "groups ['base', 'web', 'extra']"}}
    ]);
    let sent = run_state(serde_json::json!([]), state).await;
    assert_eq!(
        sent.calls,
        vec![(
            vec![Value::from("stateDefinition")],
            vec![("state_name".to_owned(), Value::from(""))]
        )]
    );
    assert_eq!(
        sent.progress,
        steps(&[
            (0, 5, "Starting ..."),
            (0, 5, "Running common:hello"),
            (1, 5, "common:hello done"),
            (1, 5, "Running common:motd"),
            (2, 5, "common:motd done"),
            (2, 5, "Running common:extra"),
            (3, 5, "common:extra done"),
            (3, 5, "Running pkgs"),
        ])
    );
    assert!(!sent.success && !sent.changed);
    assert_eq!(
        sent.output,
        "Operation  failed:\n\
         \n\
         Running state common:hello:\n\
         Operation echo.Echo(\"overridden hello port 80 tags ['a', 'b'] flag True num 1.5 esc ${site.port}\") succeeded:\n\
         overridden hello port 80 tags ['a', 'b'] flag True num 1.5 esc ${site.port}\n\
         \n\
         Running state common:motd:\n\
         Operation echo.Echo(\"Welcome to ${<agent_id>}\") succeeded:\n\
         Welcome to ${<agent_id>}\n\
         \n\
         Running state common:extra:\n\
         Operation no-op succeeded:\n\
         \n\
         \n\
         Running state pkgs:\n\
         Operation pkgs failed:\n\
         Failed to execute state pkgs:\n\
         TypeError: unsupported operand type(s) for +: 'dict' and 'str'"
    );
}

#[tokio::test]
async fn a_named_state_runs_a_command_and_reports_it_changed() {
    let state = serde_json::json!([
        {"deploy": {"type": "command.Run", "command": "echo deploying override-site"}}
    ]);
    let sent = run_state(serde_json::json!(["deploy"]), state).await;
    assert_eq!(
        sent.calls[0].1,
        vec![("state_name".to_owned(), Value::from("deploy"))]
    );
    assert_eq!(
        sent.progress,
        steps(&[
            (0, 1, "Starting deploy..."),
            (0, 1, "Running deploy"),
            (1, 1, "deploy done")
        ])
    );
    assert!(sent.success && sent.changed);
    assert_eq!(
        sent.output,
        "Operation deploy succeeded (changed):\n\nRunning state deploy:\n\
         Operation Run(\"echo deploying override-site\") succeeded (changed):\n\
         deploying override-site"
    );
}

#[tokio::test]
async fn conditions_see_what_earlier_tasks_changed() {
    // Spec §4.6: `grp:b` changed, so `b` and the group `grp` count as changed, `a` not.
    let state = serde_json::json!([
        {"grp": [
            {"a": {"type": "echo.Echo", "message": "A"}},
            {"b": {"type": "command.Run", "command": "true"}}]},
        {"c1": {"type": "echo.Echo", "message": "c1", "if": {"changed": "b"}}},
        {"c2": {"type": "echo.Echo", "message": "c2", "if": {"changed": "grp"}}},
        {"c3": {"type": "echo.Echo", "message": "c3", "if": {"changed": "a"}}},
        {"c4": {"type": "echo.Echo", "message": "c4", "if": {"not changed": "a"}}},
        {"c5": {"type": "echo.Echo", "message": "c5",
                "if": [{"cmd": "true"}, {"path isdir": "/tmp"}, {"not path exists": "/nonexistent"}]}},
        {"c6": {"type": "echo.Echo", "message": "c6", "if": {"cmd 1,2": "exit 2"}}},
        {"c7": {"type": "echo.Echo", "message": "c7", "if": {"any": [false, "TRUE"]}}},
        {"c8": {"type": "echo.Echo", "message": "c8", "if": {"not": {"changed": "x"}}}},
        {"c9": {"type": "echo.Echo", "message": "c9", "if": {"changed": "prev"}}},
        {"c10": {"type": "echo.Echo", "message": "c10", "if": false}}
    ]);
    let sent = run_command(
        "state",
        serde_json::json!(["cond"]),
        serde_json::json!({"changed_operations": ["prev"]}),
        serves(state),
    )
    .await;
    assert!(sent.success && sent.changed, "{}", sent.output);
    assert_eq!(sent.progress.len(), 1 + 2 * 12);
    assert_eq!(sent.progress.last(), Some(&(12, 12, "c10 done".to_owned())));
    let ran =
        |n: &str| format!("Running state {n}:\nOperation echo.Echo(\"{n}\") succeeded:\n{n}\n");
    let skipped =
        |n: &str| format!("Running state {n}:\nOperation echo.Echo succeeded:\nCondition not met");
    for n in ["c1", "c2", "c4", "c5", "c6", "c7", "c8", "c9"] {
        assert!(sent.output.contains(&ran(n)), "{n} ran: {}", sent.output);
    }
    for n in ["c3", "c10"] {
        assert!(
            sent.output.contains(&skipped(n)),
            "{n} skipped: {}",
            sent.output
        );
    }
    assert!(sent.output.starts_with(
        "Operation cond succeeded (changed):\n\nRunning state grp:a:\n\
         Operation echo.Echo(\"A\") succeeded:\nA\n\nRunning state grp:b:\n\
         Operation Run(\"true\") succeeded (changed):\n\n"
    ));
}

#[tokio::test]
async fn a_failing_task_stops_the_state() {
    let state = serde_json::json!([
        {"a": {"type": "echo.Echo", "message": "A"}},
        {"b": {"type": "command.Run", "command": "echo out; echo err >&2; exit 4"}},
        {"c": {"type": "echo.Echo", "message": "C"}}
    ]);
    let sent = run_state(serde_json::json!(["fail"]), state).await;
    assert_eq!(
        sent.progress,
        steps(&[
            (0, 3, "Starting fail..."),
            (0, 3, "Running a"),
            (1, 3, "a done"),
            (1, 3, "Running b")
        ])
    );
    assert!(!sent.success && sent.changed);
    assert_eq!(
        sent.output,
        "Operation fail failed (changed):\n\nRunning state a:\nOperation echo.Echo(\"A\") succeeded:\nA\n\n\
         Running state b:\nOperation Run(\"echo out; echo err >&2; exit 4\") failed (changed):\n\
         out\nStderr:\nerr\nCommand failed with return code 4"
    );
}

#[tokio::test]
async fn an_operation_this_agent_lacks_fails_its_task_and_stops_the_state() {
    let state = serde_json::json!([
        {"a": {"type": "echo.Echo", "message": "A"}},
        // Checked before the condition, as RedPepper looks the class up first.
        {"b": {"type": "nosuchmod.X", "if": false}},
        {"c": {"type": "echo.Echo", "message": "C"}}
    ]);
    let sent = run_state(serde_json::json!([]), state).await;
    assert_eq!(sent.progress.last(), Some(&(1, 3, "Running b".to_owned())));
    assert!(!sent.success && !sent.changed);
    assert_eq!(
        sent.output,
        "Operation  failed:\n\nRunning state a:\nOperation echo.Echo(\"A\") succeeded:\nA\n\n\
         Running state b:\nOperation b failed:\nFailed to execute state b:\n\
         operation nosuchmod.X is not available in this agent"
    );
    assert_eq!(
        sent.calls.len(),
        1,
        "no operationModule request: {:?}",
        sent.calls
    );
}

#[tokio::test]
async fn the_managers_error_answer_fails_the_command() {
    let refuse: Answer = Box::new(|_, kwargs| {
        let name = kwargs[0].1.as_str().unwrap_or_default();
        Err(format!("Invalid state name: '{name}'"))
    });
    let sent = run_command(
        "state",
        serde_json::json!(["../x"]),
        serde_json::json!({}),
        refuse,
    )
    .await;
    assert!(sent.progress.is_empty());
    assert!(!sent.success && !sent.changed);
    assert_eq!(
        sent.output,
        "Operation state failed:\nFailed to execute command 'state':\n\
         redpepper.common.rpc.RPCError: Invalid state name: '../x'"
    );
    let sent = run_command(
        "state",
        serde_json::json!(["a", "b"]),
        serde_json::json!({}),
        serves(serde_json::json!([])),
    )
    .await;
    assert!(sent.calls.is_empty());
    assert_eq!(
        sent.output,
        "Operation state failed:\nFailed to execute command 'state':\n\
         ValueError: State command takes at most one argument"
    );
}

#[tokio::test]
async fn a_malformed_tree_fails_before_anything_runs() {
    for (state, error) in [
        (
            serde_json::json!([{"ok": {"type": "noop.Noop"}}, {"a": "str"}]),
            "TypeError: State [{'ok': {'type': 'noop.Noop'}}, {'a': 'str'}] task a is not a dictionary or list",
        ),
        (
            serde_json::json!([{"g": [{"a": {"type": "noop.Noop"}, "b": {}}]}]),
            "ValueError: State group or name not a single-key dict",
        ),
        (serde_json::json!({"a": 1}), "ValueError: State x is not a list"),
    ] {
        let sent = run_command("state", serde_json::json!(["x"]), serde_json::json!({}), serves(state)).await;
        assert!(sent.progress.is_empty(), "{:?}", sent.progress);
        assert_eq!(
            sent.output,
            format!("Operation state failed:\nFailed to execute command 'state':\n{error}")
        );
    }
    // A task without `type` fails the whole command once it is reached.
    let state = serde_json::json!([{"a": {"type": "noop.Noop"}}, {"b": {"message": "x"}}]);
    let sent = run_state(serde_json::json!(["x"]), state).await;
    assert_eq!(sent.progress.last(), Some(&(1, 2, "Running b".to_owned())));
    assert_eq!(
        sent.output,
        "Operation state failed:\nFailed to execute command 'state':\nKeyError: 'type'"
    );
    let sent = run_command(
        "state",
        serde_json::json!(["empty"]),
        serde_json::json!({}),
        serves(serde_json::json!([])),
    )
    .await;
    assert_eq!(sent.progress, steps(&[(0, 0, "Starting empty...")]));
    assert_eq!(sent.output, "Operation empty succeeded:\n");
    assert!(sent.success);
}

#[tokio::test]
async fn a_single_operation_still_reports_zero_of_one_and_one_of_one() {
    let sent = run_command(
        "echo.Echo",
        serde_json::json!([]),
        serde_json::json!({"message": "hello", "reverse": true}),
        serves(serde_json::json!([])),
    )
    .await;
    assert_eq!(
        sent.progress,
        steps(&[(0, 1, "Running echo.Echo..."), (1, 1, "Finished echo.Echo")])
    );
    assert_eq!(
        sent.output,
        "Operation echo.Echo(\"hello\" reverse) succeeded:\nolleh"
    );
    assert!(sent.calls.is_empty());
}
