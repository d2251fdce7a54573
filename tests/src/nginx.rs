//! A private nginx: a TLS-terminating reverse proxy in front of a WebSocket endpoint,
//! started by the test on its own loopback port with everything (config, pid file,
//! logs, temp directories) in a scratch directory.
//!
//! ```no_run
//! # use redpepper_tests::*;
//! # use redpepper_tests::nginx::{Nginx, NginxConfig};
//! # let dir = scratch_dir();
//! # let certs = TestCerts::generate(&dir.path().join("certs"));
//! # let manager_ws: std::net::SocketAddr = "127.0.0.1:7052".parse().unwrap();
//! let mut config = NginxConfig::new(&certs, manager_ws);
//! config.proxy_bind = Some("127.0.0.3".parse().unwrap());
//! let mut nginx = Nginx::start(&dir.path().join("nginx"), config);
//! let url = nginx.url(); // wss://localhost:PORT/redpepper
//! nginx.restart(); // same port: agents come back by themselves
//! ```
//!
//! nginx runs in the foreground (`daemon off`) as a [`Proc`] with one worker; its
//! error log goes to stderr, so [`Nginx::proc`] lines show upstream failures. Under
//! root the worker runs as root too, so it can use the scratch directory.
//!
//! The benchmark's `websocket-nginx` rows run the same nginx, tuned for load by
//! the [`NginxConfig`] fields past `proxy_bind`: one process (no master) pinned
//! with a `taskset` wrapper, in the benchmark's process group, with room for a
//! fleet's connections and no access log.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{or_panic, HarnessError};
use crate::service::{Ready, Service};
use crate::{try_free_port, try_system_program, Group, Proc, TestCerts, TIMEOUT};

/// What the private nginx serves.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// Certificate and key nginx presents (PEM).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The plain `ws://` endpoint nginx forwards to (the manager with `tls: false`).
    pub upstream: SocketAddr,
    /// The location proxied, and the path on the upstream (default `/redpepper`).
    pub path: String,
    /// Source address of nginx's connections to the upstream (`proxy_bind`), so the
    /// manager can tell nginx from the agent on loopback. Default none.
    pub proxy_bind: Option<IpAddr>,
    /// Run one process without a master (`master_process off`), so a CPU wrapper
    /// pins every connection's work; ready when its port listens. Default false.
    pub single_process: bool,
    /// `worker_connections` (default 256).
    pub worker_connections: u32,
    /// `worker_rlimit_nofile`, if set (default none).
    pub worker_rlimit_nofile: Option<u32>,
    /// Write `access.log` (default true).
    pub access_log: bool,
    /// Program and arguments nginx runs under, such as `taskset -c 0` (default
    /// none).
    pub wrapper: Vec<OsString>,
    /// Its process group (default its own).
    pub group: Group,
}

impl NginxConfig {
    /// Serve `certs`' manager certificate (valid for `localhost` and `127.0.0.1`) and
    /// forward `/redpepper` to `upstream`.
    pub fn new(certs: &TestCerts, upstream: SocketAddr) -> Self {
        Self::with_cert(
            certs.manager_cert.clone(),
            certs.manager_key.clone(),
            upstream,
        )
    }

    /// Serve `cert` with `key` and forward `/redpepper` to `upstream`.
    pub fn with_cert(cert: PathBuf, key: PathBuf, upstream: SocketAddr) -> Self {
        Self {
            cert,
            key,
            upstream,
            path: "/redpepper".to_owned(),
            proxy_bind: None,
            single_process: false,
            worker_connections: 256,
            worker_rlimit_nofile: None,
            access_log: true,
            wrapper: Vec::new(),
            group: Group::Own,
        }
    }
}

/// A running private nginx; stopped (with its worker) when dropped.
#[derive(Debug)]
pub struct Nginx {
    dir: PathBuf,
    port: u16,
    config: NginxConfig,
    service: Service,
}

impl Nginx {
    /// Writes `dir/nginx.conf` and starts nginx on a free loopback port.
    ///
    /// # Panics
    ///
    /// When nginx is not installed (run `scripts/test`), or does not listen within
    /// [`TIMEOUT`].
    pub fn start(dir: &Path, config: NginxConfig) -> Nginx {
        or_panic(Self::try_start(dir, config))
    }

    /// [`Nginx::start`] as a `Result`.
    ///
    /// # Errors
    ///
    /// When nginx is not installed, its directory cannot be written, or it does
    /// not listen within [`TIMEOUT`].
    pub fn try_start(dir: &Path, config: NginxConfig) -> Result<Nginx, HarnessError> {
        std::fs::create_dir_all(dir).map_err(HarnessError::io("create", dir))?;
        let mut nginx = Nginx {
            dir: dir.to_path_buf(),
            port: try_free_port()?,
            config,
            service: Service::new("nginx"),
        };
        nginx.launch()?;
        Ok(nginx)
    }

    /// The port nginx listens on (127.0.0.1, TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `wss://localhost:PORT/PATH`: the URL agents use.
    pub fn url(&self) -> String {
        format!("wss://localhost:{}{}", self.port, self.config.path)
    }

    /// The running process.
    ///
    /// # Panics
    ///
    /// When nginx is stopped.
    pub fn proc(&self) -> &Proc {
        self.service.proc()
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// Kills nginx (master and worker) at once: open connections break.
    pub fn stop(&mut self) {
        self.service.stop();
    }

    /// Stops nginx and starts it again on the same port.
    ///
    /// # Panics
    ///
    /// When it does not listen again within [`TIMEOUT`].
    pub fn restart(&mut self) {
        self.stop();
        or_panic(self.launch());
    }

    fn launch(&mut self) -> Result<(), HarnessError> {
        let nginx = try_system_program("nginx")?;
        let mut cmd = match self.config.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(nginx);
                cmd
            }
            None => Command::new(nginx),
        };
        let conf = self.dir.join("nginx.conf");
        cmd.arg("-e")
            .arg("stderr")
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&conf);
        // The master logs "start worker processes" (error_log at notice) once its
        // listening sockets are open; connections made from then on wait in the
        // backlog for the worker. A single process logs nothing then.
        let ready = if self.config.single_process {
            Ready::Listens(self.port)
        } else {
            Ready::Logs("start worker processes")
        };
        let text = self.conf_text();
        self.service
            .start((&conf, &text), cmd, self.config.group, (ready, TIMEOUT))
    }

    fn conf_text(&self) -> String {
        let d = self.dir.display();
        let c = &self.config;
        // Files we create belong to our effective user: root's need a root worker.
        let root = std::fs::metadata(&self.dir).is_ok_and(|m| m.uid() == 0);
        let user = if root { "user root root;\n" } else { "" };
        let mut location = format!(
            "      proxy_pass http://{upstream};\n\
             \x20     proxy_http_version 1.1;\n\
             \x20     proxy_set_header Upgrade $http_upgrade;\n\
             \x20     proxy_set_header Connection \"upgrade\";\n\
             \x20     proxy_set_header Host $host;\n\
             \x20     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20     proxy_set_header X-Forwarded-Proto $scheme;\n\
             \x20     proxy_buffering off;\n\
             \x20     proxy_read_timeout 1h;\n\
             \x20     proxy_send_timeout 1h;\n",
            upstream = c.upstream
        );
        if let Some(ip) = c.proxy_bind {
            let _ = writeln!(location, "      proxy_bind {ip};");
        }
        let master = if c.single_process { "off" } else { "on" };
        let rlimit = c
            .worker_rlimit_nofile
            .map_or_else(String::new, |n| format!("worker_rlimit_nofile {n};\n"));
        let access_log = if c.access_log {
            format!("{d}/access.log")
        } else {
            "off".to_owned()
        };
        format!(
            "daemon off;\nmaster_process {master};\nworker_processes 1;\n{user}{rlimit}\
             pid {d}/nginx.pid;\nerror_log stderr notice;\n\
             events {{ worker_connections {connections}; }}\n\
             http {{\n\
             \x20 access_log {access_log};\n\
             \x20 client_body_temp_path {d}/client_body;\n\
             \x20 proxy_temp_path {d}/proxy_temp;\n\
             \x20 fastcgi_temp_path {d}/fastcgi_temp;\n\
             \x20 uwsgi_temp_path {d}/uwsgi_temp;\n\
             \x20 scgi_temp_path {d}/scgi_temp;\n\
             \x20 server {{\n\
             \x20   listen 127.0.0.1:{port} ssl;\n\
             \x20   server_name localhost;\n\
             \x20   ssl_certificate {cert};\n\
             \x20   ssl_certificate_key {key};\n\
             \x20   location {path} {{\n{location}    }}\n\
             \x20 }}\n\
             }}\n",
            port = self.port,
            connections = c.worker_connections,
            cert = c.cert.display(),
            key = c.key.display(),
            path = c.path,
        )
    }
}
