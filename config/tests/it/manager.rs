//! ManagerConfig: RedPepper's own files, defaults, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::path::Path;
use std::time::Duration;

use figment::Jail;
use redpepper_config::{ConfigError, ConfigFile, ManagerConfig, TransportKind, VerifyMode};

const SAMPLE: &str = include_str!("../data/redpepper-manager.yml");

use crate::support as common;
use common::{assert_missing_file, data, err_text, file_error};

#[test]
fn redpepper_sample_file_loads_with_defaults() {
    let c = ManagerConfig::from_yaml_str(SAMPLE).unwrap();
    assert_eq!(c.bind_host, "0.0.0.0");
    assert_eq!(c.bind_port, 7051);
    assert_eq!(c.session.ping_interval, Duration::from_secs(10));
    assert_eq!(c.session.ping_timeout, Duration::from_secs(5));
    assert_eq!(c.session.hello_timeout, Duration::from_secs(10));
    assert_eq!(c.session.max_message_size, 1_048_576);
    assert_eq!(c.data_base_dir, Path::new("/var/lib/redpepper/data"));
    assert_eq!(
        c.agents_file(),
        Path::new("/var/lib/redpepper/data/agents.yml")
    );
    assert_eq!(
        c.tls.cert_file.as_deref(),
        Some(Path::new("/etc/redpepper/manager-cert.pem"))
    );
    assert_eq!(
        c.tls.key_file.as_deref(),
        Some(Path::new("/etc/redpepper/manager-key.pem"))
    );
    assert_eq!(c.tls.verify_mode, VerifyMode::None);
    assert!(c.tls.check_hostname);
    assert!(!c.tls.key_file_allow_insecure);
    assert_eq!(c.transports, vec![TransportKind::Tls]);
    assert_eq!(c.websocket.bind, "0.0.0.0:7052");
    assert_eq!(c.websocket.path, "/redpepper");
    assert!(c.websocket.tls);
    assert!(c.websocket.trusted_proxies.is_empty());
    assert_eq!(c.amqp.url, "amqp://127.0.0.1:5672/%2f");
    assert_eq!(c.amqp.queue, "redpepper.manager");
    assert_eq!(c.admin_bind, None);
    // Same as Default.
    let d = ManagerConfig::default();
    assert_eq!(d.tls, c.tls);
    assert_eq!(d.websocket, c.websocket);
}

#[test]
fn filled_redpepper_file_loads_and_reports_parked_keys() {
    Jail::expect_with(|_| {
        let loaded = ManagerConfig::load_with_report(Some(&data("manager-filled.yml")), &[])
            .map_err(|e| e.to_string())?;
        let c = loaded.config;
        assert_eq!(c.bind_host, "127.0.0.1");
        assert_eq!(c.bind_port, 7061);
        assert_eq!(c.tls.ca_file.as_deref(), Some(Path::new("/tmp/rp/ca.pem")));
        assert!(!c.tls.check_hostname);
        assert_eq!(c.data_base_dir, Path::new("/tmp/rp/data"));
        let ignored: Vec<&str> = loaded
            .report
            .ignored_keys
            .iter()
            .map(|k| k.key.as_str())
            .collect();
        assert_eq!(
            ignored,
            [
                "api_bind_host",
                "api_bind_port",
                "api_session_secret_key",
                "api_tls_cert_file",
                "api_tls_key_file",
            ]
        );
        // RedPepper's command log key is honoured (JSON lines next to its SQLite file).
        assert_eq!(
            c.command_log.path(&c.data_base_dir),
            Path::new("/tmp/rp/commands.jsonl")
        );
        assert!(loaded.report.ignored_keys[0]
            .origin
            .ends_with("manager-filled.yml"));
        assert_eq!(loaded.report.files, vec![data("manager-filled.yml")]);

        // load() validates: the certificate files do not exist here.
        let e = ManagerConfig::load(Some(&data("manager-filled.yml")), &[]).unwrap_err();
        assert_missing_file(e, "tls_cert_file", "/tmp/rp/manager-cert.pem");
        Ok(())
    });
}

#[test]
fn unknown_key_names_key_and_file() {
    Jail::expect_with(|jail| {
        let path = jail.directory().join("manager.yml").display().to_string();
        let e = file_error::<ManagerConfig>(jail, "manager.yml", "bind_hots: 1.2.3.4\n");
        assert_eq!(e, format!("unknown key `bind_hots` in {path}"));
        let e = file_error::<ManagerConfig>(jail, "manager.yml", "websocket:\n  bnd: 0.0.0.0:1\n");
        assert_eq!(e, format!("unknown key `websocket.bnd` in {path}"));
        Ok(())
    });
}

#[test]
fn bad_values_name_key_file_and_expectation() {
    const TRANSPORTS: &str = "expected one of `tls`, `websocket`, `amqp`";
    let cases: &[(&str, &[&str])] = &[
        ("bind_port: seventy\n", &["`bind_port`", "expected u16"]),
        (
            "tls_verify_mode: sometimes\n",
            &["`tls_verify_mode`", "required"],
        ),
        (
            "ping_interval: -3\n",
            &["`ping_interval`", "non-negative number of seconds"],
        ),
        (
            "transports: [tls, carrier_pigeon]\n",
            &["`transports.1`", TRANSPORTS],
        ),
        // The in-memory transport is not configurable.
        ("transports: memory\n", &["`transports`", TRANSPORTS]),
        ("max_message_size: 0\n", &["`max_message_size`"]),
    ];
    Jail::expect_with(|jail| {
        for (yaml, expected) in cases {
            let e = file_error::<ManagerConfig>(jail, "manager.yml", yaml);
            for part in *expected {
                assert!(e.contains(part), "{yaml}: {e}");
            }
        }
        Ok(())
    });
}

#[test]
fn durations_accept_floats_and_zero() {
    let c =
        ManagerConfig::from_yaml_str("ping_interval: 0.5\nping_timeout: 0.25\nhello_timeout: 0\n")
            .unwrap();
    assert_eq!(c.session.ping_interval, Duration::from_millis(500));
    assert_eq!(c.session.ping_timeout, Duration::from_millis(250));
    assert_eq!(c.session.hello_timeout, Duration::ZERO);
    // The session layer gets exactly these settings.
    let session = c.session.session_config();
    assert_eq!(session.ping_interval, Duration::from_millis(500));
    assert_eq!(session.ping_timeout, Duration::from_millis(250));
    assert_eq!(session.hello_timeout, Duration::ZERO);
    assert_eq!(session.max_message_size, 1_048_576);
    assert_eq!(session.version, redpepper_core::VERSION);
    let c = ManagerConfig::from_yaml_str("ping_interval: 0\nping_timeout: 0\n").unwrap();
    assert!(c.session.ping_interval.is_zero());
    let e = err_text(ManagerConfig::from_yaml_str("ping_timeout: 0\n"));
    assert!(e.contains("`ping_timeout`"), "{e}");
}

#[test]
fn websocket_section() {
    let c = ManagerConfig::from_yaml_str(
        "transports: [tls, websocket]\nwebsocket:\n  bind: '[::]:8443'\n  path: /ws\n  tls: false\n  trusted_proxies: [10.0.0.0/8, 192.168.1.7]\n",
    )
    .unwrap();
    assert_eq!(c.transports, [TransportKind::Tls, TransportKind::WebSocket]);
    assert_eq!(c.websocket.bind, "[::]:8443");
    assert_eq!(c.websocket.path, "/ws");
    assert!(!c.websocket.tls);
    let nets: Vec<String> = c
        .websocket
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.168.1.7/32"]);

    let e = err_text(ManagerConfig::from_yaml_str(
        "transports: [websocket]\nwebsocket:\n  bind: nowhere\n",
    ));
    assert!(
        e.contains("`websocket.bind`") && e.contains("HOST:PORT"),
        "{e}"
    );
    let e = err_text(ManagerConfig::from_yaml_str(
        "transports: [websocket]\nwebsocket:\n  bind:\n",
    ));
    assert!(e.contains("`websocket.bind`"), "{e}");
    // Not an error while the websocket transport is off.
    ManagerConfig::from_yaml_str("websocket:\n  bind: nowhere\n").unwrap();
    // An empty section is fine.
    ManagerConfig::from_yaml_str("websocket:\n").unwrap();
}

#[test]
fn admission_section() {
    let d = ManagerConfig::default().admission;
    assert_eq!(d.handshake_timeout, Duration::from_secs(5));
    assert_eq!(
        (
            d.max_pending,
            d.max_pending_per_address,
            d.max_pending_per_network,
            d.max_pending_amqp
        ),
        (4096, 64, 512, 1024)
    );
    let nets = |c: &redpepper_config::AdmissionConfig| -> Vec<String> {
        c.exempt.iter().map(|n| n.to_string()).collect()
    };
    assert_eq!(nets(&d), ["127.0.0.0/8", "::1/128"]);
    assert_eq!(ManagerConfig::from_yaml_str(SAMPLE).unwrap().admission, d);
    let c = ManagerConfig::from_yaml_str(
        "admission:\n  handshake_timeout: 2.5\n  max_pending: 100\n  max_pending_per_address: 3\n  max_pending_per_network: 7\n  max_pending_amqp: 9\n  exempt: [10.0.0.0/8, 192.0.2.7]\n",
    )
    .unwrap()
    .admission;
    assert_eq!(c.handshake_timeout, Duration::from_millis(2500));
    assert_eq!(
        (
            c.max_pending,
            c.max_pending_per_address,
            c.max_pending_per_network,
            c.max_pending_amqp
        ),
        (100, 3, 7, 9)
    );
    assert_eq!(nets(&c), ["10.0.0.0/8", "192.0.2.7/32"]);
    let none = ManagerConfig::from_yaml_str("admission: {exempt: []}\n").unwrap();
    assert!(none.admission.exempt.is_empty());
    for (yaml, key) in [
        (
            "admission: {handshake_timeout: 0}",
            "`admission.handshake_timeout`",
        ),
        (
            "admission: {handshake_timeout: 1e19}",
            "`admission.handshake_timeout`",
        ),
        ("admission: {max_pending: 0}", "`admission.max_pending`"),
        (
            "admission: {max_pending_per_address: 0}",
            "`admission.max_pending_per_address`",
        ),
        (
            "admission: {max_pending_per_network: 0}",
            "`admission.max_pending_per_network`",
        ),
        (
            "admission: {max_pending_amqp: 0}",
            "`admission.max_pending_amqp`",
        ),
        ("admission: {max_pending: -1}", "`admission.max_pending`"),
        ("admission: {backlog: 5}", "admission.backlog"),
        ("admission: {exempt: [nowhere]}", "admission.exempt"),
    ] {
        let e = err_text(ManagerConfig::from_yaml_str(yaml));
        assert!(e.contains(key), "{yaml}: {e}");
    }
    // From -c, typed like a YAML scalar.
    Jail::expect_with(|_| {
        let overrides = ["admission.max_pending=12".to_owned()];
        let c = ManagerConfig::load_with_report(None, &overrides)
            .map_err(|e| e.to_string())?
            .config;
        assert_eq!(c.admission.max_pending, 12);
        Ok(())
    });
}

#[test]
fn certificate_needed_only_by_tls_listeners() {
    let c = ManagerConfig::from_yaml_str("transports: [amqp]\n").unwrap();
    assert!(!c.needs_certificate());
    assert_eq!(c.tls.cert_file, None);
    c.validate().unwrap();

    let c =
        ManagerConfig::from_yaml_str("transports: [websocket]\nwebsocket: {tls: false}\n").unwrap();
    assert!(!c.needs_certificate());

    let e = err_text(ManagerConfig::from_yaml_str("tls_cert_file:\n"));
    assert!(e.contains("`tls_cert_file`"), "{e}");

    let c =
        ManagerConfig::from_yaml_str("transports: [amqp]\namqp:\n  url: amqps://u:pw@rabbit/%2f\n")
            .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("pw"), "{debug}");
    let e = err_text(ManagerConfig::from_yaml_str(
        "transports: [amqp]\namqp: {url: 'http://x'}\n",
    ));
    assert!(e.contains("`amqp.url`"), "{e}");
}

#[test]
fn validate_accepts_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let yaml = format!(
        "tls_cert_file: {}\ntls_key_file: {}\ntls_ca_path: {}\n",
        cert.display(),
        key.display(),
        dir.path().display()
    );
    ManagerConfig::from_yaml_str(&yaml)
        .unwrap()
        .validate()
        .unwrap();
    let yaml = format!("{yaml}tls_ca_file: {}/nope.pem\n", dir.path().display());
    let e = ManagerConfig::from_yaml_str(&yaml)
        .unwrap()
        .validate()
        .unwrap_err();
    assert_missing_file(e, "tls_ca_file", "nope.pem");
}

#[test]
fn config_file_presence() {
    Jail::expect_with(|jail| {
        let missing = jail.directory().join("nope.yml");
        let e = ManagerConfig::load_with_report(Some(&missing), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::FileNotFound { .. }), "{e}");
        if !Path::new(redpepper_config::DEFAULT_MANAGER_CONFIG_FILE).exists() {
            let loaded = ManagerConfig::load_with_report(None, &[]).map_err(|e| e.to_string())?;
            assert!(loaded.report.files.is_empty());
            assert_eq!(loaded.config.bind_port, 7051);
        }
        Ok(())
    });
}

#[test]
fn toml_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "manager.toml",
            "bind_port = 7100\ntransports = [\"tls\", \"amqp\"]\n[amqp]\nqueue = \"q\"\n",
        )?;
        let path = jail.directory().join("manager.toml");
        let c = ManagerConfig::load_with_report(Some(&path), &[])
            .map_err(|e| e.to_string())?
            .config;
        assert_eq!(c.bind_port, 7100);
        assert_eq!(c.transports, [TransportKind::Tls, TransportKind::Amqp]);
        assert_eq!(c.amqp.queue, "q");
        let e = file_error::<ManagerConfig>(jail, "manager.toml", "bind_prot = 1\n");
        assert!(e.contains("bind_prot"), "{e}");
        Ok(())
    });
}

#[test]
fn yaml_syntax_error_names_file() {
    Jail::expect_with(|jail| {
        jail.create_file("manager.yml", "bind_port: [1,\n")?;
        let path = jail.directory().join("manager.yml");
        let e = ManagerConfig::load_with_report(Some(&path), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        let e = file_error::<ManagerConfig>(jail, "manager.yml", "- a\n- b\n");
        assert!(e.contains("not a mapping"), "{e}");
        Ok(())
    });
}

#[test]
fn admin_api_keys() {
    let c = ManagerConfig::from_yaml_str(
        "admin_bind: 127.0.0.1:7050\nadmin_token_file: /etc/redpepper/admin-token\n",
    )
    .unwrap();
    assert_eq!(c.admin_bind.as_deref(), Some("127.0.0.1:7050"));
    assert_eq!(
        c.admin_token_file.as_deref(),
        Some(Path::new("/etc/redpepper/admin-token"))
    );
    assert!(c.admin_tls.is_none());

    let c = ManagerConfig::from_yaml_str(
        "admin_bind: '[::1]:7050'\nadmin_token_file: /t\nadmin_tls_cert_file: /c.pem\nadmin_tls_key_file: /k.pem\nadmin_tls_key_file_allow_insecure: true\n",
    )
    .unwrap();
    let tls = c.admin_tls.unwrap();
    assert_eq!(tls.cert_file.as_deref(), Some(Path::new("/c.pem")));
    assert_eq!(tls.key_file.as_deref(), Some(Path::new("/k.pem")));
    assert!(tls.key_file_allow_insecure);

    let e = err_text(ManagerConfig::from_yaml_str("admin_bind: 127.0.0.1:7050\n"));
    assert!(e.contains("`admin_bind`"), "{e}");
    assert!(e.contains("admin_token_file"), "{e}");
    let e = err_text(ManagerConfig::from_yaml_str(
        "admin_bind: localhost\nadmin_token_file: /t\n",
    ));
    assert!(e.contains("expected HOST:PORT"), "{e}");
    let e = err_text(ManagerConfig::from_yaml_str(
        "admin_bind: 127.0.0.1:7050\nadmin_token_file: /t\nadmin_tls_cert_file: /c.pem\n",
    ));
    assert!(e.contains("admin_tls_key_file"), "{e}");
}

#[test]
fn admin_files_must_exist_when_admin_is_on() {
    Jail::expect_with(|jail| {
        jail.create_file("cert.pem", "x")?;
        jail.create_file("key.pem", "x")?;
        let dir = jail.directory().display().to_string();
        let c = ManagerConfig::from_yaml_str(&format!(
            "tls_cert_file: {dir}/cert.pem\ntls_key_file: {dir}/key.pem\nadmin_bind: 127.0.0.1:7050\nadmin_token_file: {dir}/token\n"
        ))
        .unwrap();
        let e = err_text(c.validate());
        assert!(e.contains("admin_token_file"), "{e}");
        jail.create_file("token", "secret")?;
        c.validate().unwrap();
        Ok(())
    });
}

#[test]
fn durations_that_would_overflow_an_instant_are_refused_naming_the_key() {
    for (yaml, key) in [
        ("hello_timeout: 1e19\n", "hello_timeout"),
        ("hello_timeout: 18446744073709551615\n", "hello_timeout"),
        ("ping_interval: 315360001\n", "ping_interval"),
        ("ping_timeout: \"1e300\"\n", "ping_timeout"),
        (
            "admission: {handshake_timeout: 1e12}\n",
            "admission.handshake_timeout",
        ),
    ] {
        let e = err_text(ManagerConfig::from_yaml_str(yaml));
        assert!(
            e.contains(key) && e.contains("at most 315360000"),
            "{yaml}: {e}"
        );
    }
    // Ten years is still taken.
    let c = ManagerConfig::from_yaml_str("hello_timeout: 315360000\n").unwrap();
    assert_eq!(c.session.hello_timeout, Duration::from_secs(315_360_000));
}

#[test]
fn api_logins_and_session_max_age_are_read_as_redpepper_reads_them() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "manager.yml",
            "transports: [amqp]\napi_session_max_age: 600\napi_logins:\n  - username: alice\n    password_hash: $argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g\n  - username: bob\n    password_hash: $argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g\n    totp_secret: JBSWY3DPEHPK3PXP\n",
        )?;
        let c =
            ManagerConfig::load(Some(Path::new("manager.yml")), &[]).map_err(|e| e.to_string())?;
        assert_eq!(c.console.session_max_age, Duration::from_secs(600));
        assert_eq!(c.console.logins.len(), 2);
        assert_eq!(c.console.logins[0].username, "alice");
        assert!(c.console.logins[0].totp_secret.is_none());
        assert_eq!(
            c.console.logins[1].totp_secret.as_ref().map(|s| s.expose()),
            Some("JBSWY3DPEHPK3PXP")
        );
        assert!(!format!("{:?}", c.console).contains("JBSWY3DPEHPK3PXP"));
        jail.create_file(
            "bad.yml",
            "transports: [amqp]\napi_logins:\n  - username: carol\n    password_hash: plaintext\n",
        )?;
        let e = ManagerConfig::load(Some(Path::new("bad.yml")), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("api_logins") && e.contains("carol") && e.contains("argon2"),
            "{e}"
        );
        Ok(())
    });
}
