//! The tests of the Python peers' config writers.

use super::*;
use crate::certs::TestCerts;

#[test]
fn agents_yml_hashes_secrets() {
    let text = agents_yml(&[("a1", "s3cret", &["127.0.0.1/32"]), ("b-2", "x", &[])]);
    let expected = sha256_hex("s3cret");
    assert_eq!(
        expected,
        "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
    );
    assert!(
        text.contains(&format!("\"a1\":\n  secret_hash: \"{expected}\"\n")),
        "{text}"
    );
    assert!(text.contains("    - \"127.0.0.1/32\"\n"), "{text}");
    assert!(text.contains("\"b-2\":\n"), "{text}");
    assert_eq!(agents_yml(&[]), "{}\n");
}

#[test]
fn agents_yml_entries_name_the_broker_user() {
    let entry = |id, amqp_user| AgentEntry {
        id,
        secret_hash: "ab",
        allowed_ips: &["127.0.0.0/8"],
        amqp_user,
    };
    let text = agents_yml_entries([entry("a", Some("guest")), entry("b", None)]);
    assert_eq!(
        text,
        "\"a\":\n  secret_hash: \"ab\"\n  allowed_ips:\n    - \"127.0.0.0/8\"\n  \
         amqp_user: \"guest\"\n  data: {}\n\"b\":\n  secret_hash: \"ab\"\n  allowed_ips:\n    \
         - \"127.0.0.0/8\"\n  data: {}\n"
    );
}

#[test]
fn yaml_strings_are_quoted() {
    assert_eq!(yaml_str("a: b \"c\""), r#""a: b \"c\"""#);
}

#[test]
fn configs_name_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let manager = PyManagerConfig::new(&dir.path().join("m"), &certs);
    let yaml = manager.to_yaml();
    for key in [
        "bind_port: 0",
        "tls_verify_mode: \"none\"",
        "tls_check_hostname: false",
        "api_logins: []",
    ] {
        assert!(yaml.contains(key), "{key} missing from\n{yaml}");
    }
    let path = manager.write();
    assert!(path.is_file());
    assert!(manager.data_dir.join("agents.yml").is_file());
    let agent = PyAgentConfig::new(&dir.path().join("a"), &certs, 7051, "a1", "s");
    let yaml = agent.to_yaml();
    assert!(yaml.contains("manager_port: 7051\n"), "{yaml}");
    agent.write();
    assert!(agent.operation_modules_cache_dir.is_dir());
}
