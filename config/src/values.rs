//! Small value types shared by the configuration structs, and the lenient
//! deserializers used for the raw (file-level) representation.

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, value::SeqAccessDeserializer, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

/// A secret string (agent secret, key password). Its `Debug` prints `***`; use
/// [`Secret::expose`] to get the value. It deliberately has no `Display`.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Compares in constant time.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Str::deserialize(d).map(|s| Secret(s.0))
    }
}

/// A string that also accepts numbers and booleans (`agent_secret: 1234`,
/// `REDPEPPER_AGENT_SECRET=1234`) and keeps their text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str(v))
            }
            fn visit_char<E: de::Error>(self, v: char) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration in seconds: a non-negative integer or decimal (`0.5`), at most
/// [`MAX_SECONDS`]. Every duration key goes through this type, so none can overflow an
/// `Instant` when added to the time now (`hello_timeout: 1e19` once panicked at the
/// first connection): a larger value is refused at load time, naming the key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Seconds(pub Duration);

/// The largest duration a key takes: ten years, in seconds.
pub const MAX_SECONDS: u64 = 10 * 365 * 86400;

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn float<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Duration::try_from_secs_f64(v)
                    .ok()
                    .filter(|d| d.as_secs_f64() <= MAX_SECONDS as f64)
                    .map(Seconds)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
            }

            fn whole<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                if v > MAX_SECONDS {
                    return Err(E::invalid_value(de::Unexpected::Unsigned(v), &self));
                }
                Ok(Seconds(Duration::from_secs(v)))
            }
        }
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a non-negative number of seconds (integer or decimal), at most {MAX_SECONDS} (ten years)"
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                self.whole(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                match u64::try_from(v) {
                    Ok(v) => self.whole(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                self.float(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                match v.trim().parse::<f64>() {
                    Ok(f) => self.float(f),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One value or a list of values (`allowed_ips: 10.0.0.0/8` or a list).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OneOrMany<T>(pub Vec<T>);

impl OneOrMany<Str> {
    /// The values as strings, empty ones left out.
    pub(crate) fn strings(self) -> Vec<String> {
        self.0
            .into_iter()
            .map(|s| s.0)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|t| OneOrMany(vec![t]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|t| OneOrMany(vec![t]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|t| OneOrMany(vec![t]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|t| OneOrMany(vec![t]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OneOrMany(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OneOrMany(Vec::new()))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An IP network written as CIDR (`10.0.0.0/8`) or as a bare address, which
/// means that address only (/32 or /128). Host bits are cleared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Net(pub IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Str::deserialize(d)?;
        parse_net(&s.0).map(Net).map_err(de::Error::custom)
    }
}

/// Parses a CIDR network or a bare IP address (/32 or /128).
pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(net) = IpNet::from_str(t) {
        return Ok(net.trunc());
    }
    IpAddr::from_str(t)
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP network (CIDR such as 10.0.0.0/8) or IP address"))
}

/// `[A-Za-z0-9_-]+`: RedPepper's rule for agent ids.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Replaces the password of a URL's `user:password@` part by `***`, for `Debug`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].split_once(':') {
        Some((user, _password)) => {
            format!("{}{}:***@{}", &url[..scheme_end + 3], user, &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// Checks that `url` starts with one of `schemes` followed by `://` and a host.
pub(crate) fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !rest.is_empty()
    });
    if ok {
        Ok(())
    } else {
        let list: Vec<String> = schemes.iter().map(|s| format!("{s}://…")).collect();
        Err(format!("expected a URL of the form {}", list.join(" or ")))
    }
}

/// The host of `url` when it is a plain `amqp://` URL (no TLS) to a host other than a
/// loopback one: credentials and messages would cross the network in clear.
/// `None` for `amqps://`, loopback hosts, and what is not an AMQP URL.
pub fn plain_amqp_remote_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("amqp") {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    (!is_loopback_host(host)).then(|| host.to_owned())
}

/// Whether a `HOST:PORT` bind address listens on more than the loopback interface.
pub fn is_non_loopback_bind(bind: &str) -> bool {
    let host = match bind.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => bind.rsplit_once(':').map_or(bind, |(h, _)| h),
    };
    !is_loopback_host(host)
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_amqp_to_a_remote_host_is_named() {
        let remote = plain_amqp_remote_host;
        assert_eq!(
            remote("amqp://u:p@broker.lan:5672/%2f").as_deref(),
            Some("broker.lan")
        );
        assert_eq!(remote("amqp://10.0.0.5/").as_deref(), Some("10.0.0.5"));
        assert_eq!(
            remote("AMQP://[2001:db8::1]:5672").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(remote("amqp://127.0.0.1:5672/%2f"), None);
        assert_eq!(remote("amqp://u:p@localhost"), None);
        assert_eq!(remote("amqp://[::1]:5672"), None);
        assert_eq!(remote("amqps://u:p@broker.lan"), None);
        assert!(is_non_loopback_bind("0.0.0.0:7050"));
        assert!(is_non_loopback_bind("[::]:7050"));
        assert!(is_non_loopback_bind("admin.lan:7050"));
        assert!(!is_non_loopback_bind("127.0.0.1:7050"));
        assert!(!is_non_loopback_bind("[::1]:7050"));
        assert!(!is_non_loopback_bind("localhost:7050"));
    }

    #[test]
    fn nets() {
        assert_eq!(parse_net("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_net("10.1.2").is_err());
    }

    #[test]
    fn ids() {
        assert!(is_valid_id("web-1_A"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a.b"));
        assert!(!is_valid_id("a b"));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("amqp://u:p@h:5672/%2f"),
            "amqp://u:***@h:5672/%2f"
        );
        assert_eq!(redact_url("amqp://h/%2f"), "amqp://h/%2f");
        assert_eq!(redact_url("amqp://u@h/%2f"), "amqp://u@h/%2f");
        assert_eq!(redact_url("wss://h/p?a@b"), "wss://h/p?a@b");
    }

    #[test]
    fn secret_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }
}
