//! An AMQP delivery: its properties (as lapin parses them from the content header
//! frame) and its body, checked and routed as the manager's listener does.

use std::sync::Arc;

use lapin::protocol::basic::parse_properties;
use redpepper_core::error::TransportError;
use tokio::sync::mpsc;

use crate::amqp::budget::{Meter, Pool};
use crate::amqp::state::SessionState;
use crate::amqp::table::{Entry, Table};
use crate::amqp::wire::Envelope;
use crate::amqp::EOF_TYPE;

/// `max_message_size` values tried.
const MAXES: [usize; 4] = [0, 16, 4096, 1 << 20];

/// Parse `data[1..]` as basic properties followed by the body, open the envelope, and
/// deliver it to a session table (bit 0 of the first byte: that knows the session;
/// bit 1: whose owner is the sender).
///
/// Invariants: a refusal's text is bounded; an accepted envelope names a valid
/// session id; a payload reaches the session only from its owner, within
/// `max_message_size`, byte for byte; a larger one fails the session with
/// `TooLarge`; the end-of-stream marker ends it cleanly.
pub fn amqp_delivery(data: &[u8]) -> &'static str {
    let Some((&opts, input)) = data.split_first() else {
        return "empty";
    };
    let max = MAXES[usize::from((opts >> 2) & 3)];
    let Ok((body, props)) = parse_properties(input) else {
        return "no-properties";
    };
    let env = match Envelope::open(&props) {
        Ok(env) => env,
        Err(why) => {
            super::bounded_text("refused AMQP delivery", &why);
            return "not-ours";
        }
    };
    let id = env.session;
    assert!(!id.is_empty() && id.len() <= 64, "session id {id:?}");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(
        env.eof,
        props.kind().as_ref().map(|k| k.as_str()) == Some(EOF_TYPE)
    );
    let owner = match (opts & 2 != 0, env.user) {
        (true, Some(user)) => user.to_owned(),
        _ => "owner".to_owned(),
    };
    let table = Table::default();
    let (tx, mut rx) = mpsc::channel(4);
    let state = Arc::new(SessionState::new(id.to_owned()));
    let known = opts & 1 != 0;
    if known {
        let meter = Arc::new(Meter::new(1 << 20, Arc::new(Pool::new(1 << 20))));
        meter.accepted();
        let entry = Entry {
            tx,
            user: owner.clone(),
            inbox: "inbox".into(),
            state: Arc::clone(&state),
            meter,
        };
        assert!(table.insert(id, entry));
    }
    table.deliver(&env, body.to_vec(), max);
    let got = rx.try_recv().ok();
    let from_owner = env.user == Some(owner.as_str());
    if !known {
        assert!(got.is_none() && table.len() == 0);
        return "unknown-session";
    }
    if !from_owner {
        assert!(got.is_none() && table.contains(id) && !state.is_failed());
        return "foreign";
    }
    if env.eof {
        assert!(got.is_none() && !table.contains(id) && !state.is_failed());
        return "eof";
    }
    if body.len() > max {
        assert!(got.is_none() && !table.contains(id));
        assert!(matches!(
            state.take_error(),
            Some(TransportError::TooLarge { len, max: m }) if len == body.len() && m == max
        ));
        return "too-large";
    }
    assert_eq!(got.as_deref(), Some(body), "the payload delivered");
    "payload"
}
