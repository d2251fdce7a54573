//! Batches: several encoded messages for the same destination carried as one broker
//! message, so a burst costs the broker one message instead of many.
//!
//! A batch is a map like any message, `v`, `k` = `batch`, `from`, then `items`: an
//! array whose elements are the messages exactly as each would be sent alone (the
//! writer splices their encoded bytes in, nothing is encoded twice). The receiver
//! hands the items on in order, each checked as a lone message would be; an item from
//! another node than the batch's `from`, or a batch inside a batch, is an error in its
//! place. A lone message is never wrapped.

use redpepper_codec::{decode_value, encode_value, Value};

use crate::error::ClusterError;
use crate::message::{Envelope, FORMAT_VERSION, MAX_MESSAGE_SIZE};

/// The kind (`k`) of a batch.
pub const BATCH_KIND: &str = "batch";

/// Most messages in one batch.
pub const BATCH_MAX_ITEMS: usize = 256;

/// Most bytes of items in one batch (a message this large or larger goes alone): well
/// under [`MAX_MESSAGE_SIZE`], so one batch never holds the broker or the receiver up
/// for long.
pub const BATCH_MAX_BYTES: usize = 256 * 1024;

/// The body of a batch from node `from` of `items`, each one encoded message (as
/// [`crate::ClusterMessage::encode`] gives it), in order.
pub fn encode_batch(from: &str, items: &[&[u8]]) -> Result<Vec<u8>, ClusterError> {
    let encode = |v: &Value| {
        encode_value(v).map_err(|source| ClusterError::Encode {
            kind: BATCH_KIND,
            source,
        })
    };
    let head = Value::Map(vec![
        (Value::from("v"), Value::from(FORMAT_VERSION)),
        (Value::from("k"), Value::from(BATCH_KIND)),
        (Value::from("from"), Value::from(from)),
    ]);
    let size: usize = items.iter().map(|i| i.len()).sum();
    let mut out = Vec::with_capacity(size + from.len() + 32);
    out.extend_from_slice(&encode(&head)?);
    // A fixmap of three entries becomes one of four: `items` follows.
    match out.first_mut() {
        Some(b) if *b == 0x83 => *b = 0x84,
        _ => {
            return Err(ClusterError::Decode(
                "a batch's head did not encode as a fixmap of three".to_owned(),
            ))
        }
    }
    out.extend_from_slice(&encode(&Value::from("items"))?);
    let n = items.len();
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        let n = u32::try_from(n).map_err(|_| ClusterError::TooLarge {
            kind: BATCH_KIND,
            size: n,
            limit: BATCH_MAX_ITEMS,
        })?;
        out.push(0xdd);
        out.extend_from_slice(&n.to_be_bytes());
    }
    for item in items {
        out.extend_from_slice(item);
    }
    if out.len() > MAX_MESSAGE_SIZE {
        return Err(ClusterError::TooLarge {
            kind: BATCH_KIND,
            size: out.len(),
            limit: MAX_MESSAGE_SIZE,
        });
    }
    Ok(out)
}

/// Decode one broker message's body: a lone message, or the messages of a batch in
/// order. An item of a batch that is not a message is an `Err` in its place (the
/// others are kept); the whole body is an `Err` when it is neither.
pub fn decode_body(bytes: &[u8]) -> Result<Vec<Result<Envelope, ClusterError>>, ClusterError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(ClusterError::Decode(format!(
            "{} bytes, over the limit of {MAX_MESSAGE_SIZE}",
            bytes.len()
        )));
    }
    let value = decode_value(bytes).map_err(|e| ClusterError::Decode(e.to_string()))?;
    if kind_of(&value) != Some(BATCH_KIND) {
        return Ok(vec![Envelope::from_value(value)]);
    }
    let Value::Map(entries) = value else {
        return Err(ClusterError::Decode("expected a map".to_owned()));
    };
    let mut from = None;
    let mut items = None;
    for (k, v) in entries {
        match (k.as_str(), v) {
            (Some("from"), Value::String(s)) => from = s.into_str(),
            (Some("items"), Value::Array(a)) => items = Some(a),
            _ => {}
        }
    }
    let (Some(from), Some(items)) = (from, items) else {
        return Err(ClusterError::Decode(
            "a batch without `from` or `items`".to_owned(),
        ));
    };
    Ok(items
        .into_iter()
        .map(|item| {
            if kind_of(&item) == Some(BATCH_KIND) {
                return Err(ClusterError::Decode("a batch inside a batch".to_owned()));
            }
            let envelope = Envelope::from_value(item)?;
            if envelope.from != from {
                return Err(ClusterError::Decode(format!(
                    "an item of a batch from `{from}` says it is from `{}`",
                    envelope.from
                )));
            }
            Ok(envelope)
        })
        .collect())
}

/// The `k` of a message map.
fn kind_of(value: &Value) -> Option<&str> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some("k"))
            .and_then(|(_, v)| v.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::message::ClusterMessage;

    fn notify(corr: u64) -> ClusterMessage {
        ClusterMessage::Notify {
            corr,
            agent: "web-1".into(),
            kind: "hint".into(),
            data: Value::from(corr),
        }
    }

    #[test]
    fn a_batch_carries_its_messages_in_order_and_a_lone_message_decodes_alone() {
        for n in [1, 2, 15, 16, 300, 70_000] {
            let encoded: Vec<Vec<u8>> = (0..n as u64)
                .map(|i| notify(i).encode("mgr-a").unwrap())
                .collect();
            let items: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            let body = encode_batch("mgr-a", &items).unwrap();
            let decoded = decode_body(&body).unwrap();
            assert_eq!(decoded.len(), n);
            for (i, e) in decoded.into_iter().enumerate() {
                let e = e.unwrap();
                assert_eq!(e.from, "mgr-a");
                assert_eq!(e.message, notify(i as u64));
            }
        }
        let lone = decode_body(&notify(9).encode("mgr-b").unwrap()).unwrap();
        assert_eq!(lone.len(), 1);
        assert_eq!(lone[0].as_ref().unwrap().message, notify(9));
        // A batch is not a message on its own.
        let body = encode_batch("mgr-a", &[&notify(1).encode("mgr-a").unwrap()]).unwrap();
        let err = Envelope::decode(&body).unwrap_err().to_string();
        assert!(err.contains("batch"), "{err}");
    }

    #[test]
    fn bad_items_fail_in_their_place_and_the_others_stay() {
        let good = notify(1).encode("mgr-a").unwrap();
        let forged = notify(2).encode("mgr-c").unwrap();
        let inner = encode_batch("mgr-a", &[&good]).unwrap();
        let not_a_message = encode_value(&Value::from(5)).unwrap();
        let body = encode_batch("mgr-a", &[&good, &forged, &inner, &not_a_message, &good]).unwrap();
        let decoded = decode_body(&body).unwrap();
        assert_eq!(decoded.len(), 5);
        assert!(decoded[0].is_ok() && decoded[4].is_ok());
        let errors: Vec<String> = decoded[1..4]
            .iter()
            .map(|r| r.as_ref().unwrap_err().to_string())
            .collect();
        assert!(
            errors[0].contains("says it is from `mgr-c`"),
            "{}",
            errors[0]
        );
        assert!(errors[1].contains("batch inside a batch"), "{}", errors[1]);
        assert!(errors[2].contains("expected a map"), "{}", errors[2]);
        let no_items = encode_value(&Value::Map(vec![
            (Value::from("k"), Value::from("batch")),
            (Value::from("from"), Value::from("mgr-a")),
        ]))
        .unwrap();
        assert!(decode_body(&no_items).is_err());
    }
}
