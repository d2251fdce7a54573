//! Notifications sized to the session: a `command_result` or `command_progress` whose
//! encoded message would exceed `max_message_size` has its text (`output`, `message`)
//! cut in the middle, head and tail kept, until it fits.

use std::borrow::Cow;

use redpepper_core::codec::{encode, Message, Notification};
use redpepper_core::Value;

/// Encoding is tried this many times with a smaller text before giving up.
const ATTEMPTS: usize = 4;

/// `text` in at most `max` bytes (when `max` leaves room for the marker): its head and
/// its tail, cut on char boundaries, with `... N bytes omitted ...` on a line of its
/// own in between.
pub fn cut_middle(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    // The marker with the largest count it can hold: an upper bound of its length.
    let marker_len = format!("\n... {} bytes omitted ...\n", text.len()).len();
    let keep = max.saturating_sub(marker_len);
    let mut head = keep / 2;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - (keep - keep / 2);
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    let omitted = tail - head;
    Cow::Owned(format!(
        "{}\n... {omitted} bytes omitted ...\n{}",
        &text[..head],
        &text[tail..]
    ))
}

/// The notification `kind` with data `fields` and, last, `text_key: text`; `text` cut
/// (see [`cut_middle`]) until the encoded message is at most `limit` bytes. `Err` says
/// why it cannot fit (the other fields alone are too large).
pub fn fit(
    kind: &str,
    fields: &[(&str, Value)],
    text_key: &str,
    text: &str,
    limit: usize,
) -> Result<Value, String> {
    let build = |text: &str| {
        let mut map: Vec<(Value, Value)> = fields
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect();
        map.push((Value::from(text_key), Value::from(text)));
        Value::Map(map)
    };
    let size = |data: &Value| -> Result<usize, String> {
        let msg = Message::Notification(Notification {
            r#type: kind.to_owned(),
            data: data.clone(),
        });
        encode(&msg)
            .map(|b| b.len())
            .map_err(|e| format!("{kind} does not encode: {e}"))
    };
    let mut budget = text.len();
    for _ in 0..ATTEMPTS {
        let cut = cut_middle(text, budget);
        let data = build(&cut);
        let len = size(&data)?;
        if len <= limit {
            return Ok(data);
        }
        let excess = len - limit;
        if excess >= cut.len() {
            break;
        }
        // Room for a longer marker and string header next time.
        budget = cut.len().saturating_sub(excess + 16);
    }
    let empty = size(&build(""))?;
    Err(format!(
        "{kind} of {} bytes does not fit max_message_size {limit} even with its {text_key} cut ({empty} bytes without it)",
        empty + text.len()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(cut_middle("hello", 5), "hello");
        let v = fit(
            "command_result",
            &[("id", Value::from("x"))],
            "output",
            "hi",
            100,
        )
        .unwrap();
        assert_eq!(v.as_map().unwrap()[1].1.as_str(), Some("hi"));
    }

    #[test]
    fn cut_keeps_head_and_tail_and_counts_what_it_left_out() {
        let text: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        let cut = cut_middle(&text, 1000);
        assert!(cut.len() <= 1000, "{}", cut.len());
        assert!(cut.starts_with("line 0\nline 1\n"));
        assert!(cut.ends_with("line 9999\n"));
        let marker = cut.lines().find(|l| l.contains("bytes omitted")).unwrap();
        let n: usize = marker
            .trim_start_matches("... ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(cut.len() - marker.len() - 2 + n, text.len());
    }

    #[test]
    fn cuts_fall_on_char_boundaries() {
        let text = "é€😀".repeat(1000);
        for max in [0, 1, 2, 3, 50, 51, 52, 53, 999, 1000, 1001] {
            let cut = cut_middle(&text, max);
            // A String: the cut is valid UTF-8 by construction; check its size.
            assert!(cut.len() <= max.max(40), "{max}: {}", cut.len());
        }
    }

    #[test]
    fn a_result_is_cut_to_the_message_limit() {
        let output = "x".repeat(2_000_000);
        let fields = [
            ("id", Value::from("0123456789abcdef0123456789abcdef")),
            ("success", Value::from(true)),
            ("changed", Value::from(false)),
        ];
        for limit in [1_048_576, 65_536, 300] {
            let data = fit("command_result", &fields, "output", &output, limit).unwrap();
            let msg = Message::Notification(Notification {
                r#type: "command_result".into(),
                data: data.clone(),
            });
            let len = encode(&msg).unwrap().len();
            assert!(len <= limit, "{len} > {limit}");
            assert!(
                len > limit - 64,
                "cut far more than needed: {len} for {limit}"
            );
            let out = data.as_map().unwrap()[3].1.as_str().unwrap();
            assert!(out.contains("bytes omitted"));
        }
        let err = fit("command_result", &fields, "output", &output, 40).unwrap_err();
        assert!(err.contains("max_message_size 40"), "{err}");
    }
}
