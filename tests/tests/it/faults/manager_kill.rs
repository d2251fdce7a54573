//! kill -9 the manager while a command runs: `redpepper-ctl run` fails at once with a
//! one-line error (exit 2), the command goes on running on the agent, the manager is
//! restarted on the same ports, the agents come back by themselves (their backoff), and
//! the command's result reaches the restarted manager (the agent's outbox resends
//! unconfirmed results on its new session): a `command_result` event for that command
//! id on `/v1/events`.

use std::time::Instant;

use redpepper_tests::{free_port, Proc, Signal, TIMEOUT};

use super::{agent_logged, builder, HeldCommand};
use crate::support::admin::ctl_cmd;

#[test]
fn kill_9_the_manager_mid_command_then_restart_it() {
    let (tls_port, admin_port) = (free_port(), free_port());
    let mut f = builder(&["a1", "a2"])
        .extra(&format!("bind_port: {tls_port}\n"))
        .admin_bind(&format!("127.0.0.1:{admin_port}"))
        .build();
    f.spawn_manager();
    let a1 = f.spawn_agent("a1");
    let a2 = f.spawn_agent("a2");
    f.manager().connected("a1", 0);
    f.manager().connected("a2", 0);

    let held = HeldCommand::new(f.dir.path(), "kill9");
    let (run, id) = held.run_with_ctl(&f, "a1");

    // kill -9: the caller gets a one-line error at once (exit 2), not a hang.
    let a1_mark = a1.line_count();
    let a2_mark = a2.line_count();
    f.manager().proc.signal(Signal::SIGKILL).unwrap();
    let status = run.wait_exit(TIMEOUT).unwrap();
    let _ = run.wait_for_line(|_| false, std::time::Duration::from_secs(5));
    let stderr: Vec<String> = run
        .tagged_lines()
        .into_iter()
        .filter(|l| l.stream == redpepper_tests::Stream::Stderr)
        .map(|l| l.text)
        .collect();
    assert_eq!(status.code(), Some(2), "{}", run.tail(20));
    let url = format!("http://127.0.0.1:{admin_port}");
    let want = format!("error: cannot reach the manager at {url}: connection lost while reading: ");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(stderr[0].starts_with(&want), "want {want}…: {stderr:?}");

    // The agents notice, and the command ends while no manager is there.
    agent_logged(&a1, a1_mark, "disconnected from manager");
    agent_logged(&a2, a2_mark, "disconnected from manager");
    held.finish();

    // Restart on the same ports, a1 frozen until the event stream is read: a2 comes
    // back by itself within its backoff (1 s doubling, 64 s cap).
    let paused = a1.pause();
    let down = Instant::now();
    f.spawn_manager();
    let (_, peer) = f.manager().connected("a2", 0);
    eprintln!(
        "a2 back {:?} after the restart began ({peer})",
        down.elapsed()
    );
    let watch = Proc::spawn("watch", ctl_cmd(&f, &["watch", "--json"]));
    subscribed(&f, &watch);
    paused.resume();
    f.manager().connected("a1", 0);
    watch
        .wait_for_json(
            |v| v["type"] == "authenticated" && v["agent"] == "a1",
            TIMEOUT,
        )
        .unwrap();

    // Nothing lost: the result made while the manager was away reaches the new one.
    let result = watch
        .wait_for_json(
            |v| v["type"] == "command_result" && v["command_id"] == id.as_str(),
            TIMEOUT,
        )
        .unwrap_or_else(|e| {
            panic!(
                "the result of {id} never reached the restarted manager: {e}\nagent a1:\n{}",
                a1.tail(20)
            )
        });
    assert_eq!(result["agent"], "a1", "{result}");
    assert_eq!(result["success"], true, "{result}");
    assert!(
        result["output"]
            .as_str()
            .is_some_and(|o| o.contains(&held.output)),
        "{result}"
    );
}

/// Wait until `watch` (`redpepper-ctl watch --json`) is subscribed: agents claiming an
/// unknown id are started until the stream shows one's `auth_failed` (a stream only
/// shows what happens after it subscribed).
fn subscribed(f: &redpepper_tests::fleet::Fleet, watch: &Proc) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let _probe = f.spawn_impostor("probe");
        let seen = watch.wait_for_json(
            |v| v["type"] == "auth_failed" && v["agent"] == "probe",
            std::time::Duration::from_secs(5),
        );
        if seen.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the event stream never showed an event: {}",
            watch.tail(20)
        );
    }
}
