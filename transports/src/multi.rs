//! [`MultiDialer`]: the agent's list of managers (`manager_host` or `websocket.url`
//! with several entries, a manager cluster).
//!
//! One dial is one round: it starts from a random entry, so that the agents of a
//! manager that died spread over the survivors instead of all landing on the next
//! one in the list, and tries each entry once, in list order from there (wrapping),
//! until one connects: the transport's connect and its TLS / WebSocket handshake
//! (each entry's dialer tries every address of its host name in turn; see the
//! `addrs` module). Authentication is the session's business, after the dial. The
//! agent's backoff runs between rounds.
//!
//! ```text
//!   entries  [ mgr-a, mgr-b, mgr-c ]      start = random, say 1
//!   round       mgr-b  ->  mgr-c  ->  mgr-a      first success wins
//!   all fail    connect to any of 3 managers: tls://mgr-b:7051: ...; tls://mgr-c:7051: ...; ...
//! ```
//!
//! A single entry is not wrapped (the factory returns its dialer as is), so it
//! behaves, logs and fails exactly as before.

use futures::future::BoxFuture;
use redpepper_core::error::TransportError;
use redpepper_core::transport::{BoxTransport, Dialer};

use crate::addrs::reason;

/// Dials a list of managers, one round per dial, from a random entry.
pub struct MultiDialer {
    entries: Vec<Box<dyn Dialer>>,
}

impl std::fmt::Debug for MultiDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiDialer")
            .field("entries", &self.describe())
            .finish()
    }
}

impl MultiDialer {
    /// A dialer over `entries`, in the configuration's order.
    pub fn new(entries: Vec<Box<dyn Dialer>>) -> Self {
        Self { entries }
    }

    /// How many entries the list has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty (every dial then fails).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One round from a random entry.
    async fn round(&self) -> Result<(BoxTransport, usize), TransportError> {
        let start = match self.entries.len() {
            0 => 0,
            n => rand::random_range(0..n),
        };
        self.round_from(start).await
    }

    /// One round from entry `start`: each entry once, in order (wrapping), until one
    /// connects; returns the transport and the index of the entry that answered.
    pub(crate) async fn round_from(
        &self,
        start: usize,
    ) -> Result<(BoxTransport, usize), TransportError> {
        let n = self.entries.len();
        let mut failures: Vec<String> = Vec::with_capacity(n);
        for i in (0..n).map(|k| (start + k) % n) {
            let entry = &self.entries[i];
            match entry.dial().await {
                Ok(transport) => return Ok((transport, i)),
                Err(e) => failures.push(format!("{}: {}", entry.describe(), reason(&e))),
            }
        }
        let reason = if failures.is_empty() {
            "no manager configured".to_owned()
        } else {
            failures.join("; ")
        };
        Err(TransportError::Connect {
            target: format!("any of {n} managers"),
            reason,
        })
    }
}

impl Dialer for MultiDialer {
    fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
        Box::pin(async move { self.round().await.map(|(t, _)| t) })
    }

    /// The entries, in the configuration's order: `tls://a:7051, tls://b:7051`.
    fn describe(&self) -> String {
        let each: Vec<String> = self.entries.iter().map(|d| d.describe()).collect();
        each.join(", ")
    }

    /// Names the entry that answered.
    fn dial_described(&self) -> BoxFuture<'_, Result<(BoxTransport, String), TransportError>> {
        Box::pin(async move {
            let (transport, i) = self.round().await?;
            let answered = self.entries[i].describe();
            Ok((transport, answered))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use redpepper_core::memory::pair as memory_pair;
    use redpepper_core::transport::Transport;

    use super::*;

    /// An entry that records its dials and succeeds or fails as told.
    struct Stub {
        name: &'static str,
        up: bool,
        log: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Dialer for Stub {
        fn dial(&self) -> BoxFuture<'_, Result<BoxTransport, TransportError>> {
            Box::pin(async move {
                self.log.lock().unwrap().push(self.name);
                if self.up {
                    Ok(memory_pair(16).0.boxed())
                } else {
                    Err(TransportError::Connect {
                        target: self.name.to_owned(),
                        reason: format!("{} refused", self.name),
                    })
                }
            })
        }

        fn describe(&self) -> String {
            format!("tls://{}", self.name)
        }
    }

    fn multi(up: [bool; 3]) -> (MultiDialer, Arc<Mutex<Vec<&'static str>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let entries = ["a", "b", "c"]
            .into_iter()
            .zip(up)
            .map(|(name, up)| {
                Box::new(Stub {
                    name,
                    up,
                    log: Arc::clone(&log),
                }) as Box<dyn Dialer>
            })
            .collect();
        (MultiDialer::new(entries), log)
    }

    #[tokio::test]
    async fn a_round_goes_from_its_start_wrapping_to_the_first_that_answers() {
        let (d, log) = multi([true, false, false]);
        let (_, i) = d.round_from(1).await.unwrap();
        assert_eq!(i, 0);
        assert_eq!(*log.lock().unwrap(), ["b", "c", "a"]);
        assert_eq!(d.describe(), "tls://a, tls://b, tls://c");
    }

    #[tokio::test]
    async fn all_failing_names_each_entry_in_the_order_tried() {
        let (d, log) = multi([false; 3]);
        let e = d.round_from(2).await.err().unwrap().to_string();
        assert_eq!(
            e,
            "connect to any of 3 managers: tls://c: c refused; tls://a: a refused; \
             tls://b: b refused"
        );
        assert_eq!(log.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn rounds_start_at_random_entries() {
        let (d, log) = multi([true; 3]);
        for _ in 0..200 {
            let (_, answered) = d.dial_described().await.unwrap();
            assert!(answered.starts_with("tls://"));
        }
        let log = log.lock().unwrap();
        // Every entry answered first some time: 3 * (2/3)^200 < 1e-34.
        for name in ["a", "b", "c"] {
            assert!(log.contains(&name), "{name} never started a round");
        }
    }
}
