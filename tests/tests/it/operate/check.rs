//! `--check-config` of both programs: a good configuration passes and is printed with
//! its secrets redacted; each bad one fails (exit 1) naming the key and the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use redpepper_tests::*;

use super::{check_config, write_private};

const SECRET: &str = "very-secret-agent-password";
const TOKEN: &str = "check-config-admin-token-0123456789";

/// A good manager configuration in `dir` (admin API on); returns its file.
fn manager_files(dir: &TempDir) -> (PyManagerConfig, PathBuf) {
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let token_file = dir.path().join("admin.token");
    write_private(&token_file, TOKEN);
    let mut config = PyManagerConfig::new(&dir.path().join("manager"), &certs);
    config.write_agents(&[("a1", SECRET, &["127.0.0.1/32"])]);
    config.bind_port = 7051;
    config.extra = vec![
        "admin_bind: '127.0.0.1:7050'".to_owned(),
        format!("admin_token_file: '{}'", token_file.display()),
        "amqp:\n  url: 'amqp://user:broker-password@127.0.0.1:5672/%2f'".to_owned(),
    ];
    let file = config.write();
    (config, file)
}

fn fails_naming(program: &str, args: &[&str], names: &[&str]) {
    let (code, out, err) = check_config(program, args);
    assert_eq!(code, 1, "{program} {args:?} passed:\n{out}\n{err}");
    for name in names {
        assert!(
            err.contains(name),
            "{program} {args:?}: {name} not named:\n{err}"
        );
    }
}

#[test]
fn manager_check_config_passes_on_good_and_names_the_key_on_bad() {
    let dir = scratch_dir();
    let (config, file) = manager_files(&dir);
    let file_s = file.display().to_string();

    let (code, out, err) = check_config("redpepper-manager", &["--config-file", &file_s]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains("agents.yml"), "{out}");
    assert!(out.contains("admin_token_file"), "{out}");
    assert!(out.contains(&file_s), "{out}");
    assert!(!out.contains("broker-password"), "secret printed: {out}");
    assert!(!out.contains(TOKEN), "token printed: {out}");

    // A bad value, from the file and from -c.
    let bad = dir.path().join("bad-port.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&bad, text.replace("bind_port: 7051", "bind_port: seventy")).unwrap();
    fails_naming(
        "redpepper-manager",
        &["--config-file", &bad.display().to_string()],
        &["bind_port", &bad.display().to_string()],
    );
    fails_naming(
        "redpepper-manager",
        &["--config-file", &file_s, "-c", "no_such_key=1"],
        &["no_such_key"],
    );
    // A missing certificate file.
    fails_naming(
        "redpepper-manager",
        &[
            "--config-file",
            &file_s,
            "-c",
            "tls_cert_file=/nonexistent/cert.pem",
        ],
        &["tls_cert_file", "/nonexistent/cert.pem"],
    );
    // A key that is not the certificate's.
    let other = TestCerts::generate(&dir.path().join("other"));
    fails_naming(
        "redpepper-manager",
        &[
            "--config-file",
            &file_s,
            "-c",
            &format!("tls_key_file={}", other.manager_key.display()),
        ],
        &["tls_key_file", &other.manager_key.display().to_string()],
    );
    // An admin token readable by others.
    let token = config.dir.parent().unwrap().join("admin.token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails_naming(
        "redpepper-manager",
        &["--config-file", &file_s],
        &["admin_token_file", &token.display().to_string()],
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    // agents.yml that does not parse.
    let agents = config.data_dir.join("agents.yml");
    std::fs::write(&agents, "a1: [unclosed\n").unwrap();
    fails_naming(
        "redpepper-manager",
        &["--config-file", &file_s],
        &[&agents.display().to_string()],
    );
}

#[test]
fn agent_check_config_passes_on_good_and_names_the_key_on_bad() {
    let dir = scratch_dir();
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let file = PyAgentConfig::new(&dir.path().join("agent"), &certs, 7051, "a1", SECRET).write();
    let file_s = file.display().to_string();
    let (code, out, err) = check_config("redpepper-agent", &["--config-file", &file_s]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains("a1"), "{out}");
    assert!(!out.contains(SECRET), "secret printed: {out}");

    fails_naming(
        "redpepper-agent",
        &["--config-file", &file_s, "-c", "manager_port=not-a-port"],
        &["manager_port"],
    );
    fails_naming(
        "redpepper-agent",
        &[
            "--config-file",
            &file_s,
            "-c",
            "tls_ca_file=/nonexistent/ca.pem",
        ],
        &["tls_ca_file", "/nonexistent/ca.pem"],
    );
}
