//! The README's first command, `redpepper-manager demo`, on each transport: a manager
//! and agents in one process, every command succeeding, a clean exit.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use redpepper_tests::rabbitmq::{Perms, RabbitNode};
use redpepper_tests::{bin_command, Proc, TIMEOUT};

fn demo(transport: &str, extra: &[&str]) -> Proc {
    let mut cmd = bin_command("redpepper-manager");
    cmd.args(["demo", "--transport", transport, "--agents", "3"])
        .args(extra);
    let proc = Proc::spawn(&format!("demo-{transport}"), cmd);
    let status = proc.wait_exit(TIMEOUT * 2).unwrap();
    assert!(
        status.success(),
        "demo on {transport}: {status}\n{}",
        proc.tail(60)
    );
    proc
}

fn assert_ran_everything(proc: &Proc, transport: &str) {
    let out = proc.stdout_lines().join("\n");
    assert!(
        out.contains("All 3 agent(s) connected"),
        "{transport}:\n{out}"
    );
    for i in 1..=3 {
        for op in ["echo.Echo", "command.Run"] {
            let line = format!("[demo-agent-{i}] {op}: succeeded");
            assert!(out.contains(&line), "{transport}: no `{line}` in\n{out}");
        }
        assert!(
            out.contains(&format!("[demo-agent-{i}] ping round trip")),
            "{transport}:\n{out}"
        );
    }
    assert!(
        out.contains("Hello from the RedPepper demo"),
        "{transport}:\n{out}"
    );
    assert!(
        out.contains("all commands succeeded"),
        "{transport}:\n{out}"
    );
    assert!(!out.contains("FAILED"), "{transport}:\n{out}");
}

#[test]
fn demo_on_tls() {
    let proc = demo("tls", &[]);
    assert_ran_everything(&proc, "tls");
}

#[test]
fn demo_on_websocket() {
    let proc = demo("websocket", &[]);
    assert_ran_everything(&proc, "websocket");
    // Loopback only: the demo never listens on every interface.
    let out = proc.stdout_lines().join("\n");
    assert!(out.contains("127.0.0.1:"), "{out}");
    assert!(!out.contains("0.0.0.0"), "{out}");
}

#[test]
fn demo_on_amqp() {
    let node = RabbitNode::shared();
    node.add_user("demo", "demo-pw", "demo", &Perms::all());
    let url = node.amqp_url("demo", "demo-pw", "demo");
    let proc = demo("amqp", &["--amqp-url", &url]);
    assert_ran_everything(&proc, "amqp");
}

#[test]
fn demo_on_amqp_without_a_broker_fails_at_once_saying_why() {
    // Nothing listens on a port just bound and released.
    let port = redpepper_tests::free_port();
    let url = format!("amqp://demo:demo-pw@127.0.0.1:{port}/%2f");
    let mut cmd = bin_command("redpepper-manager");
    cmd.args(["demo", "--transport", "amqp", "--amqp-url", &url]);
    // As on a machine without RabbitMQ: no private node can be started.
    cmd.env("REDPEPPER_DEMO_RABBITMQ", "/nonexistent/rabbitmq-server");
    let proc = Proc::spawn("demo-no-broker", cmd);
    let status = proc.wait_exit(TIMEOUT).unwrap();
    assert!(!status.success(), "{}", proc.tail(20));
    let said = proc.tail(400);
    assert!(
        said.contains(&format!(
            "no broker answers at amqp://demo@127.0.0.1:{port}"
        )),
        "{said}"
    );
    assert!(said.contains("rabbitmq-server"), "{said}");
    assert!(!said.contains("demo-pw"), "{said}");
    // At once: no agent was started, so no retry warnings.
    assert!(!said.contains("demo-agent-1"), "{said}");
}

/// Where RabbitMQ is installed and nothing answers at the broker URL, the demo starts a
/// private node, runs everything through it and stops it.
#[test]
fn demo_on_amqp_with_no_broker_running_starts_a_private_node() {
    assert!(
        redpepper_tests::rabbitmq::installed(),
        "rabbitmq-server is not installed: run scripts/test"
    );
    let port = redpepper_tests::free_port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let proc = demo("amqp", &["--amqp-url", &url]);
    assert_ran_everything(&proc, "amqp");
    let said = proc.tail(400);
    assert!(said.contains("starting a private RabbitMQ node"), "{said}");
    assert!(said.contains("Private RabbitMQ node stopped"), "{said}");
    let node_port: u16 = said
        .split("Private RabbitMQ node ")
        .nth(1)
        .and_then(|rest| rest.split("@127.0.0.1:").nth(1))
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no private node URL in the output:\n{said}"));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", node_port)).is_err(),
        "the private node on port {node_port} still answers after the demo"
    );
}
