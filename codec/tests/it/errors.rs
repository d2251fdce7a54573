//! Every decoding error class, from literal bytes, with the message it prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redpepper_codec::{
    decode, encode, encode_into, CodecError, Message, Request, Response, Value, MAX_DEPTH,
};

/// Decode `bytes`, expecting an error; return its message.
fn err(bytes: &[u8]) -> String {
    match decode(bytes) {
        Ok(m) => panic!("decoded {m:?} from {bytes:02x?}"),
        Err(e) => e.to_string(),
    }
}

/// Bytes of a fixstr.
fn fs(s: &str) -> Vec<u8> {
    assert!(s.len() < 32);
    let mut out = vec![0xa0 | s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

/// A map of `entries` (fixmap) from pre-encoded keys and values.
fn map(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![0x80 | entries.len() as u8];
    for (k, v) in entries {
        out.extend(fs(k));
        out.extend_from_slice(v);
    }
    out
}

/// A valid Request with `method` replaced by `method_bytes`.
fn request_with_method(method_bytes: &[u8]) -> Vec<u8> {
    map(&[
        ("t", &[20]),
        ("id", &fs("1")),
        ("method", method_bytes),
        ("args", &[0x90]),
        ("kwargs", &[0x80]),
    ])
}

#[test]
fn not_a_map() {
    assert_eq!(err(&[0x93, 1, 2, 3]), "payload is not a map: got array");
    assert_eq!(err(&[0x01]), "payload is not a map: got int");
    assert_eq!(err(&[0xc0]), "payload is not a map: got nil");
    assert_eq!(err(&fs("t")), "payload is not a map: got str");
    assert!(matches!(
        decode(&[0xc4, 0]),
        Err(CodecError::NotAMap { got: "bin" })
    ));
}

#[test]
fn empty_and_truncated() {
    assert_eq!(
        err(&[]),
        "truncated msgpack: 1 more byte(s) needed at offset 0"
    );
    // fixmap of 2 entries, only one there.
    assert_eq!(
        err(&[0x82, 0xa1, b't', 12]),
        "truncated msgpack: 1 more byte(s) needed at offset 4"
    );
    // map16 header cut short.
    assert_eq!(
        err(&[0xde, 0x00]),
        "truncated msgpack: 1 more byte(s) needed at offset 1"
    );
    // A str8 key announcing 200 bytes, 3 present.
    assert_eq!(
        err(&[0x81, 0xd9, 200, b'a', b'b', b'c']),
        "truncated msgpack: 197 more byte(s) needed at offset 3"
    );
    // Truncated inside a field names the field.
    let bytes = map(&[("t", &[14]), ("reason", &[0xa5, b'b', b'y'])]);
    assert_eq!(
        err(&bytes),
        "Bye: field `reason`: truncated msgpack: 3 more byte(s) needed at offset 12"
    );
}

#[test]
fn every_prefix_of_a_valid_message_is_an_error() {
    let response = Message::Response(Response {
        id: "abc".into(),
        success: true,
        data: Value::Map(vec![(
            Value::from("k"),
            Value::Array(vec![Value::from(1.5), Value::from(-300), Value::from("x")]),
        )]),
    });
    let request = Message::Request(Request {
        id: "abc".into(),
        method: "m".into(),
        args: vec![Value::from(1.5), Value::Binary(vec![1, 2])],
        kwargs: vec![("k".into(), Value::Ext(3, vec![9; 5]))],
        timeout: None,
    });
    for msg in [response, request] {
        let bytes = encode(&msg).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix {len} decoded");
        }
        assert_eq!(decode(&bytes).unwrap(), msg);
    }
}

#[test]
fn huge_announced_lengths_fail_fast_without_allocating() {
    // map32 announcing 2^32-1 entries.
    assert!(err(&[0xdf, 0xff, 0xff, 0xff, 0xff]).starts_with("truncated msgpack"));
    // Request args array32 announcing 2^32-1 elements, then nothing.
    let args = [0xdd, 0xff, 0xff, 0xff, 0xff];
    let bytes = map(&[("t", &[20]), ("args", &args)]);
    assert_eq!(
        err(&bytes),
        "Request: field `args`: truncated msgpack: 1 more byte(s) needed at offset 14"
    );
    // Response data: nested array32s, each announcing 2^32-1 elements.
    let mut data = Vec::new();
    for _ in 0..100 {
        data.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
    }
    let bytes = map(&[("t", &[21]), ("data", &data)]);
    assert!(err(&bytes).starts_with("Response: field `data`: truncated msgpack"));
    // The same shape under an unknown key is skipped iteratively, then runs out.
    let bytes = map(&[("t", &[21]), ("junk", &data)]);
    assert!(err(&bytes).starts_with("truncated msgpack"));
    // bin32 / str32 announcing 4 GiB.
    let bytes = map(&[("t", &[21]), ("data", &[0xc6, 0xff, 0xff, 0xff, 0xff, 0])]);
    assert!(err(&bytes).contains("4294967294 more byte(s)"));
}

#[test]
fn non_string_keys() {
    assert_eq!(
        err(&[0x81, 0x01, 0x02]),
        "map key at offset 1 is not a str: got int"
    );
    assert_eq!(
        err(&[0x81, 0xc4, 0x01, b't', 0x0c]),
        "map key at offset 1 is not a str: got bin"
    );
    // Inside kwargs: names the field.
    let bytes = map(&[
        ("t", &[20]),
        ("id", &fs("1")),
        ("method", &fs("m")),
        ("args", &[0x90]),
        ("kwargs", &[0x81, 0x05, 0x06]),
    ]);
    assert_eq!(
        err(&bytes),
        "Request: field `kwargs`: map key at offset 32 is not a str: got int"
    );
    // Inside a dynamic value, any key is fine (as in MessagePack).
    let bytes = map(&[
        ("t", &[22]),
        ("type", &fs("e")),
        ("data", &[0x81, 0x05, 0x06]),
    ]);
    let Message::Notification(n) = decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(n.data, Value::Map(vec![(Value::from(5), Value::from(6))]));
}

#[test]
fn message_type_errors() {
    assert_eq!(err(&map(&[("data", &[1])])), "missing message type key `t`");
    assert_eq!(err(&[0x80]), "missing message type key `t`");
    assert_eq!(
        err(&map(&[("t", &fs("ping"))])),
        "message type key `t`: expected int, got str"
    );
    assert_eq!(
        err(&map(&[("t", &[0xcb, 0x40, 0x28, 0, 0, 0, 0, 0, 0])])),
        "message type key `t`: expected int, got float"
    );
    assert_eq!(err(&map(&[("t", &[99])])), "unknown message type t=99");
    assert_eq!(err(&map(&[("t", &[0xff])])), "unknown message type t=-1");
    assert_eq!(
        err(&map(&[(
            "t",
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        )])),
        "unknown message type t=18446744073709551615"
    );
    // A non-minimal encoding of a known code is still that code.
    let bytes = map(&[("t", &[0xd0, 12]), ("data", &[5])]);
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 5 });
    // `t` twice: the same code is fine, a different one is not.
    let bytes = map(&[("t", &[12]), ("data", &[5]), ("t", &[12])]);
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 5 });
    let bytes = map(&[("t", &[12]), ("data", &[5]), ("t", &[13])]);
    assert_eq!(err(&bytes), "conflicting message type keys: t=12 and t=13");
}

#[test]
fn missing_fields() {
    let bytes = map(&[
        ("t", &[20]),
        ("id", &fs("1")),
        ("args", &[0x90]),
        ("kwargs", &[0x80]),
    ]);
    assert_eq!(err(&bytes), "Request: missing field `method`");
    assert_eq!(err(&map(&[("t", &[12])])), "Ping: missing field `data`");
    // A field of another message type does not count.
    assert_eq!(
        err(&map(&[("t", &[14]), ("data", &fs("x"))])),
        "Bye: missing field `reason`"
    );
    let bytes = map(&[("t", &[21]), ("id", &fs("1")), ("success", &[0xc3])]);
    assert_eq!(err(&bytes), "Response: missing field `data`");
    assert_eq!(
        err(&map(&[("t", &[10]), ("id", &fs("a"))])),
        "AgentHello: missing field `version`"
    );
    assert_eq!(
        err(&map(&[("t", &[22]), ("data", &[0xc0])])),
        "Notification: missing field `type`"
    );
}

#[test]
fn mistyped_fields() {
    assert_eq!(
        err(&request_with_method(&[0x01])),
        "Request: field `method`: expected str, got int"
    );
    assert_eq!(
        err(&request_with_method(&[0xc4, 0x01, b'm'])),
        "Request: field `method`: expected str, got bin"
    );
    let bytes = map(&[("t", &[20]), ("args", &[0x80])]);
    assert_eq!(
        err(&bytes),
        "Request: field `args`: expected array, got map"
    );
    let bytes = map(&[("t", &[20]), ("kwargs", &[0x90])]);
    assert_eq!(
        err(&bytes),
        "Request: field `kwargs`: expected map, got array"
    );
    let bytes = map(&[("t", &[21]), ("success", &[0x01])]);
    assert_eq!(
        err(&bytes),
        "Response: field `success`: expected bool, got int"
    );
    let bytes = map(&[("t", &[12]), ("data", &fs("1"))]);
    assert_eq!(err(&bytes), "Ping: field `data`: expected int, got str");
    let bytes = map(&[("t", &[13]), ("data", &[0xca, 0, 0, 0, 0])]);
    assert_eq!(err(&bytes), "Pong: field `data`: expected int, got float");
    let bytes = map(&[("t", &[11]), ("version", &[0xc0])]);
    assert_eq!(
        err(&bytes),
        "ManagerHello: field `version`: expected str, got nil"
    );
    let bytes = map(&[("t", &[20]), ("args", &[0xc4, 0x01, 0x01])]);
    assert_eq!(
        err(&bytes),
        "Request: field `args`: expected array, got bin"
    );
    // Seen before `t`: still checked, with the same message.
    let bytes = map(&[("reason", &[0xc3]), ("t", &[14])]);
    assert_eq!(err(&bytes), "Bye: field `reason`: expected str, got bool");
    let bytes = map(&[("args", &fs("x")), ("t", &[20])]);
    assert_eq!(
        err(&bytes),
        "Request: field `args`: expected array, got str"
    );
    let bytes = map(&[("data", &[0xc0]), ("t", &[12])]);
    assert_eq!(err(&bytes), "Ping: field `data`: expected int, got nil");
}

#[test]
fn ping_data_out_of_i64_range() {
    let big = [0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        err(&map(&[("t", &[12]), ("data", &big)])),
        "Ping: field `data`: 9223372036854775808 is out of range for i64"
    );
    assert_eq!(
        err(&map(&[("data", &big), ("t", &[13])])),
        "Pong: field `data`: 9223372036854775808 is out of range for i64"
    );
    let max = [0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        decode(&map(&[("t", &[13]), ("data", &max)])).unwrap(),
        Message::Pong { data: i64::MAX }
    );
    // int64 encodings of small values are accepted too.
    let small = [0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe];
    assert_eq!(
        decode(&map(&[("t", &[12]), ("data", &small)])).unwrap(),
        Message::Ping { data: -2 }
    );
}

#[test]
fn trailing_bytes() {
    let mut bytes = map(&[("t", &[12]), ("data", &[1])]);
    bytes.extend_from_slice(&[0xc0, 0xc0, 0xc0]);
    assert_eq!(err(&bytes), "trailing bytes: 3 after message");
    // Two whole messages back to back are not one message.
    let one = map(&[("t", &[12]), ("data", &[1])]);
    let two = [one.clone(), one].concat();
    assert_eq!(err(&two), "trailing bytes: 10 after message");
}

#[test]
fn reserved_marker_and_bad_utf8() {
    assert_eq!(
        err(&[0xc1]),
        "invalid msgpack: reserved marker 0xc1 at offset 0"
    );
    let bytes = map(&[
        ("t", &[21]),
        ("id", &fs("1")),
        ("success", &[0xc2]),
        ("data", &[0x91, 0xc1]),
    ]);
    assert_eq!(
        err(&bytes),
        "Response: field `data`: invalid msgpack: reserved marker 0xc1 at offset 24"
    );
    // Also refused in skipped values.
    let bytes = map(&[("t", &[12]), ("x", &[0xc1]), ("data", &[1])]);
    assert_eq!(
        err(&bytes),
        "invalid msgpack: reserved marker 0xc1 at offset 6"
    );

    assert_eq!(
        err(&[0x81, 0xa1, 0xff, 0x01]),
        "invalid UTF-8 in str at offset 2"
    );
    let bytes = map(&[("t", &[14]), ("reason", &[0xa2, 0xc3, 0x28])]);
    assert_eq!(
        err(&bytes),
        "Bye: field `reason`: invalid UTF-8 in str at offset 12"
    );
    let bytes = map(&[
        ("t", &[22]),
        ("type", &fs("e")),
        ("data", &[0x91, 0xa1, 0x80]),
    ]);
    assert_eq!(
        err(&bytes),
        "Notification: field `data`: invalid UTF-8 in str at offset 18"
    );
}

fn nested_arrays(levels: usize) -> Value {
    let mut v = Value::Nil;
    for _ in 0..levels {
        v = Value::Array(vec![v]);
    }
    v
}

#[test]
fn nesting_depth_is_bounded_both_ways() {
    let ok = Message::Response(Response {
        id: "r".into(),
        success: true,
        data: nested_arrays(MAX_DEPTH),
    });
    let bytes = encode(&ok).unwrap();
    assert_eq!(decode(&bytes).unwrap(), ok);

    let deep = Message::Response(Response {
        id: "r".into(),
        success: true,
        data: nested_arrays(MAX_DEPTH + 1),
    });
    let mut buf = b"keep".to_vec();
    assert_eq!(
        encode_into(&deep, &mut buf).unwrap_err().to_string(),
        "value nested deeper than 128 levels"
    );
    assert_eq!(buf, b"keep", "buffer restored on error");

    // The same payload built by hand, 100 000 levels: refused, no stack overflow.
    let mut bytes = vec![0x84, 0xa1, b't', 21, 0xa2, b'i', b'd', 0xa1, b'r'];
    bytes.extend_from_slice(b"\xa7success\xc3\xa4data");
    bytes.extend(std::iter::repeat_n(0x91, 100_000));
    bytes.push(0xc0);
    assert_eq!(
        err(&bytes),
        "Response: field `data`: value nested deeper than 128 levels"
    );

    // Seen before `t`, and inside `args` (which counts as the first level).
    let too_deep = encode_value(&nested_arrays(MAX_DEPTH + 1));
    let bytes = map(&[("data", &too_deep), ("t", &[22]), ("type", &fs("e"))]);
    assert_eq!(
        err(&bytes),
        "Notification: field `data`: value nested deeper than 128 levels"
    );
    let request = |args: &[u8]| {
        map(&[
            ("t", &[20]),
            ("id", &fs("1")),
            ("method", &fs("m")),
            ("args", args),
            ("kwargs", &[0x80]),
        ])
    };
    let deep_args = encode_value(&nested_arrays(MAX_DEPTH + 1));
    assert_eq!(
        err(&request(&deep_args)),
        "Request: field `args`: value nested deeper than 128 levels"
    );
    let Message::Request(ok) = decode(&request(&encode_value(&nested_arrays(MAX_DEPTH)))).unwrap()
    else {
        panic!("not a Request")
    };
    assert_eq!(Value::Array(ok.args), nested_arrays(MAX_DEPTH));
}

/// The MessagePack bytes of one value.
fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

#[test]
fn unknown_keys_are_skipped_whatever_they_hold() {
    // Deep nesting under an unknown key needs no depth limit: it is skipped.
    let mut junk = vec![0x91; 10_000];
    junk.push(0xc0);
    let bytes = map(&[("t", &[12]), ("junk", &junk), ("data", &[3])]);
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 3 });
    // So is a field of another message type, also when it comes before `t` (and had
    // to be remembered before the type was known).
    let bytes = map(&[("args", &junk), ("t", &[12]), ("data", &[3])]);
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 3 });
}

#[test]
fn a_repeated_field_keeps_its_last_value() {
    // As a Python dict does, before and after `t`.
    let bytes = map(&[("data", &[1]), ("t", &[12]), ("data", &[2]), ("t", &[12])]);
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 2 });
    let bytes = map(&[("data", &[1]), ("data", &[2]), ("t", &[13])]);
    assert_eq!(decode(&bytes).unwrap(), Message::Pong { data: 2 });
}

#[test]
fn invalid_utf8_string_value_is_not_encoded() {
    let bad = rmpv::decode::read_value(&mut &[0xa1, 0xff][..]).unwrap();
    let msg = Message::Response(Response {
        id: "r".into(),
        success: true,
        data: bad,
    });
    assert!(matches!(encode(&msg), Err(CodecError::InvalidUtf8InValue)));
}

/// A whole Request (`id`, `method`, `args`, `kwargs`) plus `timeout` holding `value`.
fn request_with_timeout(value: &[u8]) -> Vec<u8> {
    map(&[
        ("t", &[20]),
        ("id", &fs("1")),
        ("method", &fs("m")),
        ("args", &[0x90]),
        ("kwargs", &[0x80]),
        ("timeout", value),
    ])
}

#[test]
fn request_timeout_must_be_seconds() {
    let f64_bytes = |x: f64| {
        let mut b = vec![0xcb];
        b.extend_from_slice(&x.to_be_bytes());
        b
    };
    assert_eq!(
        err(&request_with_timeout(&[0xff])),
        "Request: field `timeout`: -1 is not a number of seconds >= 0"
    );
    assert_eq!(
        err(&request_with_timeout(&f64_bytes(-0.5))),
        "Request: field `timeout`: -0.5 is not a number of seconds >= 0"
    );
    assert_eq!(
        err(&request_with_timeout(&f64_bytes(f64::NAN))),
        "Request: field `timeout`: NaN is not a number of seconds >= 0"
    );
    assert_eq!(
        err(&request_with_timeout(&fs("30"))),
        "Request: field `timeout`: expected float or int, got str"
    );
    assert_eq!(
        err(&request_with_timeout(&[0xc0])),
        "Request: field `timeout`: expected float or int, got nil"
    );
    // A float 32 and a big int are fine; so is infinity (no deadline that matters).
    for (bytes, secs) in [
        (vec![0xca, 0x3f, 0xc0, 0, 0], 1.5),
        (vec![0xcd, 0x01, 0x00], 256.0),
        (f64_bytes(f64::INFINITY), f64::INFINITY),
    ] {
        match decode(&request_with_timeout(&bytes)).unwrap() {
            Message::Request(r) => assert_eq!(r.timeout, Some(secs)),
            other => panic!("not a request: {other:?}"),
        }
    }
    // `timeout` means nothing in other messages: skipped there.
    let bytes = map(&[("t", &[12]), ("data", &[0x01]), ("timeout", &fs("x"))]);
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 1 });
    // Our encoder refuses what our decoder would.
    let bad = Message::Request(Request {
        id: "1".into(),
        method: "m".into(),
        args: vec![],
        kwargs: vec![],
        timeout: Some(-1.0),
    });
    assert_eq!(
        encode(&bad).unwrap_err().to_string(),
        "Request: field `timeout`: -1 is not a number of seconds >= 0"
    );
}
