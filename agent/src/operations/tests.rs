//! Unit tests of single operations (no session): their output as RedPepper renders it.
#![allow(clippy::unwrap_used)]

use super::*;

/// An operation to run without a session.
struct Cmd {
    cmdtype: String,
    args: Vec<Value>,
    kwargs: Vec<(Value, Value)>,
}

fn cmd(cmdtype: &str, kwargs: Vec<(&str, Value)>) -> Cmd {
    Cmd {
        cmdtype: cmdtype.into(),
        args: vec![],
        kwargs: kwargs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    }
}

async fn run_operation(c: &Cmd) -> Result<OpResult, OpError> {
    let changed = Changed::default();
    do_operation(
        None,
        &c.cmdtype,
        &c.args,
        &c.kwargs,
        &changed,
        &OpControl::default(),
    )
    .await
}

/// Runs an operation that must run to its end (success or not).
async fn ran(c: Cmd) -> OpResult {
    match run_operation(&c).await {
        Ok(r) => r,
        Err(e) => panic!("{} could not run: {e}", c.cmdtype),
    }
}

/// Runs an operation that must fail to run (RedPepper's exception path): the
/// command's failed result, as sent.
async fn refused(c: Cmd) -> String {
    match run_operation(&c).await {
        Ok(r) => panic!("{} ran: {r}", c.cmdtype),
        Err(e) => {
            let r = OpResult::command_failed(&c.cmdtype, &e);
            assert!(!r.succeeded);
            r.to_string()
        }
    }
}

#[tokio::test]
async fn noop_and_echo_render_like_redpepper() {
    let r = ran(cmd("noop.Noop", vec![])).await;
    assert_eq!(r.to_string(), "Operation no-op succeeded:\n");
    let r = ran(cmd("echo.Echo", vec![("message", Value::from("hello"))])).await;
    assert_eq!(
        r.to_string(),
        "Operation echo.Echo(\"hello\") succeeded:\nhello"
    );
    let r = ran(cmd(
        "echo.Echo",
        vec![
            ("message", Value::from("abc")),
            ("reverse", Value::from(true)),
        ],
    ))
    .await;
    assert!(r.succeeded);
    assert_eq!(r.output, "cba\n");
}

#[tokio::test]
async fn run_reports_output_status_and_failure() {
    let r = ran(cmd(
        "command.Run",
        vec![("command", Value::from("echo out; echo err >&2; exit 3"))],
    ))
    .await;
    assert!(!r.succeeded && r.changed);
    let text = r.to_string();
    assert!(
        text.contains("out") && text.contains("Stderr:\nerr"),
        "{text}"
    );
    assert!(text.contains("Command failed with return code 3"), "{text}");
    // Killed by a signal: Python's negative return code.
    let r = ran(cmd(
        "command.Run",
        vec![("command", Value::from("kill -9 $$"))],
    ))
    .await;
    assert_eq!(
        r.to_string(),
        "Operation Run(\"kill -9 $$\") failed (changed):\nCommand failed with return code -9"
    );
    let r = ran(cmd(
        "command.Run",
        vec![
            ("command", Value::from("cat; echo $FOO; pwd")),
            ("stdin", Value::from("in ")),
            ("cwd", Value::from("/tmp")),
            (
                "env",
                Value::Map(vec![(Value::from("FOO"), Value::from(42))]),
            ),
        ],
    ))
    .await;
    assert!(r.succeeded, "{r}");
    assert!(r.output == "in 42\n/tmp\n", "{}", r.output);
}

#[tokio::test]
async fn run_without_shell_takes_a_list_or_one_program_name() {
    let list = Value::Array(vec![
        Value::from("printf"),
        Value::from("%s|%s"),
        Value::from("a b"),
        Value::from("c"),
    ]);
    let r = ran(cmd(
        "command.Run",
        vec![("command", list), ("shell", Value::from(false))],
    ))
    .await;
    assert!(r.succeeded, "{r}");
    assert!(r.output.starts_with("a b|c\n"), "{}", r.output);
    // A string without a shell is one program name, as with Python's Popen: the
    // words are not split.
    let text = refused(cmd(
        "command.Run",
        vec![
            ("command", Value::from("echo hi")),
            ("shell", Value::from(false)),
        ],
    ))
    .await;
    assert!(text.contains("cannot start \"echo hi\""), "{text}");
}

#[tokio::test]
async fn run_in_the_background_and_encodings() {
    let text = refused(cmd(
        "command.Run",
        vec![
            ("command", Value::from("true")),
            ("wait", Value::from(false)),
        ],
    ))
    .await;
    assert!(
        text.contains("Cannot capture output if not waiting"),
        "{text}"
    );
    let r = ran(cmd(
        "command.Run",
        vec![
            ("command", Value::from("true")),
            ("wait", Value::from(false)),
            ("capture_stdout", Value::from(false)),
            ("capture_stderr", Value::from(false)),
        ],
    ))
    .await;
    assert_eq!(
        r.to_string(),
        "Operation Run(\"true &\") succeeded:\n$ true &"
    );
    let r = ran(cmd(
        "command.Run",
        vec![
            ("command", Value::from("printf '\\351'")),
            ("encoding", Value::from("latin-1")),
        ],
    ))
    .await;
    assert!(r.output.starts_with("\u{e9}\n"), "{:?}", r.output);
    let text = refused(cmd(
        "command.Run",
        vec![
            ("command", Value::from("true")),
            ("encoding", Value::from("ebcdic")),
        ],
    ))
    .await;
    assert!(
        text.contains("encoding \"ebcdic\" is not supported"),
        "{text}"
    );
}

#[tokio::test]
async fn run_as_a_user_never_falls_back_to_the_agents_own() {
    let text = refused(cmd(
        "command.Run",
        vec![
            ("command", Value::from("id -u")),
            ("user", Value::from("no-such-user-redpepper")),
        ],
    ))
    .await;
    assert!(
        text.contains("no such user \"no-such-user-redpepper\""),
        "{text}"
    );
    // Running as the agent's own uid works; as root (when we are not) it must fail
    // to start, never run as us.
    let me = nix::unistd::Uid::current().as_raw();
    let r = ran(cmd(
        "command.Run",
        vec![
            ("command", Value::from("id -u")),
            ("user", Value::from(i64::from(me))),
        ],
    ))
    .await;
    assert!(r.output.starts_with(&format!("{me}\n")), "{}", r.output);
    if me == 0 {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        let r = ran(cmd(
            "command.Run",
            vec![
                ("command", Value::from("id -u; id -g; echo $HOME")),
                ("user", Value::from("nobody")),
            ],
        ))
        .await;
        let want = format!("{}\n{}\n{}\n", nobody.uid, nobody.gid, nobody.dir.display());
        assert!(r.output.starts_with(&want), "{}", r.output);
    } else {
        let text = refused(cmd(
            "command.Run",
            vec![
                ("command", Value::from("id -u")),
                ("user", Value::from("root")),
            ],
        ))
        .await;
        assert!(text.contains("cannot start"), "{text}");
    }
}

#[tokio::test]
async fn unknown_operation_fails_naming_it_as_redpepper_does() {
    let text = refused(cmd("nope.Nope", vec![])).await;
    assert!(
        text.contains("Failed to execute command 'nope.Nope':"),
        "{text}"
    );
    assert_eq!(
        text,
        "Operation nope.Nope failed:\nFailed to execute command 'nope.Nope':\n\
         operation nope.Nope is not available in this agent"
    );
    // Not `module.Class`: RedPepper's own error.
    let text = refused(cmd("bad", vec![])).await;
    assert!(
        text.ends_with(":\nValueError: Invalid operation type"),
        "{text}"
    );
}

#[tokio::test]
async fn arguments_are_bound_as_python_binds_them() {
    let text = refused(cmd(
        "echo.Echo",
        vec![("message", Value::from("x")), ("bogus", Value::from(1))],
    ))
    .await;
    assert!(
        text.ends_with("\nTypeError: Echo.__init__() got an unexpected keyword argument 'bogus'"),
        "{text}"
    );
    let text = refused(cmd("echo.Echo", vec![])).await;
    assert!(
        text.ends_with(
            "\nTypeError: Echo.__init__() missing 1 required positional argument: 'message'"
        ),
        "{text}"
    );
    let mut c = cmd("noop.Noop", vec![]);
    c.args = vec![Value::from(1)];
    let text = refused(c).await;
    assert!(
        text.ends_with("\nTypeError: Noop.__init__() takes 1 positional argument but 2 were given"),
        "{text}"
    );
    let text = refused(cmd("echo.Echo", vec![("message", Value::from(5))])).await;
    assert!(
        text.ends_with("\nTypeError: unsupported operand type(s) for +: 'int' and 'str'"),
        "{text}"
    );
    // A false `if` skips the operation; RedPepper names the result by its type.
    let r = ran(cmd(
        "echo.Echo",
        vec![("message", Value::from("x")), ("if", Value::from(false))],
    ))
    .await;
    assert_eq!(
        r.to_string(),
        "Operation echo.Echo succeeded:\nCondition not met"
    );
}
