//! Layers: include globs, environment, `-c` overrides, and where errors point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::time::Duration;

use figment::Jail;
use redpepper_config::{AgentConfig, ConfigError, ConfigFile, ManagerConfig, TransportKind};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn load_manager(jail: &Jail, overrides: &[&str]) -> Result<ManagerConfig, ConfigError> {
    let path = jail.directory().join("manager.yml");
    ManagerConfig::load_with_report(Some(&path), &args(overrides)).map(|l| l.config)
}

#[test]
fn includes_override_in_order_depth_first_each_once() {
    Jail::expect_with(|jail| {
        jail.create_dir("conf.d")?;
        jail.create_file(
            "manager.yml",
            "bind_port: 1\nping_timeout: 1\nhello_timeout: 1\n\
             include:\n  - conf.d/*.yml\n  - missing/*.yml\n  - conf.d/10-a.yml\n  - extra.yml\n",
        )?;
        jail.create_file("conf.d/10-a.yml", "bind_port: 10\nping_timeout: 10\n")?;
        jail.create_file(
            "conf.d/20-b.yml",
            "bind_port: 20\ninclude: [../nested.yml]\nwebsocket:\n  path: /b\n",
        )?;
        jail.create_file(
            "nested.yml",
            "hello_timeout: 30\nwebsocket:\n  tls: false\n",
        )?;
        // Included twice (also by the main file's last pattern): processed once,
        // so it does not override 20-b.yml's bind_port again.
        jail.create_file("extra.yml", "include: [manager.yml]\n")?;
        jail.create_file("conf.d/ignored.txt", "bind_port: 99\n")?;

        let path = jail.directory().join("manager.yml");
        let loaded =
            ManagerConfig::load_with_report(Some(&path), &[]).map_err(|e| e.to_string())?;
        let c = loaded.config;
        assert_eq!(c.bind_port, 20);
        assert_eq!(c.session.ping_timeout, Duration::from_secs(10));
        assert_eq!(c.session.hello_timeout, Duration::from_secs(30));
        // Sections merge key by key across files.
        assert_eq!(c.websocket.path, "/b");
        assert!(!c.websocket.tls);
        let names: Vec<String> = loaded
            .report
            .files
            .iter()
            .map(|p| {
                p.strip_prefix(jail.directory())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "manager.yml",
                "conf.d/10-a.yml",
                "conf.d/20-b.yml",
                "conf.d/../nested.yml",
                "extra.yml"
            ]
        );
        Ok(())
    });
}

#[test]
fn errors_in_included_files_name_that_file() {
    Jail::expect_with(|jail| {
        jail.create_file("manager.yml", "include: [inc.yml]\n")?;
        jail.create_file("inc.yml", "bind_port: lots\n")?;
        let inc = jail.directory().join("inc.yml").display().to_string();
        let e = load_manager(jail, &[]).unwrap_err().to_string();
        assert!(e.contains("`bind_port`") && e.contains(&inc), "{e}");

        jail.create_file("inc.yml", "amqp:\n  queeu: x\n")?;
        let e = load_manager(jail, &[]).unwrap_err().to_string();
        assert_eq!(e, format!("unknown key `amqp.queeu` in {inc}"));

        jail.create_file("manager.yml", "include: 5\n")?;
        let e = load_manager(jail, &[]).unwrap_err().to_string();
        assert!(e.contains("`include`") && e.contains("glob"), "{e}");
        Ok(())
    });
}

#[test]
fn environment_overrides_files() {
    Jail::expect_with(|jail| {
        jail.create_file("manager.yml", "bind_port: 7051\ntransports: [tls]\n")?;
        jail.set_env("REDPEPPER_BIND_PORT", "7052");
        jail.set_env("REDPEPPER_PING_INTERVAL", "2.5");
        jail.set_env("REDPEPPER_TRANSPORTS", "[tls, websocket]");
        jail.set_env("REDPEPPER_WEBSOCKET__PATH", "/ws");
        jail.set_env("REDPEPPER_TLS_CHECK_HOSTNAME", "false");
        // Not configuration keys: skipped.
        jail.set_env("REDPEPPER_LOG_LEVEL", "debug");
        jail.set_env("REDPEPPER_CONFIG_FILE", "/x.yml");
        let c = load_manager(jail, &[]).map_err(|e| e.to_string())?;
        assert_eq!(c.bind_port, 7052);
        assert_eq!(c.session.ping_interval, Duration::from_millis(2500));
        assert_eq!(c.transports, [TransportKind::Tls, TransportKind::WebSocket]);
        assert_eq!(c.websocket.path, "/ws");
        assert!(!c.tls.check_hostname);

        jail.set_env("REDPEPPER_WEBSOCKET__BOGUS", "1");
        let e = load_manager(jail, &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown key `websocket.bogus` in environment variable REDPEPPER_WEBSOCKET__BOGUS"
        );
        Ok(())
    });
}

#[test]
fn environment_for_the_agent() {
    Jail::expect_with(|jail| {
        jail.create_file("agent.yml", "manager_port: 7051\n")?;
        jail.set_env("REDPEPPER_MANAGER_PORT", "7052");
        jail.set_env("REDPEPPER_AGENT_SECRET", "0012345");
        jail.set_env("REDPEPPER_WEBSOCKET__URL", "wss://m:443/rp");
        let path = jail.directory().join("agent.yml");
        let c = AgentConfig::load_with_report(Some(&path), &[])
            .map_err(|e| e.to_string())?
            .config;
        assert_eq!(c.manager_port, 7052);
        assert_eq!(c.agent_secret.expose(), "0012345");
        assert_eq!(c.websocket.urls, ["wss://m:443/rp"]);

        jail.set_env("REDPEPPER_MANAGER_PORT", "many");
        let e = AgentConfig::load_with_report(Some(&path), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`manager_port`"), "{e}");
        assert!(
            e.contains("environment variable REDPEPPER_MANAGER_PORT"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn command_line_overrides_win_and_parse_yaml_scalars() {
    Jail::expect_with(|jail| {
        jail.create_file("manager.yml", "bind_port: 7051\nbind_host: 0.0.0.0\n")?;
        jail.set_env("REDPEPPER_BIND_PORT", "7052");
        let c = load_manager(
            jail,
            &[
                "bind_port=7053",
                "ping_interval=0.5",
                "tls_check_hostname=false",
                "bind_host=127.0.0.1",
                "transports=[tls, amqp]",
                "amqp.queue=q1",
                "websocket.trusted_proxies=10.0.0.0/8",
                "data_base_dir=/srv/rp data",
            ],
        )
        .map_err(|e| e.to_string())?;
        assert_eq!(c.bind_port, 7053);
        assert_eq!(c.session.ping_interval, Duration::from_millis(500));
        assert!(!c.tls.check_hostname);
        assert_eq!(c.bind_host, "127.0.0.1");
        assert_eq!(c.transports, [TransportKind::Tls, TransportKind::Amqp]);
        assert_eq!(c.amqp.queue, "q1");
        assert_eq!(c.websocket.trusted_proxies[0].to_string(), "10.0.0.0/8");
        assert_eq!(c.data_base_dir.to_str(), Some("/srv/rp data"));
        // Later -c wins over earlier.
        let c = load_manager(jail, &["bind_port=1", "bind_port=2"]).map_err(|e| e.to_string())?;
        assert_eq!(c.bind_port, 2);

        let e = load_manager(jail, &["bind_port"]).unwrap_err();
        assert!(matches!(e, ConfigError::BadOverride { .. }), "{e}");
        let e = load_manager(jail, &["websocket..path=/x"]).unwrap_err();
        assert!(matches!(e, ConfigError::BadOverride { .. }), "{e}");
        let e = load_manager(jail, &["bind_port=abc"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`bind_port`") && e.contains("command-line option -c bind_port"),
            "{e}"
        );
        let e = load_manager(jail, &["bind_prot=1"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown key `bind_prot` in command-line option -c bind_prot"
        );
        Ok(())
    });
}

#[test]
fn command_line_strings_are_verbatim_for_string_keys() {
    Jail::expect_with(|jail| {
        jail.create_file("agent.yml", "")?;
        let path = jail.directory().join("agent.yml");
        let c = AgentConfig::load_with_report(
            Some(&path),
            &args(&[
                "agent_secret=0x1F",
                "agent_id=007",
                "websocket.headers.X-Api=1.50",
            ]),
        )
        .map_err(|e| e.to_string())?
        .config;
        assert_eq!(c.agent_secret.expose(), "0x1F");
        assert_eq!(c.agent_id, "007");
        assert_eq!(c.websocket.headers["X-Api"], "1.50");
        Ok(())
    });
}

#[test]
fn parked_redpepper_keys_may_come_from_anywhere() {
    Jail::expect_with(|jail| {
        jail.create_file("manager.yml", "")?;
        jail.set_env("REDPEPPER_API_BIND_PORT", "0");
        let path = jail.directory().join("manager.yml");
        let loaded = ManagerConfig::load_with_report(Some(&path), &args(&["event_log_file=/x"]))
            .map_err(|e| e.to_string())?;
        let keys: Vec<(&str, &str)> = loaded
            .report
            .ignored_keys
            .iter()
            .map(|k| (k.key.as_str(), k.origin.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                (
                    "api_bind_port",
                    "environment variable REDPEPPER_API_BIND_PORT"
                ),
                ("event_log_file", "command-line option -c event_log_file"),
            ]
        );
        Ok(())
    });
}
