//! Broker URLs and connections.
//!
//! [`BrokerUrl`] parses `amqp://USER:PASSWORD@HOST:PORT/VHOST?heartbeat=N` (RabbitMQ's
//! URI spec: the vhost is percent-encoded, `%2f` is `/`), knows the login user that
//! goes into every message's `user_id`, and describes itself without the password.
//! [`BrokerUrl::connect`] opens a lapin connection; for `amqps://` the TLS session is
//! made by rustls with the configuration the caller passes (built from the `tls_*`
//! settings with the ring provider), never by lapin's own defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::{AMQPUriTcpExt, RustlsConnector, TLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};
use redpepper_core::error::TransportError;
use rustls::ClientConfig;

use super::{DEFAULT_FRAME_MAX, DEFAULT_HEARTBEAT_SECS};
use crate::error::TransportsError;

/// A parsed broker URL.
#[derive(Clone)]
pub struct BrokerUrl {
    uri: AMQPUri,
    described: String,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BrokerUrl").field(&self.described).finish()
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.described)
    }
}

/// The host of `url` exactly as written (lapin's parser turns `[::1]` into
/// `localhost`), without brackets.
fn raw_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h.to_owned());
    }
    Some(host_port.split(':').next()?.to_owned())
}

impl BrokerUrl {
    /// Parse `url`; `key` names the setting in error messages (`amqp.url`).
    pub fn parse(key: &'static str, url: &str) -> Result<Self, TransportsError> {
        let mut uri: AMQPUri = url.trim().parse().map_err(|e: String| {
            TransportsError::setting(key, format!("not an amqp:// or amqps:// URL: {e}"))
        })?;
        match uri.query.auth_mechanism {
            None | Some(SASLMechanism::Plain | SASLMechanism::AMQPlain) => {}
            Some(other) => {
                return Err(TransportsError::setting(
                    key,
                    format!(
                        "auth_mechanism {} is not supported: every message carries the login \
                         user as user_id, which needs a user name and password in the URL",
                        other.name()
                    ),
                ))
            }
        }
        if let Some(host) = raw_host(url.trim()).filter(|h| h.contains(':')) {
            uri.authority.host = host;
        }
        if uri.authority.userinfo.username.len() > 255 {
            return Err(TransportsError::setting(
                key,
                "the broker user name exceeds AMQP's limit of 255 bytes",
            ));
        }
        if uri.authority.host.is_empty() {
            return Err(TransportsError::setting(
                key,
                "the URL names no broker host",
            ));
        }
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        if uri.query.frame_max.is_none() {
            uri.query.frame_max = Some(DEFAULT_FRAME_MAX);
        }
        let host = if uri.authority.host.contains(':') {
            format!("[{}]", uri.authority.host)
        } else {
            uri.authority.host.clone()
        };
        let described = format!(
            "{}://{}@{}:{}/{}",
            uri.scheme,
            uri.authority.userinfo.username,
            host,
            uri.authority.port,
            if uri.vhost == "/" { "%2f" } else { &uri.vhost },
        );
        Ok(Self { uri, described })
    }

    /// Whether this is an `amqps://` URL.
    pub fn is_tls(&self) -> bool {
        self.uri.scheme == AMQPScheme::AMQPS
    }

    /// The broker user we log in as (and put in `user_id`).
    pub fn user(&self) -> &str {
        &self.uri.authority.userinfo.username
    }

    /// The virtual host.
    pub fn vhost(&self) -> &str {
        &self.uri.vhost
    }

    /// The broker's host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.uri.authority.host
    }

    /// `scheme://user@host:port/vhost`, without the password.
    pub fn describe(&self) -> &str {
        &self.described
    }

    /// Connect and log in within `timeout`. `tls` is required for `amqps://` (the
    /// broker's certificate is verified by it); `name` shows up as the connection name
    /// in the broker's management tools.
    pub async fn connect(
        &self,
        tls: Option<&Arc<ClientConfig>>,
        name: String,
        timeout: Duration,
    ) -> Result<Connection, TransportError> {
        self.connect_checked(tls, name, timeout)
            .await
            .map_err(|f| f.error)
    }

    /// [`connect`](Self::connect), telling apart failures that need an operator
    /// (refused login, vhost or permissions, the broker's certificate) from those
    /// that may pass (broker down, unreachable, not ready).
    pub(crate) async fn connect_checked(
        &self,
        tls: Option<&Arc<ClientConfig>>,
        name: String,
        timeout: Duration,
    ) -> Result<Connection, ConnectFailure> {
        let fail = |reason: String, operator: bool| ConnectFailure {
            error: TransportError::Connect {
                target: self.described.clone(),
                reason,
            },
            operator,
        };
        let connector = match (self.is_tls(), tls) {
            (false, _) => None,
            (true, Some(config)) => Some(RustlsConnector::from(Arc::clone(config))),
            (true, None) => return Err(fail("amqps:// needs a TLS configuration".into(), true)),
        };
        let runtime = lapin::runtime::default_runtime()
            .map_err(|e| fail(e.to_string(), needs_operator(&e)))?;
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let host = self.uri.authority.host.clone();
        let connect = async move |uri: AMQPUri, runtime| {
            // TCP first (lapin's own TLS would use its default verifier), then our TLS.
            let mut plain = uri;
            plain.scheme = AMQPScheme::AMQP;
            let stream = plain
                .connect_with_config_async(TLSConfig::default(), &runtime)
                .await?;
            match &connector {
                None => Ok(stream),
                Some(tls) => Ok(stream.into_rustls(tls, &host).await?),
            }
        };
        let attempt = Connection::connector(self.uri.clone(), runtime, connect, props);
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(fail(explain(&e), needs_operator(&e))),
            Err(_) => Err(fail(
                format!("no broker connection within {:.1}s", timeout.as_secs_f64()),
                false,
            )),
        }
    }
}

/// A failed connection attempt.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    /// What went wrong, naming the broker.
    pub(crate) error: TransportError,
    /// Whether retrying cannot help until an operator acts (see [`needs_operator`]).
    pub(crate) operator: bool,
}

/// Whether `e` is a refusal that retrying cannot cure: the broker refused our login
/// or access (`ACCESS_REFUSED`, `NOT_ALLOWED`, `INVALID_PATH`: wrong user, password,
/// vhost or permissions), another connection holds our exclusive queue
/// (`RESOURCE_LOCKED`), a queue or exchange exists with other flags
/// (`PRECONDITION_FAILED`), the broker speaks another protocol version, or its TLS
/// certificate was refused. Anything else (connection refused, reset, timed out, host
/// not found, the broker closing on us while it starts) may pass by itself.
pub(crate) fn needs_operator(e: &lapin::Error) -> bool {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            matches!(amqp.get_id(), 402 | 403 | 405 | 406 | 530)
        }
        lapin::ErrorKind::InvalidProtocolVersion(_)
        | lapin::ErrorKind::AuthProviderError(_)
        | lapin::ErrorKind::NoDefaultRuntime => true,
        lapin::ErrorKind::IOError(io) => {
            io.kind() == std::io::ErrorKind::InvalidData
                && io.to_string().to_lowercase().contains("certificate")
        }
        _ => false,
    }
}

/// A lapin error, with a hint where RabbitMQ's wording alone leaves people guessing.
pub(crate) fn explain(e: &lapin::Error) -> String {
    let text = e.to_string();
    if text.contains("ACCESS_REFUSED") && text.contains("PLAIN") {
        format!("{text} (wrong broker user or password?)")
    } else if text.contains("ACCESS_REFUSED") {
        format!("{text} (see docs/AMQP.md for the permissions each broker user needs)")
    } else if text.contains("NOT_ALLOWED") && text.contains("vhost") {
        format!("{text} (does the vhost exist, and may this user use it?)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_describes_without_password() {
        let u =
            BrokerUrl::parse("amqp.url", "amqp://agent1:s3cret@broker.example:5673/%2f").unwrap();
        assert_eq!(u.user(), "agent1");
        assert_eq!(u.vhost(), "/");
        assert!(!u.is_tls());
        assert_eq!(u.describe(), "amqp://agent1@broker.example:5673/%2f");
        assert!(!format!("{u:?}").contains("s3cret"));
        let u = BrokerUrl::parse("amqp.url", "amqps://m:p@10.0.0.1/prod").unwrap();
        assert!(u.is_tls());
        assert_eq!(u.describe(), "amqps://m@10.0.0.1:5671/prod");
        assert_eq!(u.uri.query.heartbeat, Some(DEFAULT_HEARTBEAT_SECS));
        assert_eq!(u.uri.query.frame_max, Some(DEFAULT_FRAME_MAX));
        let u = BrokerUrl::parse("amqp.url", "amqp://m:p@h/v?heartbeat=5&frame_max=8192").unwrap();
        assert_eq!(u.uri.query.heartbeat, Some(5));
        assert_eq!(u.uri.query.frame_max, Some(8192));
    }

    #[test]
    fn ipv6_hosts_survive() {
        let u = BrokerUrl::parse("amqp.url", "amqp://m:p@[::1]:5672/v").unwrap();
        assert_eq!(u.host(), "::1");
        assert_eq!(u.describe(), "amqp://m@[::1]:5672/v");
    }

    #[test]
    fn refusals_need_an_operator_outages_do_not() {
        use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError, AMQPSoftError};
        let amqp = |kind| {
            lapin::Error::from(lapin::ErrorKind::ProtocolError(AMQPError::new(
                kind,
                "x".into(),
            )))
        };
        assert!(needs_operator(&amqp(AMQPErrorKind::Soft(
            AMQPSoftError::ACCESSREFUSED
        ))));
        assert!(needs_operator(&amqp(AMQPErrorKind::Soft(
            AMQPSoftError::RESOURCELOCKED
        ))));
        assert!(needs_operator(&amqp(AMQPErrorKind::Soft(
            AMQPSoftError::PRECONDITIONFAILED
        ))));
        assert!(needs_operator(&amqp(AMQPErrorKind::Hard(
            AMQPHardError::NOTALLOWED
        ))));
        assert!(!needs_operator(&amqp(AMQPErrorKind::Hard(
            AMQPHardError::CONNECTIONFORCED
        ))));
        let io = |kind, text: &str| lapin::Error::from(std::io::Error::new(kind, text.to_owned()));
        assert!(!needs_operator(&io(
            std::io::ErrorKind::ConnectionRefused,
            "refused"
        )));
        assert!(!needs_operator(&io(
            std::io::ErrorKind::TimedOut,
            "timed out"
        )));
        assert!(needs_operator(&io(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer"
        )));
    }

    #[test]
    fn refuses_what_cannot_work() {
        let e = BrokerUrl::parse("amqp.url", "http://h/").unwrap_err();
        assert!(e.to_string().starts_with("amqp.url: not an amqp"), "{e}");
        let e = BrokerUrl::parse("amqp.url", "amqps://h/?auth_mechanism=external").unwrap_err();
        assert!(e.to_string().contains("EXTERNAL is not supported"), "{e}");
    }
}
