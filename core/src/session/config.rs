//! Session settings.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

/// The version this implementation announces in its hellos. It stays `0.x` so that
/// RedPepper 0.3.4 peers (which refuse another major version) accept us.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings of one session. Defaults follow RedPepper where it has one.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Version announced in our hello. Default: [`VERSION`].
    pub version: String,
    /// How long to wait for the peer's hello. Default 3 s (RedPepper agent's default;
    /// RedPepper's manager has no limit, ours uses this too). Zero means no limit.
    pub hello_timeout: Duration,
    /// Interval between our pings; zero disables pinging. Default 30 s.
    pub ping_interval: Duration,
    /// How long a Pong may take while nothing else arrives from the peer either (a
    /// Pong queued behind the peer's other messages is late, not lost). Default 5 s.
    pub ping_timeout: Duration,
    /// Default timeout of [`Session::call`](crate::Session::call). Default 30 s.
    pub call_timeout: Duration,
    /// Largest payload we send (the peer refuses larger ones). Default 1 MiB.
    pub max_message_size: usize,
    /// Most incoming requests whose handlers run at once; beyond it a request is
    /// answered at once with success=false "too many requests in flight". Default 1024.
    pub max_concurrent_requests: usize,
    /// Outgoing queue bound (messages); callers wait for room. Default 1024.
    pub send_queue: usize,
    /// Send a handler's error text to the peer (true) or the generic "RPC call failed"
    /// (false), like RedPepper's `expose_error_info`. Default true.
    pub expose_errors: bool,
    /// Where to count traffic, calls and failures. Default: nowhere.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            version: VERSION.to_owned(),
            hello_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
            max_message_size: 1024 * 1024,
            max_concurrent_requests: 1024,
            send_queue: 1024,
            expose_errors: true,
            metrics: None,
        }
    }
}

/// The major version: the text before the first `.`.
pub(crate) fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}
