//! nginx in front of the WebSocket endpoint, for the `websocket-nginx` rows: the
//! test harness' private nginx as one process (no master), pinned to side A's CPU
//! with `taskset`, TLS with the manager's certificate, proxying every path as
//! WebSocket to the plain `ws://` backend (our manager with `websocket.tls: false`,
//! or the raw echo server).

use std::ffi::OsString;
use std::net::SocketAddr;

use redpepper_tests::certs::names;
use redpepper_tests::nginx::{Nginx, NginxConfig};
use redpepper_tests::Group;

use crate::workloads::Ctx;

/// Start nginx on a free port in front of `backend` (its port: [`Nginx::port`]).
pub fn start(ctx: &Ctx, cpu: usize, backend: u16) -> anyhow::Result<Nginx> {
    let certs = ctx.world.certs();
    let mut config = NginxConfig::with_cert(
        certs.join(names::MANAGER_CERT),
        certs.join(names::MANAGER_KEY),
        SocketAddr::from(([127, 0, 0, 1], backend)),
    );
    config.path = "/".to_owned();
    config.single_process = true;
    config.worker_connections = 30_000;
    config.worker_rlimit_nofile = Some(65_536);
    config.access_log = false;
    config.group = Group::Parent;
    let mut taskset = ctx.launcher.system("taskset");
    taskset.arg("-c").arg(cpu.to_string());
    config.wrapper = std::iter::once(taskset.get_program())
        .chain(taskset.get_args())
        .map(OsString::from)
        .collect();
    let dir = ctx.world.dir.join(format!("nginx-{backend}"));
    Ok(Nginx::try_start(&dir, config)?)
}
