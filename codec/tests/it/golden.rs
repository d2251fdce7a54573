//! Golden vectors: bytes written by Python msgpack (RedPepper 0.3.4's encoder),
//! produced by `tests/golden/make_golden.py` into `tests/golden/vectors.txt`.
//!
//! `encode` vectors must match our encoder byte for byte and decode back to the
//! message; `decode` vectors (reordered keys, `t` last, unknown keys) must decode
//! to the expected message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use redpepper_codec::{
    decode, encode, encoded_len, AgentHello, Kwargs, ManagerHello, Message, Notification, Request,
    Response, Value,
};

const VECTORS: &str = include_str!("../golden/vectors.txt");

const UUID: &str = "0f3c5b8e6a2d4e1f9b7c3a5d8e2f1a4b";
const UNICODE: &str = "héllo wörld ☕ 日本語 🌶";

fn s(x: &str) -> Value {
    Value::from(x)
}

fn i(x: i64) -> Value {
    Value::from(x)
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn kw(entries: Vec<(&str, Value)>) -> Kwargs {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn typed() -> Vec<(&'static str, Value)> {
    vec![
        ("zero", i(0)),
        ("fixint", i(127)),
        ("u8", i(200)),
        ("u16", i(65535)),
        ("u32", i(4294967295)),
        ("u64", Value::from(u64::MAX)),
        ("i64max", i(i64::MAX)),
        ("neg1", i(-1)),
        ("negfix", i(-32)),
        ("i8", i(-33)),
        ("i16", i(-129)),
        ("i32", i(-32769)),
        ("i64", i(i64::MIN)),
        ("float", Value::F64(1.2345678)),
        ("negfloat", Value::F64(-0.5)),
        ("negzero", Value::F64(-0.0)),
        ("inf", Value::F64(f64::INFINITY)),
        ("true", Value::Boolean(true)),
        ("false", Value::Boolean(false)),
        ("nil", Value::Nil),
        ("bin", Value::Binary(vec![0, 0xff, 0x10])),
        (
            "bin16",
            Value::Binary((0..=255u8).chain(0..=255u8).collect()),
        ),
        ("unicode", s(UNICODE)),
        ("long", s(&"x".repeat(40))),
        ("longer", s(&"y".repeat(300))),
        ("empty_list", Value::Array(vec![])),
        ("empty_map", Value::Map(vec![])),
        (
            "list",
            Value::Array(vec![
                i(1),
                s("two"),
                Value::F64(3.0),
                Value::Nil,
                Value::Array(vec![]),
                Value::Array(vec![Value::Boolean(true)]),
            ]),
        ),
        (
            "nested",
            map(vec![(
                "a",
                map(vec![(
                    "b",
                    map(vec![(
                        "c",
                        Value::Array(vec![i(1), map(vec![("d", s("e"))])]),
                    )]),
                )]),
            )]),
        ),
    ]
}

fn agent_hello(id: &str, version: &str, credentials: &str) -> Message {
    Message::AgentHello(AgentHello {
        id: id.into(),
        version: version.into(),
        credentials: credentials.into(),
    })
}

fn manager_hello(version: &str) -> Message {
    Message::ManagerHello(ManagerHello {
        version: version.into(),
    })
}

fn request(id: &str, method: &str, args: Vec<Value>, kwargs: Kwargs) -> Message {
    Message::Request(Request {
        id: id.into(),
        method: method.into(),
        args,
        kwargs,
        timeout: None,
    })
}

/// A Request carrying our `timeout` extension.
fn timed(id: &str, method: &str, args: Vec<Value>, kwargs: Kwargs, timeout: f64) -> Message {
    Message::Request(Request {
        id: id.into(),
        method: method.into(),
        args,
        kwargs,
        timeout: Some(timeout),
    })
}

fn response(id: &str, success: bool, data: Value) -> Message {
    Message::Response(Response {
        id: id.into(),
        success,
        data,
    })
}

fn notification(r#type: &str, data: Value) -> Message {
    Message::Notification(Notification {
        r#type: r#type.into(),
        data,
    })
}

fn bye(reason: &str) -> Message {
    Message::Bye {
        reason: reason.into(),
    }
}

/// The messages of the `encode` vectors, by name.
fn encode_cases() -> Vec<(&'static str, Message)> {
    let png = b"\x89PNG\r\n\x1a\n".repeat(40);
    vec![
        (
            "agent_hello_basic",
            agent_hello("webserver1", "0.3.4", "s3cret"),
        ),
        (
            "agent_hello_unicode",
            agent_hello("agent_01-x", "0.4.0", UNICODE),
        ),
        (
            "agent_hello_long",
            agent_hello(
                &"a".repeat(31),
                &format!("0.3.4+{}", "b".repeat(40)),
                &"y".repeat(300),
            ),
        ),
        ("agent_hello_empty", agent_hello("", "", "")),
        ("manager_hello_basic", manager_hello("0.3.4")),
        (
            "manager_hello_long",
            manager_hello(&format!("0.4.0-{}", "rc.".repeat(20))),
        ),
        ("ping_zero", Message::Ping { data: 0 }),
        ("ping_typical", Message::Ping { data: 482913 }),
        ("ping_fixint_max", Message::Ping { data: 127 }),
        ("ping_u8", Message::Ping { data: 200 }),
        ("ping_u16", Message::Ping { data: 65535 }),
        ("ping_u32", Message::Ping { data: 4294967295 }),
        ("ping_i64_max", Message::Ping { data: i64::MAX }),
        ("ping_negfix", Message::Ping { data: -32 }),
        ("ping_i8", Message::Ping { data: -33 }),
        ("ping_i16", Message::Ping { data: -129 }),
        ("ping_i32", Message::Ping { data: -32769 }),
        ("ping_i64_min", Message::Ping { data: i64::MIN }),
        ("pong_typical", Message::Pong { data: 1000000 }),
        ("pong_negative", Message::Pong { data: -1 }),
        ("pong_big", Message::Pong { data: 1 << 40 }),
        ("bye_basic", bye("shutting down")),
        ("bye_auth", bye("authentication failed")),
        ("bye_empty", bye("")),
        ("bye_unicode_long", bye(&"au revoir ☕ ".repeat(5))),
        (
            "request_command",
            request(
                UUID,
                "command",
                vec![],
                kw(vec![
                    ("id", s(UUID)),
                    ("cmdtype", s("echo.Echo")),
                    ("args", Value::Array(vec![])),
                    (
                        "kwargs",
                        map(vec![
                            ("message", s("hello")),
                            ("reverse", Value::Boolean(false)),
                        ]),
                    ),
                ]),
            ),
        ),
        ("request_empty", request("1", "ping", vec![], vec![])),
        (
            "request_string_args",
            request(
                UUID,
                "echo",
                vec![s("a"), s(""), s(&"ü".repeat(40))],
                vec![],
            ),
        ),
        (
            "request_typed_kwargs",
            request(UUID, "typed", vec![], kw(typed())),
        ),
        (
            "request_many",
            request(
                UUID,
                &"m".repeat(32),
                (0..17).map(|n| s(&n.to_string())).collect(),
                (0..20).map(|n| (format!("k{n:02}"), i(n * 1000))).collect(),
            ),
        ),
        (
            "request_nonstring_args",
            request(
                UUID,
                "typed_args",
                vec![
                    i(1),
                    i(-2),
                    Value::F64(3.5),
                    Value::Nil,
                    Value::Boolean(true),
                    Value::Binary(vec![1]),
                    Value::Array(vec![s("x")]),
                    map(vec![("k", s("v"))]),
                ],
                vec![],
            ),
        ),
        ("response_nil", response(UUID, true, Value::Nil)),
        (
            "response_error",
            response(UUID, false, s("Method foo not found")),
        ),
        (
            "response_map",
            response(
                UUID,
                true,
                map(vec![
                    ("output", s("hello\n")),
                    ("changed", Value::Boolean(true)),
                    ("rc", i(0)),
                ]),
            ),
        ),
        ("response_int", response("r", true, i(-123456789))),
        ("response_float", response("r", true, Value::F64(1e300))),
        ("response_bin", response("r", true, Value::Binary(png))),
        (
            "response_list",
            response(
                "r",
                true,
                Value::Array(vec![
                    s("a"),
                    i(1),
                    Value::Array(vec![
                        i(2),
                        Value::Array(vec![i(3), Value::Array(vec![i(4), Value::Array(vec![])])]),
                    ]),
                    Value::Map(vec![]),
                ]),
            ),
        ),
        ("response_typed", response("r", true, map(typed()))),
        ("response_4k", response(UUID, true, s(&"z".repeat(4096)))),
        (
            "notification_progress",
            notification(
                "command_progress",
                map(vec![
                    ("command_id", s(UUID)),
                    ("current", i(0)),
                    ("total", i(1)),
                    ("message", s("Starting")),
                ]),
            ),
        ),
        (
            "notification_result",
            notification(
                "command_result",
                map(vec![
                    ("id", s(UUID)),
                    ("success", Value::Boolean(true)),
                    ("changed", Value::Boolean(false)),
                    ("output", s("hello")),
                ]),
            ),
        ),
        ("notification_nil", notification("tick", Value::Nil)),
        (
            "notification_list",
            notification(
                &"t".repeat(33),
                Value::Array(vec![
                    i(1),
                    Value::F64(2.5),
                    s("three"),
                    Value::Binary(b"4".to_vec()),
                ]),
            ),
        ),
        (
            "request_timeout",
            timed(UUID, "command", vec![], vec![], 300.0),
        ),
        (
            "request_timeout_fraction",
            timed("1", "ping", vec![s("x")], kw(vec![("a", i(1))]), 0.25),
        ),
    ]
}

/// The messages the `decode` vectors must decode to, by name.
fn decode_cases() -> Vec<(&'static str, Message)> {
    vec![
        (
            "request_reordered",
            request(
                "abc",
                "ping",
                vec![s("x")],
                kw(vec![("b", i(2)), ("a", i(1))]),
            ),
        ),
        ("response_extra_keys", response("r1", true, i(5))),
        ("ping_t_last", Message::Ping { data: 7 }),
        ("agent_hello_shuffled", agent_hello("a1", "0.3.4", "c")),
        (
            "notification_t_middle",
            notification("evt", map(vec![("k", Value::Array(vec![i(1)]))])),
        ),
        ("bye_extra_containers", bye("bye")),
        (
            "manager_hello_only_unknown_then_fields",
            manager_hello("1.0"),
        ),
        ("request_timeout_int", timed("a", "m", vec![], vec![], 30.0)),
        (
            "request_timeout_first",
            timed("a", "m", vec![], vec![], 1.5),
        ),
    ]
}

fn unhex(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|n| u8::from_str_radix(&hex[n..n + 2], 16).unwrap())
        .collect()
}

/// `name -> (kind, bytes)` from vectors.txt.
fn vectors() -> BTreeMap<&'static str, (&'static str, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for line in VECTORS.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let (name, kind, hex) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(
            out.insert(name, (kind, unhex(hex))).is_none(),
            "{name} twice"
        );
    }
    out
}

#[test]
fn every_vector_has_a_rust_case_and_back() {
    let vectors = vectors();
    let mut names: Vec<&str> = encode_cases().iter().map(|(n, _)| *n).collect();
    names.extend(decode_cases().iter().map(|(n, _)| *n));
    names.sort_unstable();
    let in_file: Vec<&str> = vectors.keys().copied().collect();
    assert_eq!(names, in_file);
    assert!(names.len() >= 50);
}

#[test]
fn encode_matches_python_byte_for_byte() {
    let vectors = vectors();
    for (name, msg) in encode_cases() {
        let (kind, expected) = &vectors[name];
        assert_eq!(*kind, "encode", "{name}");
        let got = encode(&msg).unwrap();
        assert_eq!(
            hex(&got),
            hex(expected),
            "{name}: our bytes (left) differ from Python's"
        );
        assert_eq!(encoded_len(&msg), expected.len(), "{name}: encoded_len");
    }
}

#[test]
fn python_bytes_decode_to_the_message() {
    let vectors = vectors();
    for (name, msg) in encode_cases().into_iter().chain(decode_cases()) {
        let (_, bytes) = &vectors[name];
        let got = decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, msg, "{name}");
    }
}

#[test]
fn decode_vectors_reencode_canonically() {
    let vectors = vectors();
    for (name, msg) in decode_cases() {
        let (kind, bytes) = &vectors[name];
        assert_eq!(*kind, "decode", "{name}");
        // Reordered input, canonical output: different bytes, same message.
        let canonical = encode(&msg).unwrap();
        assert_ne!(&canonical[..], &bytes[..], "{name}");
        assert_eq!(decode(&canonical).unwrap(), msg, "{name}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
