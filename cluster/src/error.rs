//! [`ClusterError`]: what can go wrong on the cluster link and with its messages.

/// A cluster link or message error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The link to the broker is down; nothing can be sent until it is back.
    #[error("the cluster link is down: {0}")]
    LinkDown(String),
    /// The link's outgoing queue is full (the broker does not keep up).
    #[error("the cluster link's send queue is full ({0} messages)")]
    Backlog(usize),
    /// A message could not be encoded (a value deeper or longer than the protocol allows).
    #[error("cluster message `{kind}` cannot be encoded: {source}")]
    Encode {
        /// The message kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: redpepper_codec::CodecError,
    },
    /// A message is larger than [`crate::MAX_MESSAGE_SIZE`].
    #[error("cluster message `{kind}` is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The message kind.
        kind: &'static str,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes that are not a cluster message.
    #[error("not a cluster message: {0}")]
    Decode(String),
    /// Connecting or declaring on the broker failed.
    #[error("cluster broker {url}: {reason}")]
    Broker {
        /// The broker URL, without credentials.
        url: String,
        /// What failed.
        reason: String,
    },
}
