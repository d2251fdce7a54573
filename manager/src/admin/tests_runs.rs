//! Runs in progress: `run_id`, `GET /v1/runs`, `DELETE /v1/runs/{run_id}`, and the
//! `cancel` sent to agents when a run is cancelled or its timeout passes. The agents
//! are Router-based fakes that accept `command` and never finish it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use redpepper_core::{Router, Value};
use serde_json::{json, Value as Json};
use tokio::sync::mpsc;

use super::tests::{start, Fixture, WAIT};

/// What a fake agent was asked: `("command", id)` or `("cancel", id)`.
type Asked = mpsc::UnboundedReceiver<(&'static str, String)>;

/// An agent that accepts every `command` (and never sends its result) and, when
/// `can_cancel`, answers `cancel` with true; without it, `cancel` is "Method cancel
/// not found" as with RedPepper 0.3.4.
fn fake_agent(can_cancel: bool) -> (Router, Asked) {
    let (tx, rx) = mpsc::unbounded_channel();
    let id_of = |ctx: &redpepper_core::CallContext| {
        ctx.kwarg("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let t = tx.clone();
    let mut router = Router::new().method("command", move |ctx| {
        let _ = t.send(("command", id_of(&ctx)));
        async move { Ok(Value::Nil) }
    });
    if can_cancel {
        router = router.method("cancel", move |ctx| {
            let _ = tx.send(("cancel", id_of(&ctx)));
            async move { Ok(Value::Boolean(true)) }
        });
    }
    (router, rx)
}

async fn asked(rx: &mut Asked) -> (&'static str, String) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the agent was asked in time")
        .unwrap()
}

/// Start a plain (non-streaming) run in a task; its answer comes from the handle.
fn spawn_run(f: &Fixture, body: Json) -> tokio::task::JoinHandle<(StatusCode, Json)> {
    let app = f.app.clone();
    let f2 = Fixture {
        manager: f.manager.clone(),
        dialer: f.dialer.clone(),
        app,
    };
    tokio::spawn(async move { f2.json("POST", "/v1/runs", Some(body)).await })
}

#[tokio::test]
async fn a_run_is_listed_then_cancelled_and_its_agents_are_told() {
    let f = start();
    let (router, mut asked_web1) = fake_agent(true);
    let _a = f.agent("web1", router).await;
    let run = spawn_run(
        &f,
        json!({"target": "web1", "operation": "sleep.Sleep", "timeout": 3600}),
    );
    let (what, command_id) = asked(&mut asked_web1).await;
    assert_eq!(what, "command");

    let (status, body) = f.json("GET", "/v1/runs", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &body["runs"][0];
    assert_eq!(listed["target"], "web1");
    assert_eq!(listed["operation"], "sleep.Sleep");
    assert_eq!(listed["pending"], json!(["web1"]));
    let run_id = listed["run_id"].as_str().unwrap().to_owned();

    let (status, body) = f.json("DELETE", &format!("/v1/runs/{run_id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["cancelling"],
        json!([{"agent": "web1", "command_id": command_id}])
    );
    assert_eq!(asked(&mut asked_web1).await, ("cancel", command_id.clone()));

    let (status, body) = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["run_id"], json!(run_id));
    let result = &body["results"][0];
    assert_eq!(result["code"], "cancelled", "{body}");
    assert_eq!(result["command_id"], json!(command_id));
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("the agent stopped the command"),
        "{body}"
    );

    // Over: no longer listed, and cancelling it again is a 404.
    let (_, body) = f.json("GET", "/v1/runs", None).await;
    assert_eq!(body["runs"], json!([]));
    let (status, body) = f.json("DELETE", &format!("/v1/runs/{run_id}"), None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}

#[tokio::test]
async fn at_the_run_timeout_agents_still_running_are_sent_cancel() {
    let f = start();
    let (router, mut asked_web1) = fake_agent(true);
    let _a = f.agent("web1", router).await;
    let (status, stream) = f
        .send(
            "POST",
            "/v1/runs?stream=true",
            Some(json!({"target": "web1", "operation": "sleep.Sleep", "timeout": 0.2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let bytes = tokio::time::timeout(WAIT, axum::body::to_bytes(stream, usize::MAX))
        .await
        .unwrap()
        .unwrap();
    let lines: Vec<Json> = String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (_, command_id) = asked(&mut asked_web1).await;
    assert_eq!(asked(&mut asked_web1).await, ("cancel", command_id.clone()));
    assert_eq!(lines[0]["event"], "started");
    let run_id = lines[0]["run_id"].as_str().unwrap();
    assert_eq!(lines[1]["code"], "timeout", "{lines:?}");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .ends_with("; the agent stopped the command"));
    assert_eq!(lines[2]["event"], "summary");
    assert_eq!(lines[2]["run_id"], run_id);
}

#[tokio::test]
async fn an_agent_that_cannot_cancel_is_reported_as_such() {
    let f = start();
    let (router, mut asked_old) = fake_agent(false);
    let _a = f.agent("old1", router).await;
    let run = spawn_run(
        &f,
        json!({"target": "old1", "operation": "sleep.Sleep", "timeout": 3600}),
    );
    let (_, command_id) = asked(&mut asked_old).await;
    let (_, body) = f.json("GET", "/v1/runs", None).await;
    let run_id = body["runs"][0]["run_id"].as_str().unwrap().to_owned();
    let cancelled = f
        .manager
        .cancel_command("old1", &command_id)
        .await
        .expect("'Method cancel not found' is not an error");
    assert!(!cancelled);
    let (status, _) = f.json("DELETE", &format!("/v1/runs/{run_id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    let result = &body["results"][0];
    assert_eq!(result["code"], "cancelled");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("the agent did not stop it"),
        "{body}"
    );
    let err = f.manager.cancel_command("nobody", "x").await.unwrap_err();
    assert!(matches!(err, crate::ManagerError::NotConnected(_)), "{err}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_run_endpoints() {
    let f = start();
    let (status, spec) = f.json("GET", "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = &spec["paths"];
    assert!(paths["/v1/runs"]["post"]["responses"]["429"].is_object());
    assert!(paths["/v1/runs"]["get"].is_object());
    assert!(paths["/v1/runs/{run_id}"]["delete"]["responses"]["202"].is_object());
    let (status, body) = f.json("DELETE", "/v1/runs/nope", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}
