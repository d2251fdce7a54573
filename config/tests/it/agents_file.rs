//! agents.yml: parsing, authentication, reloading.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use redpepper_config::{AgentRegistry, AuthFailure, CachedRegistry, ConfigError};
use sha2::{Digest, Sha256};

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn registry() -> AgentRegistry {
    let yaml = format!(
        "# RedPepper agents.yml\n\
         web1:\n  secret_hash: {}\n  allowed_ips: 127.0.0.1/32\n  data: {{role: web}}\n\
         web2:\n  secret_hash: {}\n  allowed_ips: [10.0.0.0/8, '192.168.1.7', 'fd00::/8']\n\
         open:\n  secret_hash: {}\n  allowed_ips: [0.0.0.0/0, '::/0']\n\
         bus1:\n  secret_hash: {}\n  allowed_ips: 10.0.0.0/8\n  amqp_user: bus1-user\n\
         noips:\n  secret_hash: {}\n\
         nosecret:\n  allowed_ips: 0.0.0.0/0\n",
        hash("s1"),
        hash("s2").to_uppercase(),
        hash("s3"),
        hash("s4"),
        hash("s5"),
    );
    AgentRegistry::from_yaml_str(&yaml, Path::new("/data/agents.yml")).unwrap()
}

#[test]
fn secrets_and_ids() {
    let r = registry();
    assert_eq!(r.len(), 6);
    let entry = r.authenticate("web1", "s1", ip("127.0.0.1"), None).unwrap();
    assert_eq!(entry.id, "web1");
    assert_eq!(entry.data["role"], "web");
    assert_eq!(
        r.authenticate("web1", "wrong", ip("127.0.0.1"), None)
            .unwrap_err(),
        AuthFailure::BadSecret
    );
    assert_eq!(
        r.authenticate("nobody", "s1", ip("127.0.0.1"), None)
            .unwrap_err(),
        AuthFailure::UnknownAgent
    );
    assert_eq!(
        r.authenticate("nosecret", "", ip("127.0.0.1"), None)
            .unwrap_err(),
        AuthFailure::BadSecret
    );
    // Upper-case hex in the file is accepted.
    r.authenticate("web2", "s2", ip("10.1.2.3"), None).unwrap();
    assert!(!format!("{entry:?}").contains(&hash("s1")));
}

#[test]
fn allowed_ips() {
    let r = registry();
    // Single string CIDR.
    assert_eq!(
        r.authenticate("web1", "s1", ip("127.0.0.2"), None)
            .unwrap_err(),
        AuthFailure::IpNotAllowed {
            ip: "127.0.0.2".parse().unwrap()
        }
    );
    // List: inside / outside, bare IP, IPv6, IPv4-mapped IPv6.
    r.authenticate("web2", "s2", ip("10.255.0.1"), None)
        .unwrap();
    r.authenticate("web2", "s2", ip("192.168.1.7"), None)
        .unwrap();
    r.authenticate("web2", "s2", ip("fd12::1"), None).unwrap();
    r.authenticate("web2", "s2", ip("::ffff:10.0.0.1"), None)
        .unwrap();
    assert!(matches!(
        r.authenticate("web2", "s2", ip("192.168.1.8"), None),
        Err(AuthFailure::IpNotAllowed { .. })
    ));
    assert!(matches!(
        r.authenticate("web2", "s2", ip("11.0.0.1"), None),
        Err(AuthFailure::IpNotAllowed { .. })
    ));
    // No allowed_ips: nothing allowed, as in RedPepper.
    assert!(matches!(
        r.authenticate("noips", "s5", ip("127.0.0.1"), None),
        Err(AuthFailure::IpNotAllowed { .. })
    ));
    r.authenticate("open", "s3", ip("203.0.113.9"), None)
        .unwrap();
    r.authenticate("open", "s3", ip("2001:db8::1"), None)
        .unwrap();
}

#[test]
fn without_a_peer_address() {
    let r = registry();
    r.authenticate("bus1", "s4", None, Some("bus1-user"))
        .unwrap();
    assert_eq!(
        r.authenticate("bus1", "s4", None, Some("other"))
            .unwrap_err(),
        AuthFailure::AmqpUserMismatch
    );
    assert_eq!(
        r.authenticate("bus1", "s4", None, None).unwrap_err(),
        AuthFailure::AmqpUserMismatch
    );
    assert_eq!(
        r.authenticate("web2", "s2", None, Some("web2"))
            .unwrap_err(),
        AuthFailure::NoAddressToCheck
    );
    assert_eq!(
        r.authenticate("web2", "s2", None, None).unwrap_err(),
        AuthFailure::NoAddressToCheck
    );
    r.authenticate("open", "s3", None, None).unwrap();
    // With an address, a mismatching AMQP user still fails.
    assert_eq!(
        r.authenticate("bus1", "s4", ip("10.0.0.1"), Some("other"))
            .unwrap_err(),
        AuthFailure::AmqpUserMismatch
    );
    r.authenticate("bus1", "s4", ip("10.0.0.1"), None).unwrap();
}

fn load_err(yaml: &str) -> String {
    let e = AgentRegistry::from_yaml_str(yaml, Path::new("/data/agents.yml")).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    e.to_string()
}

#[test]
fn a_bad_entry_is_refused_alone_and_named_with_the_file() {
    let good = hash("g");
    let r = AgentRegistry::from_yaml_str(
        &format!(
            "bad.id:\n  secret_hash: 00\n\
             web1:\n  secret_hash: abc\n  allowed_ips: 0.0.0.0/0\n\
             web2:\n  secret_hash: {good}\n  allowed_ips: [10.0.0.0/33, 10.0.0.1/24, 192.168.0.0/16, 7]\n\
             web3:\n  secret_hash: {good}\n  allowed_ips: 0.0.0.0/0\n  amqp_user: [x]\n\
             fine:\n  secret_hash: {good}\n  allowed_ips: 0.0.0.0/0\n"
        ),
        Path::new("/data/agents.yml"),
    )
    .unwrap();
    // The good entry works whatever the others hold.
    r.authenticate("fine", "g", ip("10.1.2.3"), None).unwrap();
    // An entry that cannot be parsed is refused with the reason (for the log).
    match r
        .authenticate("web1", "g", ip("10.1.2.3"), None)
        .unwrap_err()
    {
        AuthFailure::InvalidEntry { problem } => {
            assert!(
                problem.contains("secret_hash") && problem.contains("64 hex"),
                "{problem}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.authenticate("web3", "g", ip("10.1.2.3"), None)
            .unwrap_err(),
        AuthFailure::InvalidEntry { .. }
    ));
    // Bad allowed_ips items are left out; the good one still applies. A range with
    // host bits set is refused, as Python's ip_network(strict) refuses it.
    r.authenticate("web2", "g", ip("192.168.3.4"), None)
        .unwrap();
    assert_eq!(
        r.authenticate("web2", "g", ip("10.0.0.9"), None)
            .unwrap_err(),
        AuthFailure::IpNotAllowed {
            ip: "10.0.0.9".parse().unwrap()
        }
    );
    let problems = r.problems().join("\n");
    for needle in [
        "`bad.id`",
        "`web1`",
        "10.0.0.0/33",
        "10.0.0.1/24` has host bits set",
        "`web3`",
        "amqp_user",
    ] {
        assert!(problems.contains(needle), "{needle} not in {problems}");
    }
    assert!(
        r.problems().iter().all(|p| p.contains("/data/agents.yml")),
        "{problems}"
    );
    assert_eq!(r.problems().len(), 6, "{problems}");
    // Only a file that is not a mapping of agents is an error as a whole.
    let e = load_err("- web1\n");
    assert!(e.contains("/data/agents.yml"), "{e}");
}

#[test]
fn empty_or_missing_file_means_no_agents() {
    let r = AgentRegistry::from_yaml_str("# nothing\n", Path::new("a.yml")).unwrap();
    assert!(r.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let r = AgentRegistry::load(&dir.path().join("agents.yml")).unwrap();
    assert!(r.is_empty());
}

#[test]
fn cached_registry_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.yml");
    let cache = CachedRegistry::open(&path)
        .unwrap()
        .with_check_interval(Duration::ZERO);
    assert!(cache.get().is_empty());

    std::fs::write(
        &path,
        format!(
            "a1:\n  secret_hash: {}\n  allowed_ips: 10.0.0.0/8\n",
            hash("x")
        ),
    )
    .unwrap();
    let r = cache.get();
    assert_eq!(r.len(), 1);
    r.authenticate("a1", "x", ip("10.0.0.1"), None).unwrap();
    // Unchanged: the same registry, not re-parsed.
    assert!(std::sync::Arc::ptr_eq(&r, &cache.get()));

    // A broken file keeps the previous registry.
    std::fs::write(&path, "a1: [unclosed\n").unwrap();
    assert_eq!(cache.get().len(), 1);

    std::fs::write(
        &path,
        format!(
            "a1:\n  secret_hash: {h}\n  allowed_ips: 10.0.0.0/8\na2:\n  secret_hash: {h}\n",
            h = hash("x")
        ),
    )
    .unwrap();
    assert_eq!(cache.get().len(), 2);

    // With the default interval, a change is not seen within the same second.
    let slow = CachedRegistry::open(&path).unwrap();
    std::fs::write(&path, "").unwrap();
    assert_eq!(slow.get().len(), 2);
    assert_eq!(slow.reload().unwrap().len(), 0);
}

#[test]
fn ten_thousand_agents_load_fast() {
    let mut yaml = String::with_capacity(10_000 * 120);
    let h = hash("secret");
    for i in 0..10_000 {
        write!(
            yaml,
            "agent-{i}:\n  secret_hash: {h}\n  allowed_ips: [10.{}.{}.0/24]\n  data: {{n: {i}}}\n",
            i / 256,
            i % 256
        )
        .unwrap();
    }
    let start = Instant::now();
    let r = AgentRegistry::from_yaml_str(&yaml, Path::new("agents.yml")).unwrap();
    let took = start.elapsed();
    assert_eq!(r.len(), 10_000);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let start = Instant::now();
    for i in 0..10_000 {
        let addr = format!("10.{}.{}.9", i / 256, i % 256).parse().unwrap();
        r.authenticate(&format!("agent-{i}"), "secret", Some(addr), None)
            .unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}
