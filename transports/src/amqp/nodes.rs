//! [`BrokerUrls`]: the broker URLs of one RabbitMQ cluster (`amqp.url` as a list), and
//! the order in which its nodes are tried.
//!
//! A connection goes to one node; which one does not matter to RabbitMQ (queues and
//! exchanges are cluster-wide). Every connection attempt tries the nodes in turn,
//! starting from a random one so that a fleet spreads over the nodes, and after the
//! loss of a node starting from the one after it, so that the lost node is tried last.
//! A node that refuses or cannot be reached moves the attempt on to the next; the
//! caller waits its backoff only when every node failed.

use std::sync::Arc;

use super::broker::BrokerUrl;
use crate::error::TransportsError;

/// The broker URLs of one RabbitMQ cluster, never empty, all with one broker user.
#[derive(Debug, Clone)]
pub struct BrokerUrls {
    urls: Arc<[BrokerUrl]>,
}

impl From<BrokerUrl> for BrokerUrls {
    fn from(url: BrokerUrl) -> Self {
        Self {
            urls: Arc::from(vec![url]),
        }
    }
}

impl BrokerUrls {
    /// The nodes `urls`. Fails when the list is empty or when the URLs log in as
    /// different broker users (every message carries the login as `user_id`, and the
    /// peer pins it for the session); `key` names the setting in the error.
    pub fn new(key: &'static str, urls: Vec<BrokerUrl>) -> Result<Self, TransportsError> {
        let Some(first) = urls.first() else {
            return Err(TransportsError::setting(key, "expected at least one URL"));
        };
        if let Some(other) = urls.iter().find(|u| u.user() != first.user()) {
            return Err(TransportsError::setting(
                key,
                format!(
                    "every URL must log in as the same broker user ({} logs in as {}, {} as \
                     {}): the peer pins the sender's user for the session",
                    first.describe(),
                    first.user(),
                    other.describe(),
                    other.user()
                ),
            ));
        }
        Ok(Self {
            urls: Arc::from(urls),
        })
    }

    /// Parse every URL of `urls` ([`BrokerUrl::parse`]), then [`BrokerUrls::new`].
    pub fn parse(key: &'static str, urls: &[String]) -> Result<Self, TransportsError> {
        let parsed = urls
            .iter()
            .map(|u| BrokerUrl::parse(key, u))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(key, parsed)
    }

    /// The nodes, in configuration order.
    pub fn urls(&self) -> &[BrokerUrl] {
        &self.urls
    }

    /// The first URL.
    pub fn first(&self) -> &BrokerUrl {
        // Never empty: `new` refuses an empty list.
        &self.urls[0]
    }

    /// The broker user every URL logs in as.
    pub fn user(&self) -> &str {
        self.first().user()
    }

    /// Whether any URL is `amqps://` (then a TLS configuration is needed).
    pub fn is_tls(&self) -> bool {
        self.urls.iter().any(BrokerUrl::is_tls)
    }

    /// The URLs without passwords, separated by `, `.
    pub fn describe(&self) -> String {
        let all: Vec<&str> = self.urls.iter().map(BrokerUrl::describe).collect();
        all.join(", ")
    }

    /// The indices to try, each once: from a random one, `lost` (the node just lost or
    /// failed) last.
    pub(crate) fn order(&self, lost: Option<usize>) -> impl Iterator<Item = usize> {
        order_from(self.urls.len(), lost)
    }
}

/// The indices of `n` URLs to try, each once: from a random one, round, except that
/// `lost` (the node just lost or failed), if any, comes last.
pub(crate) fn order_from(n: usize, lost: Option<usize>) -> impl Iterator<Item = usize> {
    let lost = lost.filter(|&i| i < n);
    let mut order: Vec<usize> = (0..n).filter(|&i| Some(i) != lost).collect();
    if !order.is_empty() {
        let start = rand::random::<u32>() as usize % order.len();
        order.rotate_left(start);
    }
    order.extend(lost);
    order.into_iter()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn urls(list: &[&str]) -> Result<BrokerUrls, TransportsError> {
        let owned: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        BrokerUrls::parse("amqp.url", &owned)
    }

    #[test]
    fn every_url_is_tried_once_and_the_lost_one_last() {
        for n in 0..5 {
            let mut seen: Vec<usize> = order_from(n, None).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
        for _ in 0..20 {
            let o: Vec<usize> = order_from(3, Some(1)).collect();
            assert_eq!(o.len(), 3);
            assert_eq!(o[2], 1, "{o:?}");
            assert!(o.contains(&0) && o.contains(&2), "{o:?}");
        }
        assert_eq!(order_from(1, Some(0)).collect::<Vec<_>>(), [0]);
        assert_eq!(order_from(2, Some(5)).count(), 2);
    }

    #[test]
    fn one_user_for_all_nodes_and_never_empty() {
        let u = urls(&["amqp://m:p@h1:5672/v", "amqps://m:p@h2/v"]).unwrap();
        assert_eq!(u.user(), "m");
        assert!(u.is_tls());
        assert_eq!(u.describe(), "amqp://m@h1:5672/v, amqps://m@h2:5671/v");
        assert!(!u.describe().contains(":p@"));
        let e = urls(&["amqp://m:p@h1/v", "amqp://other:p@h2/v"]).unwrap_err();
        assert!(e.to_string().contains("same broker user"), "{e}");
        let e = urls(&[]).unwrap_err();
        assert!(e.to_string().contains("at least one URL"), "{e}");
    }
}
