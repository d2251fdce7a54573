//! kill -9 node B of a two-node cluster (its own, on vhost `cluster-failover`) while
//! one of its agents runs a command started from A and a call forwarded from A waits
//! on another: the call fails at once with an error naming B; B's TLS, WebSocket
//! (`manager_host` / `websocket.url` lists `[B, A]`) and AMQP agents come back on A by
//! themselves; the command's result reaches the operator's `redpepper-ctl run` on A;
//! B restarted rejoins, and an agent that connects to it later shows in A's view.

use std::sync::mpsc;

use redpepper_tests::fleet::{http, ADMIN_TOKEN};
use redpepper_tests::serde_json::json;
use redpepper_tests::{Proc, TIMEOUT};

use super::*;
use crate::faults::HeldCommand;

#[test]
fn kill_9_a_node_its_agents_move_and_nothing_hangs_or_is_lost() {
    let mut w = World::new(
        "cluster-failover",
        &[A, B],
        &["f-tls", "f-ws", "f-late"],
        &["f-amqp"],
        Vec::new(),
        // A frozen agent is not dropped by its manager's pings while the test holds a
        // call on it (agents still ping their manager every second).
        "ping_interval: 0\n",
        false,
    );
    // B alone first, so every agent starts on B (A is not up for the lists' second
    // entry, nor for the hello queue).
    w.fleet.spawn_node(B);
    w.start_agent("f-tls", Via::Tls(&[B, A]));
    w.start_agent("f-ws", Via::Websocket(&[B, A]));
    w.start_agent("f-amqp", Via::Amqp);
    for id in ["f-tls", "f-ws", "f-amqp"] {
        w.connected_on(B, id, 0);
    }
    w.fleet.spawn_node(A);
    let on_b = [("f-tls", B), ("f-ws", B), ("f-amqp", B)];
    w.wait_view(A, &on_b, &[]);

    // A command on f-tls (on B), started by an operator on A; it runs until told.
    let held = HeldCommand::new(w.fleet.dir.path(), "failover");
    let command = format!("command={}", held.command);
    let run = Proc::spawn(
        "ctl-run-on-a",
        ctl_cmd_on(
            &w.fleet,
            A,
            &["run", "f-tls", "command.Run", "-k", &command, "--json"],
        ),
    );
    let started = run
        .wait_for_json(|v| v["event"] == "progress" && v["current"] == 0, TIMEOUT)
        .unwrap_or_else(|e| {
            panic!(
                "the command on f-tls (on {B}) did not start from {A}: {e}\n{}",
                w.diag(&[])
            )
        });
    let command_id = started["command_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    held.pid();

    // A call from A to f-ws, held by B: f-ws is frozen, the request waits in its socket.
    let f_ws = &w.agents.iter().find(|(a, _)| a == "f-ws").unwrap().1;
    let paused = f_ws.pause();
    let call = forwarded_call(&w, "f-ws");

    w.fleet.kill_node(B);

    // The caller on A hears at once that B is gone (the call's own timeout is 50 s:
    // a timeout answer would not name the node).
    let answer = call.recv_timeout(TIMEOUT).unwrap_or_else(|e| {
        panic!(
            "the call from {A} to f-ws (on {B}, killed) hung: {e}\n{}",
            w.diag(&[])
        )
    });
    let body = answer.json();
    assert!(
        [502, 503].contains(&answer.status),
        "call to f-ws after {B} died: want 502/503, got {} {body}",
        answer.status
    );
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(B),
        "the error of a call forwarded to the dead node must name it ({B}): {body}"
    );
    paused.resume();
    // The command ends while its agent's manager is gone.
    held.finish();

    // Every agent of B is back, on A.
    let on_a = [("f-tls", A), ("f-ws", A), ("f-amqp", A)];
    w.wait_view(A, &on_a, &[&run]);

    // The operator on A gets the command's result.
    let status = run.wait_exit(TIMEOUT * 2).unwrap_or_else(|e| {
        panic!(
            "`redpepper-ctl run` on {A} never ended after f-tls moved: {e}\n{}",
            w.diag(&[])
        )
    });
    let result = run
        .stdout_lines()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .find(|v| v["event"] == "result");
    let Some(result) = result else {
        panic!(
            "no result line for command {command_id} on f-tls from {A}:\n{}\n{}",
            run.tail(20),
            w.diag(&[])
        );
    };
    assert_eq!(result["command_id"], command_id.as_str(), "{result}");
    assert_eq!(result["success"], true, "{result}\n{}", w.diag(&[]));
    assert!(
        result["output"]
            .as_str()
            .is_some_and(|o| o.contains(&held.output)),
        "want output {:?}: {result}",
        held.output
    );
    assert_eq!(status.code(), Some(0), "{}", run.tail(20));

    // B comes back on its ports and rejoins; an agent that connects to it later is
    // listed by A with node B, and callable from A.
    w.fleet.spawn_node(B);
    wait_until(
        &format!("{A} to see the restarted {B} alive"),
        || w.diag(&[]),
        || {
            let (body, by_name) = cluster_view(w.fleet.node(A))?;
            match by_name.get(B) {
                Some(e) if e["state"] == "alive" => Ok(()),
                _ => Err(body.to_string()),
            }
        },
    );
    w.start_agent("f-late", Via::Tls(&[B]));
    w.connected_on(B, "f-late", 0);
    w.wait_view(A, &[("f-late", B), ("f-tls", A)], &[]);
    let r = ctl_on(&w.fleet, A, &["call", "f-late", "echo", "after", "--json"]);
    assert_eq!(
        r.code,
        0,
        "call f-late (on the restarted {B}) from {A}: {r}\n{}",
        w.diag(&[])
    );
    assert_eq!(r.json()["data"]["args"], json!(["after"]), "{r}");
}

/// `POST /v1/agents/{id}/calls` `echo` (timeout 50 s) on A from a thread, returned
/// once B, which holds the agent, has it in flight.
fn forwarded_call(w: &World, id: &str) -> mpsc::Receiver<redpepper_tests::fleet::Answer> {
    let (tx, rx) = mpsc::channel();
    let admin = w.fleet.node(A).admin();
    let path = format!("/v1/agents/{id}/calls");
    std::thread::spawn(move || {
        let body = json!({"method": "echo", "args": ["in flight"], "timeout": 50});
        let _ = tx.send(http(admin, "POST", &path, Some(ADMIN_TOKEN), Some(&body)));
    });
    let b = w.fleet.node(B);
    wait_until(
        &format!("the call from {A} to {id} in flight on {B}"),
        || w.diag(&[]),
        || {
            if let Ok(a) = rx.try_recv() {
                panic!(
                    "the call from {A} to {id} ended before {B} had it in flight: {} {}\n{}",
                    a.status,
                    a.body,
                    w.diag(&[])
                );
            }
            let agent = b.get(&format!("/v1/agents/{id}")).json();
            if agent["calls_in_flight"] == 1 {
                Ok(())
            } else {
                Err(format!("{B}'s /v1/agents/{id}: {agent}"))
            }
        },
    );
    rx
}
