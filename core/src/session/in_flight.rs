//! Calls waiting for their Response, keyed by the numeric part of the request id.
//!
//! Owned by the session driver alone (no lock): callers register through the
//! driver's command channel before their Request is queued for writing, so the entry
//! is always visible by the time the Response can arrive. Dropping the map (when the
//! session ends) drops every sender, which fails every waiting call.

use std::collections::HashMap;

use redpepper_codec::Response;
use tokio::sync::oneshot;

/// Request ids are a per-session random prefix of 16 hex digits followed by a
/// 16-hex-digit counter: 32 lowercase hex characters, like RedPepper's uuid4 hex.
#[derive(Debug, Clone)]
pub(crate) struct IdScheme {
    prefix: String,
}

impl IdScheme {
    pub(crate) fn random() -> Self {
        Self {
            prefix: format!("{:016x}", rand::random::<u64>()),
        }
    }

    pub(crate) fn make(&self, n: u64) -> String {
        let mut id = String::with_capacity(32);
        id.push_str(&self.prefix);
        // Writing to a String cannot fail.
        let _ = std::fmt::Write::write_fmt(&mut id, format_args!("{n:016x}"));
        id
    }

    /// The counter of one of our ids, or `None` for an id we never issued.
    pub(crate) fn parse(&self, id: &str) -> Option<u64> {
        let rest = id.strip_prefix(self.prefix.as_str())?;
        if rest.len() != 16 {
            return None;
        }
        u64::from_str_radix(rest, 16).ok()
    }
}

#[derive(Debug, Default)]
pub(crate) struct InFlight {
    map: HashMap<u64, oneshot::Sender<Response>>,
}

impl InFlight {
    /// Register a call; a duplicate id (impossible with the counter) replaces nothing.
    pub(crate) fn insert(&mut self, n: u64, tx: oneshot::Sender<Response>) -> bool {
        match self.map.entry(n) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(tx);
                true
            }
        }
    }

    /// Deliver a response; gives it back when no call waits for this id.
    pub(crate) fn complete(&mut self, n: u64, resp: Response) -> Result<(), Response> {
        match self.map.remove(&n) {
            // The caller may have given up in the meantime: that is fine.
            Some(tx) => {
                let _ = tx.send(resp);
                Ok(())
            }
            None => Err(resp),
        }
    }

    /// The caller gave up (timeout or dropped future).
    pub(crate) fn cancel(&mut self, n: u64) {
        self.map.remove(&n);
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
        let (tx, mut rx) = oneshot::channel();
        assert!(f.insert(1, tx));
        let (tx2, _rx2) = oneshot::channel();
        assert!(!f.insert(1, tx2));
        let resp = Response {
            id: "x".into(),
            success: true,
            data: Value::Nil,
        };
        assert!(f.complete(1, resp.clone()).is_ok());
        assert_eq!(rx.try_recv().unwrap(), resp);
        assert!(f.complete(1, resp).is_err());
        let (tx, _rx) = oneshot::channel();
        f.insert(2, tx);
        f.cancel(2);
        assert_eq!(f.len(), 0);
    }
}
