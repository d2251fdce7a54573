//! nginx in front of the WebSocket endpoint, for the `websocket-nginx` rows: one
//! nginx process (no master), pinned to side A's CPU with `taskset`, TLS with the
//! manager's certificate, proxying every path as WebSocket to the plain `ws://`
//! backend (our manager with `websocket.tls: false`, or the raw echo server).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::proc::Proc;
use crate::setup::nginx_conf;
use crate::workloads::Ctx;

/// The nginx binary (Debian puts it in /usr/sbin, outside a normal user's PATH).
fn binary() -> anyhow::Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .context("nginx is not installed (scripts/test installs it: apt-get install nginx)")
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(listener.local_addr()?.port())
}

/// Start nginx on a free port in front of `backend`; the process and its port.
pub fn start(ctx: &Ctx, cpu: usize, backend: u16) -> anyhow::Result<(Proc, u16)> {
    let nginx = binary()?;
    let port = free_port()?;
    let dir = ctx.world.dir.join(format!("nginx-{port}"));
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&ctx.world, &dir, port, backend))?;
    let mut cmd = ctx.launcher.system("taskset");
    cmd.arg("-c").arg(cpu.to_string()).arg(&nginx);
    cmd.arg("-e").arg(dir.join("error.log"));
    cmd.arg("-p").arg(&dir).arg("-c").arg(&conf);
    let proc = Proc::spawn("nginx", cmd)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            bail!("nginx did not listen on port {port} within 10 s: {log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((proc, port))
}
