//! What our AMQP messages carry besides the body: session ids, the properties we set
//! when publishing ([`Stamp`]) and what a delivery tells us ([`Envelope`]).

use lapin::types::ShortString;
use lapin::BasicProperties;

use crate::error::TransportsError;

/// The `type` of the empty message a side publishes when it closes its end.
pub const EOF_TYPE: &str = "redpepper.eof";

/// Longest accepted session id (ours are 32 characters).
const MAX_SESSION_ID: usize = 64;

/// A fresh random session id: 32 lowercase hex digits (128 bits).
pub(crate) fn new_session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A random suffix for queue names: 16 lowercase hex digits.
pub(crate) fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `name` as an AMQP short string (at most 255 bytes), or an error naming `key`.
pub(crate) fn queue_name(key: &'static str, name: String) -> Result<ShortString, TransportsError> {
    if name.is_empty() {
        return Err(TransportsError::setting(
            key,
            "a queue name cannot be empty",
        ));
    }
    let len = name.len();
    ShortString::try_new(name).map_err(|_| {
        TransportsError::setting(
            key,
            format!("queue name of {len} bytes exceeds AMQP's limit of 255"),
        )
    })
}

fn valid_session_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SESSION_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The properties one session stamps on what it publishes.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    /// The session id (`correlation_id`).
    pub(crate) session: ShortString,
    /// Our broker user (`user_id`).
    pub(crate) user: ShortString,
    /// `expiration` of ordinary messages, in milliseconds.
    pub(crate) ttl: ShortString,
    /// `expiration` of the first message (the agent's hello), in milliseconds.
    pub(crate) first_ttl: ShortString,
}

impl Stamp {
    /// Properties of a payload message; the first message of a session also carries
    /// `reply_to` (where the peer should answer).
    pub(crate) fn payload(&self, reply_to: Option<&ShortString>) -> BasicProperties {
        let props = BasicProperties::default()
            .with_correlation_id(self.session.clone())
            .with_user_id(self.user.clone());
        match reply_to {
            Some(q) => props
                .with_reply_to(q.clone())
                .with_expiration(self.first_ttl.clone()),
            None => props.with_expiration(self.ttl.clone()),
        }
    }

    /// Properties of the end-of-stream marker.
    pub(crate) fn eof(&self) -> BasicProperties {
        eof_properties(self.session.clone(), self.user.clone(), self.ttl.clone())
    }
}

/// Properties of the end-of-stream marker of session `session`, sent as broker user
/// `user`, expiring after `ttl` milliseconds.
pub(crate) fn eof_properties(
    session: ShortString,
    user: ShortString,
    ttl: ShortString,
) -> BasicProperties {
    BasicProperties::default()
        .with_correlation_id(session)
        .with_user_id(user)
        .with_expiration(ttl)
        .with_type(EOF_TYPE.into())
}

/// What a delivery says about itself.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    /// The session id.
    pub(crate) session: &'a str,
    /// The broker-validated sender, if the sender set `user_id`.
    pub(crate) user: Option<&'a str>,
    /// Where the sender wants answers, if it said.
    pub(crate) reply_to: Option<&'a ShortString>,
    /// Whether this is the end-of-stream marker (else a payload).
    pub(crate) eof: bool,
}

impl<'a> Envelope<'a> {
    /// Read the properties of a delivery; `Err` says why it is not one of ours.
    pub(crate) fn open(props: &'a BasicProperties) -> Result<Self, String> {
        let session = match props.correlation_id() {
            Some(id) if valid_session_id(id.as_str()) => id.as_str(),
            Some(id) => return Err(format!("invalid session id {:?}", id.as_str())),
            None => return Err("no session id (correlation_id)".into()),
        };
        let eof = match props.kind() {
            None => false,
            Some(k) if k.as_str() == EOF_TYPE => true,
            Some(k) => {
                return Err(format!(
                    "unknown message type {:?} in session {session}",
                    k.as_str()
                ))
            }
        };
        Ok(Self {
            session,
            user: props.user_id().as_ref().map(ShortString::as_str),
            reply_to: props.reply_to().as_ref().filter(|q| !q.as_str().is_empty()),
            eof,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            session: new_session_id().into(),
            user: "agent1".into(),
            ttl: "60000".into(),
            first_ttl: "3000".into(),
        }
    }

    #[test]
    fn session_ids_are_random_hex() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(valid_session_id(&a));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id(&"a".repeat(65)));
    }

    #[test]
    fn payload_and_eof_round_trip() {
        let s = stamp();
        let inbox: ShortString = "redpepper.agent.a1.0011".into();
        let first = s.payload(Some(&inbox));
        let env = Envelope::open(&first).unwrap();
        assert_eq!(env.session, s.session.as_str());
        assert_eq!(env.user, Some("agent1"));
        assert_eq!(env.reply_to, Some(&inbox));
        assert!(!env.eof);
        assert_eq!(first.expiration().as_ref().unwrap().as_str(), "3000");

        let next = s.payload(None);
        assert_eq!(Envelope::open(&next).unwrap().reply_to, None);
        assert_eq!(next.expiration().as_ref().unwrap().as_str(), "60000");

        assert!(Envelope::open(&s.eof()).unwrap().eof);
    }

    #[test]
    fn foreign_messages_are_named() {
        let none = BasicProperties::default();
        assert_eq!(
            Envelope::open(&none).unwrap_err(),
            "no session id (correlation_id)"
        );
        let odd = BasicProperties::default()
            .with_correlation_id("abc".into())
            .with_type("something".into());
        assert!(Envelope::open(&odd)
            .unwrap_err()
            .contains("unknown message type \"something\""));
        let no_user = BasicProperties::default().with_correlation_id("abc".into());
        assert_eq!(Envelope::open(&no_user).unwrap().user, None);
    }

    #[test]
    fn queue_names_fit_amqp() {
        assert!(queue_name("amqp.queue", "redpepper.manager".into()).is_ok());
        let e = queue_name("amqp.queue", "q".repeat(256)).unwrap_err();
        assert!(e.to_string().contains("exceeds AMQP's limit of 255"), "{e}");
        assert!(queue_name("amqp.queue", String::new()).is_err());
    }
}
