//! The agent's list of managers: `manager_host` and `websocket.url` as one value or a
//! list, from files, the environment and `-c`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use figment::Jail;
use redpepper_config::{AgentConfig, ConfigFile, HostPort};

use crate::support::err_text;

fn hosts(yaml: &str) -> Vec<HostPort> {
    AgentConfig::from_yaml_str(yaml).unwrap().manager_hosts
}

#[test]
fn a_single_value_works_as_before() {
    assert_eq!(
        hosts("manager_host: mgr.example.org\nmanager_port: 7061\n"),
        [HostPort::new("mgr.example.org", 7061)]
    );
    assert_eq!(hosts("manager_host: '::1'\n"), [HostPort::new("::1", 7051)]);
    // RedPepper's null means the default.
    assert_eq!(hosts("manager_host:\n"), [HostPort::new("localhost", 7051)]);
    let c = AgentConfig::from_yaml_str("manager_host: 10.0.0.1:7061\n").unwrap();
    assert_eq!(c.manager_hosts, [HostPort::new("10.0.0.1", 7061)]);
    assert_eq!(c.websocket.urls, ["wss://10.0.0.1:7052/redpepper"]);
}

#[test]
fn list_forms_with_ports_defaulting_to_manager_port() {
    let yaml = "manager_port: 7061\nmanager_host:\n  - mgr-a.example.org\n  - mgr-b.example.org:7071\n  - '[2001:db8::2]:7081'\n  - fe80::1\n  - '[::1]'\n";
    assert_eq!(
        hosts(yaml),
        [
            HostPort::new("mgr-a.example.org", 7061),
            HostPort::new("mgr-b.example.org", 7071),
            HostPort::new("2001:db8::2", 7081),
            HostPort::new("fe80::1", 7061),
            HostPort::new("::1", 7061),
        ]
    );
    // The example, as a flow sequence.
    assert_eq!(
        hosts("manager_host: [mgr-a.example.org, mgr-b.example.org:7051]\n"),
        [
            HostPort::new("mgr-a.example.org", 7051),
            HostPort::new("mgr-b.example.org", 7051),
        ]
    );
}

#[test]
fn defaults_derive_from_the_first_manager_host() {
    let c = AgentConfig::from_yaml_str("manager_host: ['2001:db8::1', mgr-b]\n").unwrap();
    assert_eq!(c.websocket.urls, ["wss://[2001:db8::1]:7052/redpepper"]);
    assert_eq!(c.amqp.url, "amqp://[2001:db8::1]:5672/%2f");
}

#[test]
fn bad_entries_name_the_key_and_the_entry() {
    for (yaml, what) in [
        (
            "manager_host: [mgr-a, 'mgr-b:99999']\n",
            "entry 2 of 2: `mgr-b:99999`",
        ),
        ("manager_host: [mgr-a, 'a b']\n", "entry 2 of 2: `a b`"),
        (
            "manager_host: ['', mgr-b]\n",
            "entry 1 of 2: expected a host name",
        ),
        ("manager_host: []\n", "empty list"),
        ("manager_host: ''\n", "empty entry"),
        ("manager_host: 'mgr:0'\n", "the port `0`"),
        ("manager_host: '[::1'\n", "closing `]`"),
    ] {
        let e = err_text(AgentConfig::from_yaml_str(yaml));
        assert!(e.starts_with("invalid value for `manager_host`"), "{e}");
        assert!(e.contains(what), "{yaml}: {e}");
    }
    // A single bad value says so without an entry number.
    let e = err_text(AgentConfig::from_yaml_str("manager_host: 'a b'\n"));
    assert!(!e.contains("entry 1"), "{e}");
}

#[test]
fn websocket_url_lists() {
    let c = AgentConfig::from_yaml_str(
        "transport: websocket\nwebsocket:\n  url:\n    - wss://mgr-a/rp\n    - ws://mgr-b:8080/rp\n",
    )
    .unwrap();
    assert_eq!(c.websocket.urls, ["wss://mgr-a/rp", "ws://mgr-b:8080/rp"]);
    let e = err_text(AgentConfig::from_yaml_str(
        "transport: websocket\nwebsocket:\n  url: [wss://mgr-a/rp, 'mgr-b:80/rp']\n",
    ));
    assert!(e.contains("`websocket.url`"), "{e}");
    assert!(e.contains("entry 2 of 2") && e.contains("ws://"), "{e}");
    // Empty entries are skipped; none left means the default.
    let c = AgentConfig::from_yaml_str("websocket:\n  url: ['']\n").unwrap();
    assert_eq!(c.websocket.urls, ["wss://localhost:7052/redpepper"]);
    // Passwords stay out of Debug.
    let c = AgentConfig::from_yaml_str("websocket:\n  url: [ws://u:pw@m/rp]\n").unwrap();
    assert!(!format!("{c:?}").contains("pw"));
}

#[test]
fn environment_and_overrides_take_a_flow_sequence_or_one_value() {
    Jail::expect_with(|jail| {
        jail.create_file("agent.yml", "manager_host: old\n")?;
        let path = jail.directory().join("agent.yml");
        let load = |args: &[String]| {
            AgentConfig::load_with_report(Some(&path), args)
                .map(|l| l.config)
                .map_err(|e| e.to_string())
        };
        jail.set_env("REDPEPPER_MANAGER_HOST", "[mgr-a, 'mgr-b:7061']");
        jail.set_env("REDPEPPER_WEBSOCKET__URL", "[ws://a/rp, ws://b/rp]");
        let c = load(&[])?;
        assert_eq!(
            c.manager_hosts,
            [HostPort::new("mgr-a", 7051), HostPort::new("mgr-b", 7061)]
        );
        assert_eq!(c.websocket.urls, ["ws://a/rp", "ws://b/rp"]);

        // One value, even one that starts with a bracket, is one entry, verbatim.
        jail.set_env("REDPEPPER_MANAGER_HOST", "[::1]:7061");
        let c = load(&[])?;
        assert_eq!(c.manager_hosts, [HostPort::new("::1", 7061)]);
        jail.set_env("REDPEPPER_MANAGER_HOST", "123");
        assert_eq!(load(&[])?.manager_hosts, [HostPort::new("123", 7051)]);

        let c = load(&["manager_host=[x, y:1]".to_owned()])?;
        assert_eq!(
            c.manager_hosts,
            [HostPort::new("x", 7051), HostPort::new("y", 1)]
        );
        let e = load(&["manager_host=[x, 'y:0']".to_owned()]).unwrap_err();
        assert!(e.contains("`manager_host`"), "{e}");
        assert!(e.contains("command-line option -c manager_host"), "{e}");
        assert!(e.contains("entry 2 of 2"), "{e}");
        Ok(())
    });
}
