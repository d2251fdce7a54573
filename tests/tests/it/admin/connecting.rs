//! How `redpepper-ctl` finds and reaches the manager: the admin API's URL, TLS and
//! token from the manager's configuration file; one-line errors for a manager that is
//! not there; a manager refusing a token file others can read. Each test starts its
//! own manager (or none).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use redpepper_tests::fleet::Fleet;
use redpepper_tests::serde_json::json;
use redpepper_tests::{bin, free_port, Proc, TIMEOUT};

use crate::support::admin::{admin_url, finish};

#[test]
fn ctl_finds_a_tls_admin_api_from_the_manager_config() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut f = Fleet::builder().admin_bind(&bind).admin_tls().build();
    f.spawn_manager();
    assert_eq!(admin_url(&f), format!("https://127.0.0.1:{port}"));
    // No --manager, no --token-file: both come from the configuration file.
    let ctl = |args: &[&str], ca: bool| {
        let mut cmd = Command::new(bin("redpepper-ctl"));
        cmd.arg("--config-file")
            .arg(&f.manager_yml)
            .args(args)
            .env_remove("REDPEPPER_MANAGER")
            .env_remove("REDPEPPER_ADMIN_TOKEN")
            .env_remove("REDPEPPER_ADMIN_TOKEN_FILE")
            .env_remove("REDPEPPER_ADMIN_CA_FILE");
        if ca {
            cmd.env("REDPEPPER_ADMIN_CA_FILE", &f.certs.ca_cert);
        }
        finish(cmd)
    };
    let r = ctl(&["status"], true);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.iter().any(|l| l.starts_with("listening tls")),
        "{r}"
    );
    let r = ctl(&["agents", "--json"], true);
    assert_eq!(r.json(), json!({"agents": []}), "{r}");
    // Without the CA the certificate is not trusted: a connection error, exit 2.
    let r = ctl(&["agents"], false);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr[0].starts_with("error: cannot reach the manager at https://"),
        "{r}"
    );
}

#[test]
fn unreachable_manager_and_unsafe_token_file_are_one_line_errors() {
    let port = free_port();
    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["--manager", &format!("http://127.0.0.1:{port}"), "agents"])
        .env("REDPEPPER_ADMIN_TOKEN", "t");
    let r = finish(cmd);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stderr.len(), 1, "{r}");
    assert!(
        r.stderr[0].contains(&format!(
            "cannot reach the manager at http://127.0.0.1:{port}"
        )),
        "{r}"
    );

    let mut cmd = Command::new(bin("redpepper-ctl"));
    cmd.args(["agents"])
        .env_remove("REDPEPPER_MANAGER")
        .args(["--config-file", "/nonexistent/manager.yml"]);
    let r = finish(cmd);
    assert_eq!(r.code, 2, "{r}");

    // The manager refuses a token file that others can read.
    let f = Fleet::builder().admin_token_mode(0o644).build();
    let manager = Proc::spawn("manager", f.manager_command());
    let status = manager.wait_exit(TIMEOUT).unwrap();
    assert!(!status.success());
    manager
        .wait_for_line(
            |l| l.contains("admin_token_file") && l.contains("chmod 600"),
            TIMEOUT,
        )
        .unwrap();
}
