//! The tests of [`Proc`](super::Proc).

use super::*;

fn sh(script: &str) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    Proc::spawn("sh", cmd)
}

const T: Duration = Duration::from_secs(30);

#[test]
fn captures_both_streams_and_the_exit_status() {
    let proc = sh("echo one; echo two >&2; echo three; exit 3");
    assert_eq!(proc.wait_for_line(|l| l == "three", T).unwrap(), "three");
    let status = proc.wait_exit(T).unwrap();
    assert_eq!(status.code(), Some(3));
    proc.wait_for_line(|_| false, T).unwrap_err();
    let lines = proc.tagged_lines();
    assert!(lines.contains(&Line {
        stream: Stream::Stderr,
        text: "two".into()
    }));
    assert_eq!(proc.stdout_lines(), vec!["one", "three"]);
}

#[test]
fn waiting_consumes_lines_in_order() {
    let proc = sh("echo hit 1; echo miss; echo hit 2");
    assert_eq!(
        proc.wait_for_line(|l| l.starts_with("hit"), T).unwrap(),
        "hit 1"
    );
    assert_eq!(
        proc.wait_for_line(|l| l.starts_with("hit"), T).unwrap(),
        "hit 2"
    );
    assert_eq!(proc.find_line(|l| l == "miss").as_deref(), Some("miss"));
}

#[test]
fn a_closed_output_fails_the_wait_at_once_with_the_tail() {
    let proc = sh("echo goodbye; exit 1");
    let started = Instant::now();
    let err = proc
        .wait_for_line(|l| l == "never", Duration::from_secs(600))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(60), "{err}");
    assert!(err.contains("[out] goodbye"), "{err}");
    assert!(err.contains("output closed"), "{err}");
}

#[test]
fn a_timeout_names_the_process() {
    let proc = sh("echo waiting; exec sleep 1000");
    proc.wait_for_line(|l| l == "waiting", T).unwrap();
    let err = proc
        .wait_for_line(|l| l == "never", Duration::from_millis(100))
        .unwrap_err();
    assert!(err.starts_with("sh (pid"), "{err}");
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn stdin_lines_reach_the_process() {
    let proc = Proc::spawn("cat", Command::new("cat"));
    proc.send_line("hello cat").unwrap();
    proc.wait_for_line(|l| l == "hello cat", T).unwrap();
    proc.close_stdin();
    assert!(proc.wait_exit(T).unwrap().success());
}

#[test]
fn sigterm_is_delivered() {
    let proc = sh("trap 'echo got term; exit 7' TERM; echo armed; while :; do sleep 0.05; done");
    proc.wait_for_line(|l| l == "armed", T).unwrap();
    proc.signal(Signal::SIGTERM).unwrap();
    proc.wait_for_line(|l| l == "got term", T).unwrap();
    assert_eq!(proc.wait_exit(T).unwrap().code(), Some(7));
}

#[test]
fn drop_kills_the_whole_process_group() {
    let proc = sh("sleep 1000 & echo child $!; wait");
    let line = proc.wait_for_line(|l| l.starts_with("child "), T).unwrap();
    let child: i32 = line["child ".len()..].parse().unwrap();
    let child = Pid::from_raw(child);
    assert!(kill(child, None).is_ok(), "the child runs");
    drop(proc);
    // The grandchild was killed; it is reaped by init, so poll briefly.
    let deadline = Instant::now() + T;
    while kill(child, None).is_ok() && is_alive(child) {
        assert!(Instant::now() < deadline, "child survived the drop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A killed but unreaped process (zombie) still accepts signal 0.
fn is_alive(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn json_lines_are_matched_on_stdout() {
    let proc = sh(r#"echo 'not json'; echo '{"event": "a"}'; echo '{"event": "b", "n": 2}'"#);
    let v = proc.wait_for_json(|v| v["event"] == "b", T).unwrap();
    assert_eq!(v["n"], 2);
}

#[tokio::test]
async fn async_waits_do_not_block() {
    let proc = sh("echo first; sleep 0.2; echo second");
    let line = proc
        .wait_for_line_async(|l| l == "second", T)
        .await
        .unwrap();
    assert_eq!(line, "second");
    assert!(proc.wait_exit_async(T).await.unwrap().success());
    let err = proc
        .wait_for_line_async(|l| l == "never", T)
        .await
        .unwrap_err();
    assert!(err.contains("output closed"), "{err}");
}

#[test]
fn expect_returns_the_keyed_value_and_reports_errors() {
    let proc = sh(
        r#"echo '{"other": 1}'; echo '{"ready": {"port": 7}}' >&2; echo '{"ready": {"port": 8}}'; echo '{"error": "boom"}'; exec cat"#,
    );
    let ready = proc.expect("ready", T).unwrap();
    assert_eq!(ready["port"], 8, "stderr lines are not reports");
    let err = proc.expect("result", T).unwrap_err().to_string();
    assert!(err.contains("boom"), "{err}");
    proc.send_line(r#"{"result": 3}"#).unwrap();
    assert_eq!(proc.expect("result", T).unwrap(), 3);
    proc.close_stdin();
    let err = proc.expect("never", T).unwrap_err().to_string();
    assert!(err.contains("output closed"), "{err}");
}

#[test]
fn finish_ends_a_process_that_exits_on_end_of_input() {
    let proc = Proc::try_spawn_in("cat", Command::new("cat"), Group::Parent).unwrap();
    let shared = Arc::clone(&proc.shared);
    proc.finish(T);
    let exit = shared.lock().exit;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let err = Proc::try_spawn("nope", Command::new("/nonexistent/program")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/program"), "{err}");
}
