//! sd_notify: tell systemd (`Type=notify` units) that the program is ready or
//! stopping.
//!
//! systemd passes the address of a datagram socket in `$NOTIFY_SOCKET`: a path, or
//! `@name` for a socket in the abstract namespace. A notification is one datagram of
//! `KEY=VALUE` lines. Outside systemd the variable is unset and nothing is sent. With
//! the units' default `NotifyAccess=main`, only the program's own process is heard:
//! children that inherit the variable (the agent's `command.Run`) are ignored.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Sends `state` (such as `READY=1`) to `$NOTIFY_SOCKET`. Returns `Ok(false)` when the
/// variable is unset or empty (not started by systemd), `Ok(true)` once sent.
///
/// # Errors
///
/// The address is not usable or the datagram cannot be sent; the message names the
/// socket.
pub fn send(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET_ENV) else {
        return Ok(false);
    };
    if target.is_empty() {
        return Ok(false);
    }
    let text = target.to_string_lossy().into_owned();
    let context =
        |e: io::Error| io::Error::new(e.kind(), format!("{NOTIFY_SOCKET_ENV}={text}: {e}"));
    let addr = socket_addr(&text).map_err(context)?;
    let socket = UnixDatagram::unbound().map_err(context)?;
    socket
        .send_to_addr(state.as_bytes(), &addr)
        .map_err(context)?;
    Ok(true)
}

/// The socket address of a `$NOTIFY_SOCKET` value: `@name` is abstract, anything else
/// a path.
fn socket_addr(value: &str) -> io::Result<SocketAddr> {
    match value.strip_prefix('@') {
        Some(name) => abstract_addr(name.as_bytes()),
        None => SocketAddr::from_pathname(value),
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket addresses exist only on Linux",
    ))
}

/// Tells systemd the program is ready (`READY=1`): call it once every listener is up
/// (manager), or once the configuration is loaded and the program runs (agent).
/// A failure is logged, never fatal: systemd then times the start out and says so.
pub fn ready() {
    log_outcome("READY=1", send("READY=1"));
}

/// Tells systemd the program is stopping (`STOPPING=1`), so `systemctl status` shows
/// it deactivating while the Byes go out.
/// Said once per process: the signal handler says it at once (the process may exit
/// before any other task runs), [`stopping_on`] for other ways of stopping.
pub fn stopping() {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SAID.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    log_outcome("STOPPING=1", send("STOPPING=1"));
}

/// Sends [`stopping`] when `shutdown` is cancelled (from a task: call it within a
/// Tokio runtime). Does nothing outside systemd.
pub fn stopping_on(shutdown: tokio_util::sync::CancellationToken) {
    if std::env::var_os(NOTIFY_SOCKET_ENV).is_none_or(|v| v.is_empty()) {
        return;
    }
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopping();
    });
}

fn log_outcome(state: &str, outcome: io::Result<bool>) {
    match outcome {
        Ok(true) => tracing::debug!(state, "notified systemd"),
        Ok(false) => {}
        Err(e) => tracing::warn!(state, "cannot notify systemd: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_and_abstract_names_are_told_apart() {
        let path = socket_addr("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abs = socket_addr("@/org/freedesktop/systemd1/notify").unwrap();
        assert!(abs.as_pathname().is_none());
        assert!(!abs.is_unnamed());
    }

    #[test]
    fn a_datagram_reaches_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let addr = socket_addr(path.to_str().unwrap()).unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to_addr(b"READY=1", &addr)
            .unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
