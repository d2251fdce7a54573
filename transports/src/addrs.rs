//! Dialing one host: every address its name resolves to (A and AAAA records), in the
//! resolver's order, each within the dial timeout, until one connects (TCP and the
//! transport's handshake). Used by the TLS and WebSocket dialers when they connect
//! directly (through a proxy, the proxy resolves the name).
//!
//! With one address the error is that address's, unchanged; with several it lists
//! what each said.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use redpepper_core::error::TransportError;

/// The addresses of `host:port`, duplicates removed, in the resolver's order, or the
/// `pinned` ones when given (tests). The error is the resolver's.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    pinned: Option<&[SocketAddr]>,
) -> std::io::Result<Vec<SocketAddr>> {
    if let Some(pinned) = pinned {
        return Ok(pinned.to_vec());
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    for addr in tokio::net::lookup_host((host, port)).await? {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    if out.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(out)
}

/// What `e` says, without the target when it is a [`TransportError::Connect`] (the
/// caller names it).
pub(crate) fn reason(e: &TransportError) -> String {
    match e {
        TransportError::Connect { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Runs `attempt` on each address in turn, each limited to `per_address` (past it,
/// `timed_out()` is that address's error), and returns the first success. All
/// failed: the only address's error as it is, or a [`TransportError::Connect`] for
/// `target` listing each address and its reason.
pub(crate) async fn each_address<T, Fut>(
    addrs: &[SocketAddr],
    per_address: Duration,
    target: &str,
    attempt: impl Fn(SocketAddr) -> Fut,
    timed_out: impl Fn() -> TransportError,
) -> Result<T, TransportError>
where
    Fut: Future<Output = Result<T, TransportError>>,
{
    let mut failures: Vec<(SocketAddr, TransportError)> = Vec::new();
    for &addr in addrs {
        let result = match tokio::time::timeout(per_address, attempt(addr)).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        };
        match result {
            Ok(t) => return Ok(t),
            Err(e) => {
                tracing::debug!(manager = %target, %addr, error = %e, "address failed");
                failures.push((addr, e));
            }
        }
    }
    if failures.len() == 1 {
        if let Some((_, e)) = failures.pop() {
            return Err(e);
        }
    }
    let reason = if failures.is_empty() {
        "could not resolve to any address".to_owned()
    } else {
        let each: Vec<String> = failures
            .iter()
            .map(|(addr, e)| format!("{addr}: {}", reason(e)))
            .collect();
        format!("every address failed: {}", each.join("; "))
    };
    Err(TransportError::Connect {
        target: target.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    fn connect_error(e: std::io::Error) -> TransportError {
        TransportError::Connect {
            target: "m:1".into(),
            reason: e.to_string(),
        }
    }

    /// A loopback port nothing listens on (bound, then closed).
    async fn refused() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    fn timed_out() -> TransportError {
        TransportError::Other("timed out".into())
    }

    #[tokio::test]
    async fn the_second_address_is_used_when_the_first_refuses() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let dead = refused().await;
        let tried = Mutex::new(Vec::new());
        let attempt = |a: SocketAddr| {
            tried.lock().unwrap().push(a);
            async move { TcpStream::connect(a).await.map_err(connect_error) }
        };
        let addrs = [dead, live_addr];
        let tcp = each_address(&addrs, Duration::from_secs(30), "m:1", attempt, timed_out)
            .await
            .unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), live_addr);
        assert_eq!(*tried.lock().unwrap(), [dead, live_addr]);
    }

    #[tokio::test]
    async fn errors_keep_a_single_address_error_and_list_several() {
        let (a, b) = (refused().await, refused().await);
        let attempt =
            |a: SocketAddr| async move { TcpStream::connect(a).await.map_err(connect_error) };
        let one = each_address(&[a], Duration::from_secs(30), "m:1", attempt, timed_out)
            .await
            .unwrap_err();
        assert!(matches!(&one, TransportError::Connect { target, .. } if target == "m:1"));
        assert!(!one.to_string().contains("every address"), "{one}");
        let two = each_address(&[a, b], Duration::from_secs(30), "m:1", attempt, timed_out)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            two.starts_with("connect to m:1: every address failed: "),
            "{two}"
        );
        assert!(
            two.contains(&format!("{a}: ")) && two.contains(&format!("{b}: ")),
            "{two}"
        );
    }

    #[tokio::test]
    async fn a_silent_address_times_out_and_the_next_is_tried() {
        let attempt = |a: SocketAddr| async move {
            if a.port() == 1 {
                std::future::pending::<()>().await;
            }
            Ok::<u16, TransportError>(a.port())
        };
        let addrs: [SocketAddr; 2] = [
            "192.0.2.1:1".parse().unwrap(),
            "192.0.2.2:2".parse().unwrap(),
        ];
        let port = each_address(&addrs, Duration::from_millis(50), "m:1", attempt, timed_out)
            .await
            .unwrap();
        assert_eq!(port, 2);
    }
}
