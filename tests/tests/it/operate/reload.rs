//! SIGHUP applies a new agents.yml (a removed agent is disconnected with Bye
//! "revoked" and cannot come back), a new admin token and a new certificate, and
//! the manager stays up; `/healthz` and `/readyz` answer without the token; admin
//! actions leave an audit line; the log (a pipe, not a terminal) has no escape codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use redpepper_tests::*;

use super::{http_status, write_private};

const S1: &str = "s3cret-for-a1";
const S2: &str = "s3cret-for-a2";
const TOKEN_1: &str = "first-admin-token-0123456789";
const TOKEN_2: &str = "second-admin-token-0123456789";

fn program(name: &str, config_file: &Path) -> Proc {
    let mut cmd = bin_command(name);
    cmd.arg("--config-file")
        .arg(config_file)
        .env_remove("RUST_LOG");
    Proc::spawn(name, cmd)
}

/// SHA-256 fingerprint of a PEM certificate (`openssl x509`), from `pem` text.
fn fingerprint_of_pem(pem: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(pem).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(text.contains("Fingerprint="), "openssl x509: {out:?}");
    text
}

/// The fingerprint of the certificate a new TLS connection to `port` is shown.
fn served_fingerprint(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fingerprint_of_pem(&out.stdout)
}

#[test]
fn sighup_applies_agents_token_and_certificate_and_keeps_the_manager_up() {
    let dir = scratch_dir();
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let token_file = dir.path().join("admin.token");
    write_private(&token_file, TOKEN_1);
    let admin_port = free_port();
    let mut config = PyManagerConfig::new(&dir.path().join("manager"), &certs);
    config.write_agents(&[("a1", S1, &["127.0.0.1/32"]), ("a2", S2, &["127.0.0.1/32"])]);
    config.bind_port = free_port();
    config.extra = vec![
        format!("admin_bind: '127.0.0.1:{admin_port}'"),
        format!("admin_token_file: '{}'", token_file.display()),
    ];
    let manager_yml = config.write();
    let manager = program("redpepper-manager", &manager_yml);
    manager
        .wait_for_line(|l| l.contains("admin API listening"), TIMEOUT)
        .unwrap();
    let agent = |id: &str, secret: &str| {
        let yml =
            PyAgentConfig::new(&dir.path().join(id), &certs, config.bind_port, id, secret).write();
        let p = program("redpepper-agent", &yml);
        p.wait_for_line(|l| l.contains("connected to manager"), TIMEOUT)
            .unwrap();
        p
    };
    let a1 = agent("a1", S1);
    let a2 = agent("a2", S2);
    let admin = format!("http://127.0.0.1:{admin_port}");

    // Health without the token; everything else needs it.
    assert_eq!(http_status("GET", &format!("{admin}/healthz"), None), 200);
    assert_eq!(http_status("GET", &format!("{admin}/readyz"), None), 200);
    assert_eq!(http_status("GET", &format!("{admin}/v1/status"), None), 401);
    assert_eq!(
        http_status("GET", &format!("{admin}/v1/status"), Some(TOKEN_1)),
        200
    );
    let old_cert = fingerprint_of_pem(&std::fs::read(&certs.manager_cert).unwrap());
    assert_eq!(served_fingerprint(config.bind_port), old_cert);

    // a2 leaves agents.yml, a new token: SIGHUP.
    config.write_agents(&[("a1", S1, &["127.0.0.1/32"])]);
    write_private(&token_file, TOKEN_2);
    let mark = manager.line_count();
    manager.signal(Signal::SIGHUP).unwrap();
    manager
        .wait_for_line_after(mark, |l| l.contains("reload done"), TIMEOUT)
        .unwrap();
    let bye = a2
        .wait_for_line(|l| l.contains("disconnected from manager"), TIMEOUT)
        .unwrap();
    assert!(bye.contains("revoked"), "{bye}");
    // Its reconnection is refused.
    manager
        .wait_for_line_after(
            mark,
            |l| l.contains("authentication failed") && l.contains("a2"),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(
        http_status("GET", &format!("{admin}/v1/status"), Some(TOKEN_1)),
        401
    );
    assert_eq!(
        http_status("GET", &format!("{admin}/v1/status"), Some(TOKEN_2)),
        200
    );
    assert!(
        a1.find_line(|l| l.contains("disconnected from manager"))
            .is_none(),
        "a1 kept its session: {}",
        a1.tail(20)
    );

    // DELETE /v1/agents/a1: disconnected now (it may come back), one audit line.
    let mark = manager.line_count();
    assert_eq!(
        http_status("DELETE", &format!("{admin}/v1/agents/a1"), Some(TOKEN_2)),
        200
    );
    let bye = a1
        .wait_for_line(|l| l.contains("disconnected from manager"), TIMEOUT)
        .unwrap();
    assert!(bye.contains("disconnected by an operator"), "{bye}");
    let (_, audit) = manager
        .wait_for_line_after(mark, |l| l.contains("admin action"), TIMEOUT)
        .unwrap();
    assert!(audit.contains("DELETE /v1/agents/a1"), "{audit}");
    assert!(audit.contains("peer=127.0.0.1:"), "{audit}");
    manager
        .wait_for_line_after(
            mark,
            |l| l.contains("agent connected") && l.contains("a1"),
            TIMEOUT,
        )
        .unwrap();

    // A new certificate and key: SIGHUP; a new connection sees it.
    let new_certs = TestCerts::generate(&dir.path().join("certs2"));
    std::fs::copy(&new_certs.manager_cert, &certs.manager_cert).unwrap();
    std::fs::copy(&new_certs.manager_key, &certs.manager_key).unwrap();
    let new_cert = fingerprint_of_pem(&std::fs::read(&new_certs.manager_cert).unwrap());
    assert_ne!(new_cert, old_cert);
    let mark = manager.line_count();
    manager.signal(Signal::SIGHUP).unwrap();
    let (_, done) = manager
        .wait_for_line_after(mark, |l| l.contains("reload done"), TIMEOUT)
        .unwrap();
    assert!(done.contains("certificate"), "{done}");
    assert_eq!(served_fingerprint(config.bind_port), new_cert);

    // Still up; its log, written to a pipe, has no colour codes.
    assert_eq!(manager.exit_status(), None, "{}", manager.tail(40));
    assert!(
        manager.lines().iter().all(|l| !l.contains('\u{1b}')),
        "escape codes in the log: {}",
        manager.tail(40)
    );
    manager.signal(Signal::SIGTERM).unwrap();
    let status = manager.wait_exit(TIMEOUT).unwrap();
    assert!(status.success(), "{status:?}\n{}", manager.tail(40));
}
