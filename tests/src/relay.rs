//! [`Relay`]: a TCP relay between an agent and its manager that cuts every current
//! connection on demand, and can refuse new ones for a while (accepted and closed at
//! once): a network blip, made to order.
//!
//! ```no_run
//! # let manager_addr: std::net::SocketAddr = "127.0.0.1:7051".parse().unwrap();
//! let relay = redpepper_tests::relay::Relay::start(manager_addr);
//! // point the agent at relay.addr() ...
//! relay.refuse(true);
//! assert!(relay.cut() > 0);
//! relay.refuse(false);
//! ```
//!
//! It runs on a small tokio runtime of its own, so the (blocking) end-to-end tests use
//! it without one; dropping it stops it and closes every connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::error::{or_panic, HarnessError};

/// A running relay. See the module documentation.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    /// Bumped by [`Relay::cut`]: every connection open then closes.
    cuts: watch::Sender<u64>,
    refusing: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    relayed: Arc<AtomicUsize>,
    // Dropped last: stops the tasks and closes their sockets.
    _runtime: Runtime,
}

impl Relay {
    /// Relay connections to `127.0.0.1:PORT` (a free port) to `target`.
    ///
    /// # Panics
    ///
    /// When it cannot start (the message says why).
    pub fn start(target: SocketAddr) -> Relay {
        or_panic(Self::try_start(target))
    }

    /// [`Relay::start`], returning the error.
    pub fn try_start(target: SocketAddr) -> Result<Relay, HarnessError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("relay")
            .enable_all()
            .build()
            .map_err(|source| HarnessError::Socket {
                what: "starting the relay's runtime",
                source,
            })?;
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|source| HarnessError::Socket {
                what: "binding the relay",
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| HarnessError::Socket {
                what: "the relay's address",
                source,
            })?;
        let (cuts, _) = watch::channel(0);
        let relay = Relay {
            addr,
            cuts,
            refusing: Arc::default(),
            open: Arc::default(),
            relayed: Arc::default(),
            _runtime: runtime,
        };
        relay._runtime.spawn(accept_loop(
            listener,
            target,
            relay.cuts.clone(),
            relay.refusing.clone(),
            relay.open.clone(),
            relay.relayed.clone(),
        ));
        Ok(relay)
    }

    /// Where agents connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Close every connection open now (both sides); how many there were.
    pub fn cut(&self) -> usize {
        let open = self.open.load(Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
        open
    }

    /// While on, new connections are accepted and closed at once.
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// Connections relayed to the target so far.
    pub fn relayed(&self) -> usize {
        self.relayed.load(Ordering::SeqCst)
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    cuts: watch::Sender<u64>,
    refusing: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    relayed: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if refusing.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let mut cut = cuts.subscribe();
        cut.mark_unchanged();
        let open = open.clone();
        relayed.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            open.fetch_add(1, Ordering::SeqCst);
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn relays_cuts_and_refuses() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay::start(upstream.local_addr().unwrap());
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        let (mut s, _) = upstream.accept().unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        s.write_all(b"pong").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(relay.cut(), 1);
        // Both ends see the connection end.
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
        relay.refuse(true);
        let mut refused = TcpStream::connect(relay.addr()).unwrap();
        assert_eq!(refused.read(&mut buf).unwrap_or(0), 0);
        relay.refuse(false);
        assert_eq!(relay.relayed(), 1);
    }
}
