//! Timeout, cancel and a dropped run stop the whole process group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => matches!(
            stat.rsplit_once(')')
                .and_then(|(_, s)| s.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
    }
}

/// Waits (generously, but less than the `sleep 1000` the tests start) until process
/// `pid` has ended. Nothing signals the end of a
/// process that is not our child, so this looks at /proc until then.
async fn wait_ended(pid: i32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ended(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pids(output: &str) -> Vec<i32> {
    output.lines().filter_map(|l| l.parse().ok()).collect()
}

#[tokio::test]
async fn a_timeout_stops_the_whole_process_group() {
    let r = ran(&[
        (
            "command",
            Value::from("sleep 1000 & echo $!; sh -c 'sleep 1000 & echo $!; wait' & wait"),
        ),
        ("timeout", Value::from(0.5)),
    ])
    .await;
    assert!(!r.succeeded);
    assert!(r.output.ends_with("Command timed out after 0.5s\n"), "{r}");
    let found = pids(&r.output);
    assert_eq!(found.len(), 2, "{r}");
    for pid in found {
        wait_ended(pid).await;
    }
    // An integer too, positionally as well (our extension comes last).
    let mut positional: Vec<Value> = vec![Value::Nil; 12];
    positional[0] = Value::from("sleep 1000");
    positional[11] = Value::from(1);
    let r = run(
        &OpArgs {
            args: &positional,
            kwargs: &[],
        },
        &RunLimits::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.output, "Command timed out after 1s\n");
}

#[tokio::test]
async fn a_group_ignoring_sigterm_is_killed_after_the_grace() {
    let r = ran(&[
        (
            "command",
            Value::from("trap '' TERM; echo started; sleep 1000 & echo $!; wait"),
        ),
        ("timeout", Value::from(0.2)),
    ])
    .await;
    assert!(r.output.starts_with("started\n"), "{r}");
    assert!(r.output.ends_with("Command timed out after 0.2s\n"), "{r}");
    for pid in pids(&r.output) {
        wait_ended(pid).await;
    }
}

#[tokio::test]
async fn bad_timeouts_are_refused() {
    for bad in [
        Value::from(0),
        Value::from(-1.5),
        Value::from("5"),
        Value::from(true),
        Value::from(f64::NAN),
        Value::from(1e300),
    ] {
        let e = try_run(
            &[("command", Value::from("true")), ("timeout", bad.clone())],
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("`timeout` must be a number of seconds > 0"),
            "{bad}: {e}"
        );
    }
    let r = ran(&[("command", Value::from("true")), ("timeout", Value::Nil)]).await;
    assert!(r.succeeded);
}

/// A FIFO a command writes the pid of its background `sleep` to, and the command.
async fn pid_channel(dir: &Path) -> (tokio::net::unix::pipe::Receiver, String) {
    let fifo = dir.join("pid");
    let made = tokio::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .await
        .unwrap();
    assert!(made.success());
    // Read-write: no end of file before the command opens it.
    let rx = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&fifo)
        .unwrap();
    let command = format!(
        "echo more; sleep 1000 & echo $! > '{}'; wait",
        fifo.display()
    );
    (rx, command)
}

async fn read_pid(rx: tokio::net::unix::pipe::Receiver) -> i32 {
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(rx);
    tokio::time::timeout(WAIT, reader.read_line(&mut line))
        .await
        .expect("the command starts in time")
        .unwrap();
    line.trim().parse().unwrap()
}

#[tokio::test]
async fn a_cancel_stops_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, command) = pid_channel(dir.path()).await;
    let cancel = CancellationToken::new();
    let running = {
        let cancel = cancel.clone();
        tokio::spawn(async move { try_run(&[("command", Value::from(command))], &cancel).await })
    };
    let pid = read_pid(rx).await;
    cancel.cancel();
    let r = tokio::time::timeout(WAIT, running)
        .await
        .expect("cancelled in time")
        .unwrap()
        .unwrap();
    assert!(!r.succeeded);
    assert!(r.changed);
    assert_eq!(r.output, "more\nCommand cancelled\n");
    wait_ended(pid).await;
}

#[tokio::test]
async fn dropping_the_run_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, command) = pid_channel(dir.path()).await;
    let running = tokio::spawn(async move {
        try_run(
            &[("command", Value::from(command))],
            &CancellationToken::new(),
        )
        .await
    });
    let pid = read_pid(rx).await;
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    wait_ended(pid).await;
}

#[tokio::test]
async fn a_finished_commands_detached_process_keeps_running() {
    // As with RedPepper: a command that leaves a process behind (its output
    // elsewhere) ends when its shell does, and that process is not ours to stop.
    let r = ran(&[(
        "command",
        Value::from("sleep 1000 >/dev/null 2>&1 & echo $!"),
    )])
    .await;
    assert!(r.succeeded, "{r}");
    let pid = pids(&r.output)[0];
    assert!(!ended(pid), "{pid} was stopped");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
}
