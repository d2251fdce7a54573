//! Tests of `command.Run`'s bounds: output capture, timeout and cancel, environment,
//! user switching.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use nix::unistd::{Gid, User};
use redpepper_core::Value;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::capture::Capture;
use super::encoding::Encoding;
use super::{env, group_list, run, RunLimits};
use crate::operations::test_support::WAIT;
use crate::operations::{OpArgs, OpResult};

fn kwargs(list: &[(&str, Value)]) -> Vec<(Value, Value)> {
    list.iter()
        .map(|(k, v)| (Value::from(*k), v.clone()))
        .collect()
}

async fn try_run(list: &[(&str, Value)], cancel: &CancellationToken) -> Result<OpResult, String> {
    let kwargs = kwargs(list);
    let args = OpArgs {
        args: &[],
        kwargs: &kwargs,
    };
    run(&args, &RunLimits::default(), cancel).await
}

/// Runs a command that must run (succeed or fail).
async fn ran(list: &[(&str, Value)]) -> OpResult {
    try_run(list, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("could not run: {e}"))
}

/// The number in the `... N bytes omitted ...` line, and the text without that line.
fn omitted(text: &str) -> (u64, String) {
    let start = text.find("... ").expect("an omission marker");
    let end = start
        + text[start..]
            .find(" bytes omitted ...\n")
            .expect("marker end");
    let n = text[start + 4..end].parse().expect("a byte count");
    let rest = format!(
        "{}{}",
        &text[..start],
        &text[end + " bytes omitted ...\n".len()..]
    );
    (n, rest)
}

// ---- capture -------------------------------------------------------------

#[test]
fn output_within_the_cap_is_kept_whole() {
    let mut c = Capture::new(8);
    c.push(b"abc");
    c.push(b"defgh");
    assert_eq!(c.into_text(Encoding::Utf8), "abcdefgh");
    let mut c = Capture::new(4);
    c.push(b"abcde");
    assert_eq!(
        c.into_text(Encoding::Utf8),
        "ab\n... 1 bytes omitted ...\nde"
    );
    let c = Capture::new(0);
    assert_eq!(c.into_text(Encoding::Utf8), "");
}

#[test]
fn a_long_stream_keeps_whole_lines_at_both_ends_and_counts_the_rest() {
    let mut c = Capture::new(1000);
    let mut total = 0;
    let text: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
    // Chunks of varied sizes, as pipes deliver them.
    let mut rest = text.as_bytes();
    let mut size = 1;
    while !rest.is_empty() {
        let (chunk, more) = rest.split_at(size.min(rest.len()));
        c.push(chunk);
        total += chunk.len();
        rest = more;
        size = size * 7 % 613 + 1;
        assert!(c.held() <= 1000, "{} bytes held", c.held());
    }
    let out = c.into_text(Encoding::Utf8);
    let (n, shown) = omitted(&out);
    assert_eq!(n + shown.len() as u64, total as u64, "{out}");
    let (head, tail) = out.split_once("bytes omitted ...\n").unwrap();
    assert!(head.starts_with("line 0\nline 1\n"), "{out}");
    assert!(tail.ends_with("line 9999\n"), "{out}");
    // Whole lines on both sides of the marker.
    let head_lines: Vec<&str> = head.lines().collect();
    assert!(head_lines[head_lines.len() - 2].starts_with("line "));
    assert!(tail.lines().all(|l| l.starts_with("line ")), "{out}");
    let first = tail.lines().next().unwrap();
    assert!(text.contains(&format!("\n{first}\n")), "{first}");
}

#[test]
fn the_cut_never_splits_a_character() {
    for ch in ['é', '€', '😀'] {
        for cap in 7..=20 {
            let mut c = Capture::new(cap);
            let text: String = std::iter::repeat_n(ch, 200).collect();
            for chunk in text.as_bytes().chunks(5) {
                c.push(chunk);
            }
            let out = c.into_text(Encoding::Utf8);
            assert!(!out.contains('\u{fffd}'), "{ch} cap {cap}: {out:?}");
            let (n, shown) = omitted(&out);
            // Line breaks around the marker are ours, not the stream's.
            let shown = shown.replace('\n', "").len() as u64;
            assert_eq!(n + shown, text.len() as u64, "{ch} cap {cap}: {out:?}");
        }
    }
    // One byte, one character: cut anywhere.
    let mut c = Capture::new(5);
    c.push(&[0xe9; 11]);
    assert_eq!(
        c.into_text(Encoding::Latin1),
        "éé\n... 6 bytes omitted ...\nééé"
    );
}

#[tokio::test]
async fn two_megabytes_of_output_become_head_marker_and_tail_under_the_cap() {
    let r = ran(&[("command", Value::from("seq 1 300000"))]).await;
    assert!(r.succeeded, "{r}");
    let limit = RunLimits::default().output_limit;
    assert!(r.output.len() < limit, "{} bytes", r.output.len());
    assert!(r.output.starts_with("1\n2\n3\n"), "{}", &r.output[..20]);
    assert!(r.output.ends_with("\n299999\n300000\n"));
    let total: u64 = (1..=300_000u64)
        .map(|i| i.to_string().len() as u64 + 1)
        .sum();
    let (n, shown) = omitted(&r.output);
    assert_eq!(n + shown.len() as u64, total);
}

/// The process's peak resident size in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_gibibyte_stream_completes_with_a_bounded_result() {
    let before = peak_kib();
    let r = ran(&[(
        "command",
        Value::from("head -c 1073741824 /dev/zero | tr '\\0' x"),
    )])
    .await;
    let grew = peak_kib().saturating_sub(before);
    eprintln!("1 GiB of output: peak RSS grew by {grew} KiB");
    assert!(r.succeeded, "{}", &r.output[..100]);
    // stdout's half of the cap (stderr is captured too): 64 KiB head, 64 KiB tail.
    let marker = "\n... 1073610752 bytes omitted ...\n";
    assert_eq!(r.output.len(), 128 * 1024 + marker.len() + 1);
    assert!(r.output.contains("x\n... 1073610752 bytes omitted ...\nx"));
    // Holding the stream would take a gibibyte.
    assert!(grew < 256 * 1024, "peak RSS grew by {grew} KiB");
}

#[tokio::test]
async fn stderr_has_its_own_half_and_one_stream_alone_has_the_whole_cap() {
    let r = ran(&[("command", Value::from("seq 1 100000 >&2; echo out"))]).await;
    assert!(
        r.output.starts_with("out\nStderr:\n1\n2\n"),
        "{}",
        &r.output[..40]
    );
    assert!(r.output.ends_with("\n100000\n") && r.output.contains(" bytes omitted ...\n"));
    let r = ran(&[
        ("command", Value::from("seq 1 100000")),
        ("capture_stderr", Value::from(false)),
    ])
    .await;
    let (_, shown) = omitted(&r.output);
    let limit = RunLimits::default().output_limit;
    assert!(
        shown.len() > limit / 2 && shown.len() <= limit,
        "{}",
        shown.len()
    );
}

// ---- timeout, cancel, drop ----------------------------------------------

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

// ---- environment ---------------------------------------------------------

fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    list.iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn the_agents_secrets_are_scrubbed() {
    let agent = vars(&[
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/root"),
        ("REDPEPPER_AGENT_SECRET", "s3cret"),
        ("REDPEPPER_WEBSOCKET__URL", "wss://m.example"),
        ("redpepper_x", "lower case too"),
        ("http_proxy", "http://proxy:3128"),
        ("https_proxy", "http://u:p@proxy:3128"),
        ("HTTPS_PROXY", "http://user@proxy:3128"),
        ("all_proxy", "u:p@proxy:1080"),
        ("NO_PROXY", "localhost"),
        ("DATABASE_URL", "postgres://app:pw@db/app"),
        ("NOTE", "mirror at https://u:p@mirror.example/x and more"),
        ("SITE", "https://example.com/a@b"),
        ("REPO", "git@github.com:org/repo"),
        ("WHO", "https://user@host/"),
    ]);
    let kept: Vec<String> = env::scrubbed(agent)
        .into_iter()
        .map(|(k, _)| k.into_string().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "PATH",
            "HOME",
            "http_proxy",
            "NO_PROXY",
            "SITE",
            "REPO",
            "WHO"
        ]
    );
}

#[test]
fn a_login_environment_has_the_users_variables_and_the_agents_locale() {
    let agent = vars(&[
        ("PATH", "/opt/agent/bin"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("LC_TIME", "de_DE.UTF-8"),
        ("LC_X", "https://u:p@h/"),
        ("TZ", "Europe/Berlin"),
        ("TERM", "xterm"),
        ("SECRET", "x"),
        ("REDPEPPER_AGENT_SECRET", "s3cret"),
    ]);
    let user = env::LoginUser {
        name: "alice",
        root: false,
        home: Path::new("/home/alice"),
        shell: Path::new(""),
    };
    assert_eq!(
        env::login(&user, agent.clone()),
        vars(&[
            ("HOME", "/home/alice"),
            ("USER", "alice"),
            ("LOGNAME", "alice"),
            ("SHELL", "/bin/sh"),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("LANG", "C.UTF-8"),
            ("LC_TIME", "de_DE.UTF-8"),
            ("TZ", "Europe/Berlin"),
            ("TERM", "xterm"),
        ])
    );
    let root = env::LoginUser {
        name: "root",
        root: true,
        home: Path::new("/root"),
        shell: Path::new("/bin/bash"),
    };
    let env = env::login(&root, vec![]);
    assert_eq!(env[3], ("SHELL".into(), "/bin/bash".into()));
    assert_eq!(
        env[4],
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        )
    );
}

#[tokio::test]
async fn the_operators_env_wins_over_scrubbing() {
    let env = Value::Map(vec![
        (Value::from("REDPEPPER_TOKEN"), Value::from("explicit")),
        (Value::from("DB"), Value::from("postgres://a:b@db/x")),
    ]);
    let r = ran(&[
        ("command", Value::from("echo $REDPEPPER_TOKEN $DB")),
        ("env", env),
    ])
    .await;
    assert_eq!(r.output, "explicit postgres://a:b@db/x\n");
}

// ---- user switching ------------------------------------------------------

/// Whether this test may switch users; under CI it must (the containers run as root).
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v != "true"),
        "{test} must run as root under CI"
    );
    eprintln!("{test}: skipped, not root");
    false
}

/// A user other than root listed as a member in /etc/group, with that group.
fn member_of_a_group() -> Option<(User, Gid)> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let gid = fields.get(2)?.parse().ok()?;
        fields.get(3)?.split(',').find_map(|name| {
            let user = User::from_name(name).ok()??;
            (!user.uid.is_root()).then_some((user, Gid::from_raw(gid)))
        })
    })
}

fn gid_set(text: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = text
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[tokio::test]
async fn a_user_gets_a_login_environment_and_its_groups() {
    if !root_or_skip("a_user_gets_a_login_environment_and_its_groups") {
        return;
    }
    let (user, member_gid) = match member_of_a_group() {
        Some((user, gid)) => (user, Some(gid)),
        None => (User::from_name("nobody").unwrap().unwrap(), None),
    };
    let r = ran(&[
        ("command", Value::from("id -u; id -g; id -G; env")),
        ("user", Value::from(user.name.as_str())),
        (
            "env",
            Value::Map(vec![(Value::from("EXTRA"), Value::from(1))]),
        ),
    ])
    .await;
    assert!(r.succeeded, "{r}");
    let lines: Vec<&str> = r.output.lines().collect();
    assert_eq!(lines[0], user.uid.to_string());
    assert_eq!(lines[1], user.gid.to_string());
    let mut want: Vec<u32> = group_list(&user, user.gid)
        .unwrap()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(gid_set(lines[2]), want, "{r}");
    if let Some(gid) = member_gid {
        assert!(gid_set(lines[2]).contains(&gid.as_raw()), "{r}");
    }
    // Never the agent's (root's) groups.
    assert!(!gid_set(lines[2]).contains(&0), "{r}");
    let env: Vec<(&str, &str)> = lines[3..]
        .iter()
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |k: &str| env.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(get("HOME"), user.dir.to_str());
    assert_eq!(get("USER"), Some(user.name.as_str()));
    assert_eq!(get("LOGNAME"), Some(user.name.as_str()));
    assert_eq!(get("PATH"), Some("/usr/local/bin:/usr/bin:/bin"));
    assert_eq!(get("EXTRA"), Some("1"));
    let allowed = |k: &str| {
        matches!(
            k,
            "HOME"
                | "USER"
                | "LOGNAME"
                | "SHELL"
                | "PATH"
                | "LANG"
                | "TZ"
                | "TERM"
                | "EXTRA"
                | "PWD"
                | "OLDPWD"
                | "SHLVL"
                | "_"
        ) || k.starts_with("LC_")
    };
    for (k, _) in &env {
        assert!(allowed(k), "{k} leaked into the login environment: {r}");
    }
}

#[tokio::test]
async fn a_group_replaces_the_primary_group_and_keeps_the_users_others() {
    if !root_or_skip("a_group_replaces_the_primary_group_and_keeps_the_users_others") {
        return;
    }
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .or(nix::unistd::Group::from_name("nobody").unwrap())
        .expect("a nogroup or nobody group");
    let (user, member_gid) = match member_of_a_group() {
        Some((user, gid)) => (user, Some(gid)),
        None => (User::from_name("nobody").unwrap().unwrap(), None),
    };
    let r = ran(&[
        ("command", Value::from("id -g; id -G")),
        ("user", Value::from(user.name.as_str())),
        ("group", Value::from(nogroup.name.as_str())),
    ])
    .await;
    let lines: Vec<&str> = r.output.lines().collect();
    assert_eq!(lines[0], nogroup.gid.to_string(), "{r}");
    if let Some(gid) = member_gid {
        assert!(gid_set(lines[1]).contains(&gid.as_raw()), "{r}");
    }
    // A group alone: that primary group, the agent's own user.
    let r = ran(&[
        ("command", Value::from("id -u; id -g")),
        ("group", Value::from(nogroup.name.as_str())),
    ])
    .await;
    assert_eq!(r.output, format!("0\n{}\n", nogroup.gid));
}
