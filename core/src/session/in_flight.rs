//! Calls waiting for their Response, keyed by the numeric part of the request id.
//!
//! Owned by the session driver alone (no lock): callers register through the
//! driver's command channel before their Request is queued for writing, so the entry
//! is always visible by the time the Response can arrive. Dropping the map (when the
//! session ends) drops every sender, which fails every waiting call.
//!
//! Call deadlines live here too, not in one timer per call: the driver keeps a single
//! sleep armed at [`InFlight::next_deadline`] and calls [`InFlight::expire`] when it
//! fires. The sweep is O(calls in flight) and runs about once per call timeout (the
//! earliest deadline of the calls still waiting), so a call costs no timer
//! registration.

use std::collections::HashMap;

use redpepper_codec::Response;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What a waiting call receives: its Response, or `None` when its deadline passed.
pub(crate) type Reply = Option<Response>;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Request ids are a per-session random prefix of 16 hex digits followed by a
/// 16-hex-digit counter: 32 lowercase hex characters, like RedPepper's uuid4 hex.
#[derive(Debug, Clone)]
pub(crate) struct IdScheme {
    prefix: [u8; 16],
}

impl IdScheme {
    pub(crate) fn random() -> Self {
        let mut prefix = [0u8; 16];
        put_hex(&mut prefix, rand::random::<u64>());
        Self { prefix }
    }

    pub(crate) fn make(&self, n: u64) -> String {
        let mut id = [0u8; 32];
        id[..16].copy_from_slice(&self.prefix);
        put_hex(&mut id[16..], n);
        // Only ASCII hex digits were written, so this is valid UTF-8.
        std::str::from_utf8(&id).map_or_else(|_| String::new(), str::to_owned)
    }

    /// The counter of one of our ids, or `None` for an id we never issued.
    pub(crate) fn parse(&self, id: &str) -> Option<u64> {
        let id = id.as_bytes();
        if id.len() != 32 || id[..16] != self.prefix {
            return None;
        }
        id[16..].iter().try_fold(0u64, |n, &b| {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            Some(n << 4 | u64::from(digit))
        })
    }
}

/// `n` as 16 lowercase hex digits into `out[..16]`.
fn put_hex(out: &mut [u8], n: u64) {
    for (i, b) in out.iter_mut().take(16).enumerate() {
        *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[derive(Debug, Default)]
pub(crate) struct InFlight {
    map: HashMap<u64, (oneshot::Sender<Reply>, Instant)>,
    /// No waiting call has a deadline before this (it may be earlier than needed).
    next: Option<Instant>,
}

impl InFlight {
    /// Register a call; a duplicate id (impossible with the counter) replaces nothing.
    pub(crate) fn insert(&mut self, n: u64, tx: oneshot::Sender<Reply>, deadline: Instant) -> bool {
        match self.map.entry(n) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((tx, deadline));
                if self.next.is_none_or(|next| deadline < next) {
                    self.next = Some(deadline);
                }
                true
            }
        }
    }

    /// Deliver a response; gives it back when no call waits for this id.
    pub(crate) fn complete(&mut self, n: u64, resp: Response) -> Result<(), Response> {
        match self.map.remove(&n) {
            // The caller may have given up in the meantime: that is fine.
            Some((tx, _)) => {
                let _ = tx.send(Some(resp));
                Ok(())
            }
            None => Err(resp),
        }
    }

    /// The caller gave up (its future was dropped).
    pub(crate) fn cancel(&mut self, n: u64) {
        self.map.remove(&n);
    }

    /// When [`InFlight::expire`] must run next, if any call waits.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.next
    }

    /// Time out every call whose deadline is not after `now`; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        if self.next.is_none_or(|next| next > now) {
            return 0;
        }
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        for (&n, &(_, deadline)) in &self.map {
            if deadline <= now {
                expired.push(n);
            } else {
                next = Some(next.map_or(deadline, |next| next.min(deadline)));
            }
        }
        self.next = next;
        for n in &expired {
            if let Some((tx, _)) = self.map.remove(n) {
                let _ = tx.send(None);
            }
        }
        expired.len()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use redpepper_codec::Value;

    #[test]
    fn ids_round_trip() {
        let s = IdScheme::random();
        let id = s.make(0xabc);
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(s.parse(&id), Some(0xabc));
        assert_eq!(s.parse("nope"), None);
        assert_eq!(IdScheme::random().parse(&id), None);
    }

    #[test]
    fn complete_cancel() {
        let mut f = InFlight::default();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        let (tx, mut rx) = oneshot::channel();
        assert!(f.insert(1, tx, later));
        let (tx2, _rx2) = oneshot::channel();
        assert!(!f.insert(1, tx2, later));
        let resp = Response {
            id: "x".into(),
            success: true,
            data: Value::Nil,
        };
        assert!(f.complete(1, resp.clone()).is_ok());
        assert_eq!(rx.try_recv().unwrap(), Some(resp.clone()));
        assert!(f.complete(1, resp).is_err());
        let (tx, _rx) = oneshot::channel();
        f.insert(2, tx, later);
        f.cancel(2);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn deadlines_expire_only_their_calls() {
        let mut f = InFlight::default();
        let now = Instant::now();
        let (soon, mut soon_rx) = oneshot::channel();
        let (late, mut late_rx) = oneshot::channel();
        f.insert(1, late, now + std::time::Duration::from_secs(10));
        f.insert(2, soon, now + std::time::Duration::from_secs(1));
        assert_eq!(
            f.next_deadline(),
            Some(now + std::time::Duration::from_secs(1))
        );
        assert_eq!(f.expire(now), 0);
        assert_eq!(f.expire(now + std::time::Duration::from_secs(1)), 1);
        assert_eq!(soon_rx.try_recv().unwrap(), None);
        assert!(late_rx.try_recv().is_err(), "the later call still waits");
        assert_eq!(
            f.next_deadline(),
            Some(now + std::time::Duration::from_secs(10))
        );
        assert_eq!(f.expire(now + std::time::Duration::from_secs(10)), 1);
        assert_eq!(late_rx.try_recv().unwrap(), None);
        assert_eq!(f.next_deadline(), None);
    }

    #[test]
    fn ids_are_hex_and_foreign_ids_are_refused() {
        let s = IdScheme::random();
        for n in [0, 1, 0xf, 0x1234_5678_9abc_def0, u64::MAX] {
            let id = s.make(n);
            assert_eq!(&id[16..], format!("{n:016x}"));
            assert_eq!(s.parse(&id), Some(n));
        }
        let id = s.make(7);
        assert_eq!(s.parse(&id.to_uppercase()), None);
        assert_eq!(s.parse(&format!("{}x", &id[..31])), None);
        assert_eq!(s.parse(&id[..31]), None);
    }
}
