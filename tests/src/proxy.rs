//! A private tinyproxy: an HTTP forward proxy that allows `CONNECT` only to the given
//! ports, from 127.0.0.1 only, optionally with Basic authentication. Its config,
//! pid file and logs live in a scratch directory; it runs in the foreground as a
//! [`Proc`] (its log lines are the process output).
//!
//! ```no_run
//! # use redpepper_tests::*;
//! # use redpepper_tests::proxy::{Tinyproxy, TinyproxyConfig};
//! # let dir = scratch_dir();
//! let config = TinyproxyConfig::connect_to(7052).with_basic_auth("agent", "s3cret");
//! let mut proxy = Tinyproxy::start(&dir.path().join("proxy"), config);
//! let url = proxy.url_with_credentials("agent", "s3cret");
//! proxy.restart(); // same port
//! ```
//!
//! tinyproxy 1.11 answers `407` to a `CONNECT` without credentials, `401` to one with
//! wrong credentials, and `403` to a port it does not allow.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{or_panic, HarnessError};
use crate::service::{Ready, Service};
use crate::{free_port, try_system_program, Group, Proc, TIMEOUT};

/// What the private tinyproxy allows.
#[derive(Debug, Clone, Default)]
pub struct TinyproxyConfig {
    /// Ports `CONNECT` may reach (at least one: with none tinyproxy allows all).
    pub connect_ports: Vec<u16>,
    /// `BasicAuth user password`: required credentials. Default none.
    pub basic_auth: Option<(String, String)>,
    /// Listen on this port instead of a free one (to bring up a proxy that agents
    /// were already told about).
    pub port: Option<u16>,
}

impl TinyproxyConfig {
    /// Allow `CONNECT` to `port` only.
    pub fn connect_to(port: u16) -> Self {
        Self {
            connect_ports: vec![port],
            ..Self::default()
        }
    }

    /// Require these credentials.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        self.basic_auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Listen on `port`.
    pub fn on_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// A running private tinyproxy; stopped when dropped.
#[derive(Debug)]
pub struct Tinyproxy {
    dir: PathBuf,
    port: u16,
    config: TinyproxyConfig,
    service: Service,
}

impl Tinyproxy {
    /// Writes `dir/tinyproxy.conf` and starts tinyproxy on 127.0.0.1.
    ///
    /// # Panics
    ///
    /// When tinyproxy is not installed (run `scripts/test`), `connect_ports` is
    /// empty, or it does not listen within [`TIMEOUT`].
    pub fn start(dir: &Path, config: TinyproxyConfig) -> Tinyproxy {
        assert!(
            !config.connect_ports.is_empty(),
            "give tinyproxy at least one ConnectPort (with none it allows every port)"
        );
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut proxy = Tinyproxy {
            dir: dir.to_path_buf(),
            port: config.port.unwrap_or_else(free_port),
            config,
            service: Service::new("tinyproxy"),
        };
        or_panic(proxy.launch());
        proxy
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// The running process (its output is tinyproxy's log).
    ///
    /// # Panics
    ///
    /// When tinyproxy is stopped.
    pub fn proc(&self) -> &Proc {
        self.service.proc()
    }

    /// Kills tinyproxy: open tunnels break.
    pub fn stop(&mut self) {
        self.service.stop();
    }

    /// Stops tinyproxy and starts it again on the same port.
    ///
    /// # Panics
    ///
    /// When it does not start again within [`TIMEOUT`].
    pub fn restart(&mut self) {
        self.stop();
        or_panic(self.launch());
    }

    fn launch(&mut self) -> Result<(), HarnessError> {
        let conf = self.dir.join("tinyproxy.conf");
        let mut cmd = Command::new(try_system_program("tinyproxy")?);
        cmd.arg("-d").arg("-c").arg(&conf);
        // Logged (LogLevel Info) after the listening socket is open.
        let ready = Ready::Logs("Accepting connections");
        let text = self.conf_text();
        self.service
            .start((&conf, &text), cmd, Group::Own, (ready, TIMEOUT))
    }

    fn conf_text(&self) -> String {
        let mut text = format!(
            "Port {}\nListen 127.0.0.1\nTimeout 600\nLogLevel Info\nPidFile \"{}\"\n\
             MaxClients 64\nAllow 127.0.0.1\nDisableViaHeader Yes\n",
            self.port,
            self.dir.join("tinyproxy.pid").display()
        );
        for port in &self.config.connect_ports {
            let _ = writeln!(text, "ConnectPort {port}");
        }
        if let Some((user, password)) = &self.config.basic_auth {
            let _ = writeln!(text, "BasicAuth {user} {password}");
        }
        text
    }
}
