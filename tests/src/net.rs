//! Loopback ports: picking a free one, and waiting until a program listens.
//!
//! Prefer letting a program bind port 0 and report the port it got (the Python
//! manager driver does): [`free_port`] races with every other process that binds
//! in between (rare: its ports lie below the ephemeral range that outgoing
//! connections use).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::error::{or_panic, HarnessError};

/// A TCP port that was free a moment ago, below the kernel's ephemeral range.
///
/// A port that `bind(0)` hands out comes from the ephemeral range, the same range
/// outgoing connections take their local ports from: with dozens of tests and their
/// agents connecting in one test process, such a port was sometimes taken by a
/// connection before the program under test bound it ("address in use"). So the
/// ports come from below that range (read from
/// `/proc/sys/net/ipv4/ip_local_port_range`), from a random start and then in turn
/// within this process, each checked by binding `0.0.0.0` (which also fails when any
/// address holds the port). Another process may still take it: use only for
/// programs that cannot bind port 0 themselves.
///
/// # Errors
///
/// When no port in the range can be bound.
pub fn try_free_port() -> Result<u16, HarnessError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|low| *low > LOWEST + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral_low - LOWEST;
    // A random start per process, so that two test processes rarely walk together.
    let _ = NEXT.compare_exchange(
        0,
        rand::random_range(1..span),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let mut last = None;
    for _ in 0..span.min(2_000) {
        let port = LOWEST + NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        match TcpListener::bind(("0.0.0.0", port)) {
            Ok(_) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(HarnessError::Socket {
        what: "bind a port below the ephemeral range",
        source: last.unwrap_or_else(|| std::io::Error::other("no port tried")),
    })
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
