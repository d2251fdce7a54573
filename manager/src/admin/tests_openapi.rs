//! `openapi.json` against the router: every route of [`ROUTES`] is described (with
//! `security: []` exactly when it needs no token), and every operation described is
//! served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::Value as Json;

use super::tests::start;
use super::ROUTES;

/// `path` with its `{param}`s filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let f = start();
    let (status, spec) = f.json("GET", "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut missing = Vec::new();
    for route in ROUTES {
        let (verb, path) = (route.verb.openapi(), route.path);
        let op = &spec["paths"][path][verb];
        if !op.is_object() {
            missing.push(format!("{verb} {path}: not described"));
            continue;
        }
        let open = op["security"] == Json::Array(vec![]);
        if open == route.token {
            missing.push(format!(
                "{verb} {path}: `security: []` must be there exactly when no token is needed"
            ));
        }
        if !op["responses"].is_object() {
            missing.push(format!("{verb} {path}: no responses"));
        }
    }
    assert!(
        missing.is_empty(),
        "openapi.json is behind the router:\n{}",
        missing.join("\n")
    );
    assert!(ROUTES.len() >= 18, "the table lists the routes");
}

#[tokio::test]
async fn every_operation_in_the_openapi_document_is_served() {
    let f = start();
    let (_, spec) = f.json("GET", "/v1/openapi.json", None).await;
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for verb in item.as_object().unwrap().keys() {
            if verb == "parameters" {
                continue;
            }
            operations += 1;
            let method = verb.to_uppercase();
            let (status, body) = f.send(&method, &concrete(path), None).await;
            // Only an error answer is read: `/v1/events` streams for ever.
            if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let err: Json = serde_json::from_slice(&bytes).unwrap();
                let error = err["error"].as_str().unwrap_or_default();
                assert!(
                    err["code"] != "method_not_allowed" && !error.starts_with("no such endpoint"),
                    "{method} {path} is described but not served: {err}"
                );
            }
        }
    }
    assert!(operations >= 20, "{operations} operations described");
}

#[tokio::test]
async fn the_openapi_document_describes_the_newer_parameters_and_fields() {
    let f = start();
    let (_, spec) = f.json("GET", "/v1/openapi.json", None).await;
    let params = |path: &str, verb: &str| -> Vec<String> {
        spec["paths"][path][verb]["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(params("/v1/agents", "get"), ["target", "node", "down"]);
    assert_eq!(params("/v1/jobs", "get"), ["limit"]);
    assert_eq!(params("/v1/events", "get"), ["agent", "types", "node"]);
    assert_eq!(params("/v1/runs", "post"), ["stream"]);
    let run_body = &spec["paths"]["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"];
    for field in [
        "target",
        "match",
        "operation",
        "args",
        "kwargs",
        "timeout",
        "batch",
    ] {
        assert!(run_body[field].is_object(), "POST /v1/runs body: {field}");
    }
    let schemas = &spec["components"]["schemas"];
    assert!(schemas["RunSummary"]["properties"]["not_connected"].is_object());
    assert!(schemas["DownAgent"]["properties"]["last_seen"].is_object());
    assert!(schemas["Agent"]["properties"]["state"].is_object());
    for field in [
        "run_id",
        "operation",
        "target",
        "node",
        "finished_unix",
        "summary",
    ] {
        assert!(
            schemas["Job"]["properties"][field].is_object(),
            "Job: {field}"
        );
    }
}
