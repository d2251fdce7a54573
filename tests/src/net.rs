//! Loopback ports: picking a free one, and waiting until a program listens.
//!
//! Prefer letting a program bind port 0 and report the port it got (the Python
//! manager driver does): [`free_port`] races with every other process that binds
//! in between, which is rare but real.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::error::{or_panic, HarnessError};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Binds `127.0.0.1:0`, reads the port and closes the socket again. Another
/// process may take the port before the caller binds it: use only for programs
/// that cannot bind port 0 themselves.
///
/// # Errors
///
/// When no loopback socket can be bound.
pub fn try_free_port() -> Result<u16, HarnessError> {
    let socket = |what| move |source| HarnessError::Socket { what, source };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(socket("bind 127.0.0.1:0"))?;
    Ok(listener
        .local_addr()
        .map_err(socket("local address of 127.0.0.1:0"))?
        .port())
}

/// [`try_free_port`], panicking on errors.
pub fn free_port() -> u16 {
    or_panic(try_free_port())
}

/// Whether some socket on this machine listens on TCP `port` (any address).
///
/// Reads `/proc/net/tcp` and `/proc/net/tcp6`, so it neither connects to the
/// program (which would log a failed handshake) nor needs its cooperation.
pub fn is_listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .map(|text| listening_in_proc_table(&text, port))
            .unwrap_or(false)
    })
}

/// Waits until something listens on TCP `port`, checking every 20 ms.
///
/// # Errors
///
/// When nothing listens within `timeout`.
pub fn wait_for_listen(port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if is_listening(port) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on port {port} after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses a `/proc/net/tcp`-style table: is there a LISTEN (state `0A`) row
/// whose local port is `port`?
fn listening_in_proc_table(text: &str, port: u16) -> bool {
    text.lines().skip(1).any(|row| {
        let mut fields = row.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        match (local, state) {
            (Some(local), Some("0A")) => {
                local
                    .rsplit(':')
                    .next()
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                    == Some(port)
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_table_parsing() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   \
             1: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        assert!(listening_in_proc_table(table, 8080));
        assert!(
            !listening_in_proc_table(table, 41668),
            "an established socket is not listening"
        );
        assert!(!listening_in_proc_table(table, 1));
    }

    #[test]
    fn sees_a_listener_come_and_go() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        wait_for_listen(port, Duration::from_secs(10)).unwrap();
        drop(listener);
        assert!(!is_listening(port));
        assert!(wait_for_listen(port, Duration::from_millis(50)).is_err());
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        // Racy in theory (see the docs); on a quiet loopback it holds.
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
