//! The serde impls against the hand-written codec: `rmp_serde` must write exactly
//! the bytes of `encode()` (so exactly Python's bytes, see `golden.rs`) and read
//! exactly what `decode()` reads, errors included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redpepper_codec::{
    decode, encode, AgentHello, CodecError, ManagerHello, Message, Notification, Request, Response,
    Value, MAX_DEPTH,
};
use serde::{Deserialize, Serialize};

const VECTORS: &str = include_str!("../golden/vectors.txt");

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|n| u8::from_str_radix(&hex[n..n + 2], 16).unwrap())
        .collect()
}

/// `(name, kind, bytes)` of every golden vector.
fn vectors() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    VECTORS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split(' ');
            let (name, kind, hex) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            (name, kind, unhex(hex))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every way of writing MessagePack through rmp-serde, which must all agree: the
/// impls write a map whatever the struct setting.
fn serde_encodings<T: Serialize>(value: &T) -> Vec<(&'static str, Vec<u8>)> {
    let mut struct_map = Vec::new();
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut struct_map).with_struct_map())
        .unwrap();
    let mut struct_tuple = Vec::new();
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut struct_tuple).with_struct_tuple())
        .unwrap();
    vec![
        ("to_vec_named", rmp_serde::to_vec_named(value).unwrap()),
        ("to_vec", rmp_serde::to_vec(value).unwrap()),
        ("with_struct_map", struct_map),
        ("with_struct_tuple", struct_tuple),
    ]
}

/// The per-type struct inside a message, serialized on its own.
fn inner_encoding(msg: &Message) -> Option<Vec<u8>> {
    Some(match msg {
        Message::AgentHello(m) => rmp_serde::to_vec_named(m).unwrap(),
        Message::ManagerHello(m) => rmp_serde::to_vec_named(m).unwrap(),
        Message::Request(m) => rmp_serde::to_vec_named(m).unwrap(),
        Message::Response(m) => rmp_serde::to_vec_named(m).unwrap(),
        Message::Notification(m) => rmp_serde::to_vec_named(m).unwrap(),
        Message::Ping { .. } | Message::Pong { .. } | Message::Bye { .. } => return None,
    })
}

/// Serialize `msg` every way and check each against `expected`.
fn assert_serializes_to(what: &str, msg: &Message, expected: &[u8]) {
    for (how, bytes) in serde_encodings(msg) {
        assert_eq!(
            hex(&bytes),
            hex(expected),
            "{what}: rmp_serde {how} (left) differs from encode()"
        );
    }
    if let Some(bytes) = inner_encoding(msg) {
        assert_eq!(hex(&bytes), hex(expected), "{what}: per-type struct");
    }
}

/// Deserialize `bytes` as a message and as its per-type struct.
fn assert_deserializes_to(what: &str, bytes: &[u8], expected: &Message) {
    let got: Message = rmp_serde::from_slice(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(&got, expected, "{what}");
    match expected {
        Message::AgentHello(m) => {
            assert_eq!(&rmp_serde::from_slice::<AgentHello>(bytes).unwrap(), m)
        }
        Message::ManagerHello(m) => {
            assert_eq!(&rmp_serde::from_slice::<ManagerHello>(bytes).unwrap(), m)
        }
        Message::Request(m) => assert_eq!(&rmp_serde::from_slice::<Request>(bytes).unwrap(), m),
        Message::Response(m) => assert_eq!(&rmp_serde::from_slice::<Response>(bytes).unwrap(), m),
        Message::Notification(m) => {
            assert_eq!(&rmp_serde::from_slice::<Notification>(bytes).unwrap(), m)
        }
        Message::Ping { .. } | Message::Pong { .. } | Message::Bye { .. } => {}
    }
}

#[test]
fn golden_vectors_serialize_byte_for_byte() {
    let mut checked = 0;
    for (name, kind, bytes) in vectors() {
        if kind != "encode" {
            continue;
        }
        // `golden.rs` proves `decode` gives the Rust message of each vector and
        // `encode` gives the vector back; so does this, then serde must agree.
        let msg = decode(&bytes).unwrap();
        assert_eq!(hex(&encode(&msg).unwrap()), hex(&bytes), "{name}: encode");
        assert_serializes_to(name, &msg, &bytes);
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} encode vectors");
}

#[test]
fn golden_vectors_deserialize_like_decode() {
    let mut decode_only = 0;
    for (name, kind, bytes) in vectors() {
        let expected = decode(&bytes).unwrap();
        assert_deserializes_to(name, &bytes, &expected);
        if kind == "decode" {
            // Reordered keys, `t` last or in the middle, unknown keys: serde
            // writes the canonical bytes, as encode() does.
            assert_serializes_to(name, &expected, &encode(&expected).unwrap());
            decode_only += 1;
        }
    }
    assert!(decode_only >= 7, "only {decode_only} decode vectors");
}

#[test]
fn decode_only_vectors_give_the_expected_messages() {
    let by_name = |wanted: &str| {
        let (_, _, bytes) = vectors()
            .into_iter()
            .find(|(n, _, _)| *n == wanted)
            .unwrap();
        rmp_serde::from_slice::<Message>(&bytes).unwrap()
    };
    assert_eq!(by_name("ping_t_last"), Message::Ping { data: 7 });
    assert_eq!(
        by_name("request_reordered"),
        Message::Request(Request {
            id: "abc".into(),
            method: "ping".into(),
            args: vec![Value::from("x")],
            kwargs: vec![("b".into(), Value::from(2)), ("a".into(), Value::from(1))],
        })
    );
    assert_eq!(
        by_name("response_extra_keys"),
        Message::Response(Response {
            id: "r1".into(),
            success: true,
            data: Value::from(5),
        })
    );
}

/// xorshift64*, as in `roundtrip.rs`: deterministic cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn len(&mut self) -> usize {
        const EDGES: [usize; 10] = [0, 1, 15, 16, 31, 32, 255, 256, 300, 70_000];
        match self.below(10) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            _ => self.below(12) as usize,
        }
    }

    fn string(&mut self) -> String {
        const PIECES: [&str; 6] = ["a", "Z", "-", "é", "☕", "🌶"];
        let len = self.len();
        if len > 1000 {
            return "q".repeat(len);
        }
        (0..len)
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn int(&mut self) -> i64 {
        const EDGES: [i64; 12] = [
            0,
            127,
            128,
            65535,
            65536,
            -1,
            -32,
            -33,
            -32768,
            -32769,
            i64::MIN,
            i64::MAX,
        ];
        match self.below(3) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            1 => self.next() as i64,
            _ => (self.next() as i64) >> self.below(64),
        }
    }

    fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth >= 4 { 8 } else { 10 };
        match self.below(kinds) {
            0 => Value::Nil,
            1 => Value::Boolean(self.below(2) == 1),
            2 => Value::from(self.int()),
            3 => Value::from(self.next()),
            4 => {
                let f = f64::from_bits(self.next());
                Value::F64(if f.is_nan() { 0.25 } else { f })
            }
            5 => Value::F32(self.below(1000) as f32 / 8.0),
            6 => Value::from(self.string()),
            7 => match self.below(2) {
                0 => Value::Binary((0..self.len()).map(|n| n as u8).collect()),
                _ => {
                    let tag = self.next() as i8;
                    Value::Ext(tag, (0..self.len()).map(|n| n as u8).collect())
                }
            },
            8 => {
                let n = self.len().min(40);
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect())
            }
            _ => {
                let n = self.len().min(20);
                Value::Map(
                    (0..n)
                        .map(|_| (self.value(depth + 1), self.value(depth + 1)))
                        .collect(),
                )
            }
        }
    }

    fn message(&mut self) -> Message {
        match self.below(8) {
            0 => Message::AgentHello(AgentHello {
                id: self.string(),
                version: self.string(),
                credentials: self.string(),
            }),
            1 => Message::ManagerHello(ManagerHello {
                version: self.string(),
            }),
            2 => Message::Ping { data: self.int() },
            3 => Message::Pong { data: self.int() },
            4 => Message::Bye {
                reason: self.string(),
            },
            5 => Message::Request(Request {
                id: self.string(),
                method: self.string(),
                args: (0..self.len().min(20)).map(|_| self.value(1)).collect(),
                kwargs: (0..self.len().min(20))
                    .map(|_| (self.string(), self.value(1)))
                    .collect(),
            }),
            6 => Message::Response(Response {
                id: self.string(),
                success: self.below(2) == 1,
                data: self.value(0),
            }),
            _ => Message::Notification(Notification {
                r#type: self.string(),
                data: self.value(0),
            }),
        }
    }
}

#[test]
fn generated_messages_serialize_and_deserialize_like_the_codec() {
    let mut rng = Rng(0x5eed_5e2d_e000_0001);
    for n in 0..2000 {
        let msg = rng.message();
        let bytes = encode(&msg).unwrap();
        // Every int, str, bin, ext, array and map length form, both ways.
        assert_eq!(
            hex(&rmp_serde::to_vec_named(&msg).unwrap()),
            hex(&bytes),
            "case {n}: {msg:?}"
        );
        assert_deserializes_to(&format!("case {n}"), &bytes, &msg);
    }
}

/// Whether `e` is one of the documented cases where rmp-serde accepts what
/// `decode()` refuses: trailing bytes, invalid UTF-8 in a str inside a value.
fn serde_is_laxer(e: &CodecError) -> bool {
    match e {
        CodecError::TrailingBytes(_) => true,
        CodecError::InField { source, .. } => matches!(**source, CodecError::InvalidUtf8 { .. }),
        _ => false,
    }
}

#[test]
fn mangled_payloads_deserialize_like_decode_or_fail_without_panicking() {
    let mut rng = Rng(0xdead_beef_5e2d_e002);
    let (mut both_ok, mut both_err, mut laxer) = (0, 0, 0);
    for _ in 0..1500 {
        let msg = rng.message();
        let bytes = encode(&msg).unwrap().to_vec();
        for _ in 0..24 {
            let mut mangled = bytes.clone();
            let at = rng.below(mangled.len() as u64) as usize;
            match rng.below(4) {
                0 => mangled[at] = rng.next() as u8,
                1 => mangled[at] ^= 1 << rng.below(8),
                2 => mangled.insert(at, rng.next() as u8),
                _ => mangled.truncate(at),
            }
            let ours = decode(&mangled);
            let theirs = rmp_serde::from_slice::<Message>(&mangled);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "{mangled:02x?}");
                    both_ok += 1;
                }
                (Err(_), Err(_)) => both_err += 1,
                (Ok(m), Err(e)) => panic!("decode gave {m:?}, serde failed: {e} ({mangled:02x?})"),
                (Err(e), Ok(m)) => {
                    assert!(
                        serde_is_laxer(e),
                        "serde gave {m:?}, decode failed: {e} ({mangled:02x?})"
                    );
                    laxer += 1;
                }
            }
        }
    }
    // The mangling reaches all three outcomes.
    eprintln!("both ok {both_ok}, both err {both_err}, serde laxer {laxer}");
    assert!(both_ok > 1000 && both_err > 1000 && laxer > 0);
}

/// Bytes of a fixstr.
fn fs(s: &str) -> Vec<u8> {
    let mut out = vec![0xa0 | s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

/// A fixmap from pre-encoded keys and values.
fn map(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![0x80 | entries.len() as u8];
    for (k, v) in entries {
        out.extend(fs(k));
        out.extend_from_slice(v);
    }
    out
}

fn serde_err(bytes: &[u8]) -> String {
    match rmp_serde::from_slice::<Message>(bytes) {
        Ok(m) => panic!("serde decoded {m:?} from {bytes:02x?}"),
        Err(e) => e.to_string(),
    }
}

fn nested_arrays(levels: usize) -> Vec<u8> {
    let mut out = vec![0x91; levels];
    out.push(0xc0);
    out
}

#[test]
fn errors_carry_the_same_text_as_decode() {
    let request = |method: &[u8]| {
        map(&[
            ("t", &[20]),
            ("id", &fs("1")),
            ("method", method),
            ("args", &[0x90]),
            ("kwargs", &[0x80]),
        ])
    };
    let big = [0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0];
    let too_deep = nested_arrays(MAX_DEPTH + 1);
    let cases: Vec<Vec<u8>> = vec![
        // Not a map.
        vec![0x93, 1, 2, 3],
        vec![0x01],
        vec![0xc0],
        fs("t"),
        vec![0xc4, 0],
        // `t`.
        map(&[("data", &[1])]),
        vec![0x80],
        map(&[("t", &fs("ping"))]),
        map(&[("t", &[0xcb, 0x40, 0x28, 0, 0, 0, 0, 0, 0])]),
        map(&[("t", &[99])]),
        map(&[("t", &[0xff])]),
        map(&[("t", &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]),
        map(&[("t", &[12]), ("data", &[5]), ("t", &[13])]),
        // Missing fields, also when only another type's field is there.
        map(&[
            ("t", &[20]),
            ("id", &fs("1")),
            ("args", &[0x90]),
            ("kwargs", &[0x80]),
        ]),
        map(&[("t", &[12])]),
        map(&[("t", &[14]), ("data", &fs("x"))]),
        map(&[("t", &[21]), ("id", &fs("1")), ("success", &[0xc3])]),
        map(&[("t", &[10]), ("id", &fs("a"))]),
        map(&[("t", &[22]), ("data", &[0xc0])]),
        // Mistyped fields, before and after `t`.
        request(&[0x01]),
        request(&[0xc4, 0x01, b'm']),
        map(&[("t", &[20]), ("args", &[0x80])]),
        map(&[("t", &[20]), ("args", &[0xc4, 0x01, 0x01])]),
        map(&[("t", &[20]), ("kwargs", &[0x90])]),
        map(&[("t", &[21]), ("success", &[0x01])]),
        map(&[("t", &[12]), ("data", &fs("1"))]),
        map(&[("t", &[13]), ("data", &[0xca, 0, 0, 0, 0])]),
        map(&[("t", &[11]), ("version", &[0xc0])]),
        map(&[("reason", &[0xc3]), ("t", &[14])]),
        map(&[("args", &fs("x")), ("t", &[20])]),
        map(&[("data", &[0xc0]), ("t", &[12])]),
        map(&[("t", &[12]), ("data", &big)]),
        map(&[("data", &big), ("t", &[13])]),
        // Too deep, with `t` before and after.
        map(&[
            ("t", &[21]),
            ("id", &fs("r")),
            ("success", &[0xc3]),
            ("data", &too_deep),
        ]),
        map(&[("data", &too_deep), ("t", &[22]), ("type", &fs("e"))]),
        map(&[("t", &[20]), ("args", &[&[0x91][..], &too_deep].concat())]),
    ];
    for bytes in cases {
        let ours = decode(&bytes).unwrap_err().to_string();
        assert_eq!(serde_err(&bytes), ours, "{bytes:02x?}");
    }
}

#[test]
fn errors_whose_decode_text_has_an_offset_still_name_the_field() {
    // decode() gives byte offsets, which serde cannot; the rest of the text agrees.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0x81, 0x01, 0x02], "map key is not a str: got int"),
        (
            vec![0x81, 0xc4, 0x01, b't', 0x0c],
            "map key is not a str: got bin",
        ),
        (
            map(&[
                ("t", &[20]),
                ("id", &fs("1")),
                ("method", &fs("m")),
                ("args", &[0x90]),
                ("kwargs", &[0x81, 0x05, 0x06]),
            ]),
            "Request: field `kwargs`: map key is not a str: got int",
        ),
        (
            map(&[("t", &[14]), ("reason", &[0xa2, 0xc3, 0x28])]),
            "Bye: field `reason`: string found to be invalid utf8",
        ),
        (
            map(&[("t", &[14]), ("reason", &[0xa5, b'b', b'y'])]),
            "Bye: field `reason`: IO error while reading data",
        ),
        (
            map(&[("t", &[20]), ("args", &[0xdd, 0xff, 0xff, 0xff, 0xff])]),
            "Request: field `args`: IO error while reading marker",
        ),
        (
            map(&[("t", &[21]), ("data", &[0x91, 0xc1])]),
            "Response: field `data`: wrong msgpack marker Reserved",
        ),
        (vec![0xc1], "wrong msgpack marker Reserved"),
        (vec![], "IO error while reading marker"),
    ];
    for (bytes, expected) in cases {
        assert!(decode(&bytes).is_err(), "{bytes:02x?}");
        let got = serde_err(&bytes);
        assert!(
            got.starts_with(expected),
            "{got:?} does not start with {expected:?}"
        );
    }
}

#[test]
fn every_prefix_of_a_valid_message_is_an_error() {
    let msg = Message::Request(Request {
        id: "abc".into(),
        method: "m".into(),
        args: vec![Value::from(1.5), Value::Binary(vec![1, 2])],
        kwargs: vec![("k".into(), Value::Ext(3, vec![9; 5]))],
    });
    let bytes = rmp_serde::to_vec_named(&msg).unwrap();
    for len in 0..bytes.len() {
        assert!(
            rmp_serde::from_slice::<Message>(&bytes[..len]).is_err(),
            "prefix {len}"
        );
    }
    assert_eq!(rmp_serde::from_slice::<Message>(&bytes).unwrap(), msg);
}

#[test]
fn deep_payloads_are_refused_without_overflowing_the_stack() {
    let mut bytes = map(&[("t", &[21]), ("id", &fs("r")), ("success", &[0xc3])]);
    bytes[0] += 1;
    bytes.extend(fs("data"));
    bytes.extend(nested_arrays(100_000));
    assert_eq!(
        serde_err(&bytes),
        "Response: field `data`: value nested deeper than 128 levels"
    );
    // Exactly MAX_DEPTH levels is fine, as for decode().
    let ok = map(&[
        ("t", &[21]),
        ("id", &fs("r")),
        ("success", &[0xc3]),
        ("data", &nested_arrays(MAX_DEPTH)),
    ]);
    assert_eq!(
        rmp_serde::from_slice::<Message>(&ok).unwrap(),
        decode(&ok).unwrap()
    );
}

#[test]
fn before_t_a_too_deep_field_of_another_type_is_ignored_like_decode() {
    // `args` is no field of Ping: decode() skips it, so must serde, even though it
    // had to buffer it (and found it too deep) before it knew the type.
    let bytes = map(&[("args", &nested_arrays(500)), ("t", &[12]), ("data", &[3])]);
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 3 });
    assert_eq!(
        rmp_serde::from_slice::<Message>(&bytes).unwrap(),
        Message::Ping { data: 3 }
    );
    // Repeated fields keep the last value, before and after `t`.
    let bytes = map(&[("data", &[1]), ("t", &[12]), ("data", &[2]), ("t", &[12])]);
    assert_eq!(
        rmp_serde::from_slice::<Message>(&bytes).unwrap(),
        decode(&bytes).unwrap()
    );
    assert_eq!(decode(&bytes).unwrap(), Message::Ping { data: 2 });
}

#[test]
fn documented_differences_from_decode() {
    // rmp_serde::from_slice does not look past the map: trailing bytes pass.
    let mut bytes = map(&[("t", &[12]), ("data", &[1])]);
    bytes.extend_from_slice(&[0xc0, 0xc0]);
    assert!(matches!(decode(&bytes), Err(CodecError::TrailingBytes(2))));
    assert_eq!(
        rmp_serde::from_slice::<Message>(&bytes).unwrap(),
        Message::Ping { data: 1 }
    );
    // rmp-serde hands invalid UTF-8 in a str to the visitor as bytes: inside a
    // dynamic value it becomes Binary.
    let bytes = map(&[("t", &[22]), ("type", &fs("e")), ("data", &[0xa1, 0x80])]);
    assert!(decode(&bytes).is_err());
    let Message::Notification(n) = rmp_serde::from_slice::<Message>(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(n.data, Value::Binary(vec![0x80]));
}

#[test]
fn serialize_refuses_what_encode_refuses() {
    let mut deep = Value::Nil;
    for _ in 0..=MAX_DEPTH {
        deep = Value::Array(vec![deep]);
    }
    let bad_utf8 = rmpv::decode::read_value(&mut &[0xa1, 0xff][..]).unwrap();
    for data in [deep, bad_utf8] {
        let msg = Message::Response(Response {
            id: "r".into(),
            success: true,
            data,
        });
        let ours = encode(&msg).unwrap_err().to_string();
        assert_eq!(rmp_serde::to_vec_named(&msg).unwrap_err().to_string(), ours);
    }
}

#[test]
fn per_type_structs_require_their_type() {
    let bytes = encode(&Message::Ping { data: 1 }).unwrap();
    let e = rmp_serde::from_slice::<Request>(&bytes).unwrap_err();
    assert_eq!(e.to_string(), "expected a Request message, got Ping");
    let hello = AgentHello {
        id: "a".into(),
        version: "0.4.0".into(),
        credentials: "c".into(),
    };
    let bytes = rmp_serde::to_vec(&hello).unwrap();
    assert_eq!(bytes, encode(&Message::AgentHello(hello.clone())).unwrap());
    assert_eq!(
        AgentHello::deserialize(&mut rmp_serde::Deserializer::new(&bytes[..])).unwrap(),
        hello
    );
}

#[test]
fn messages_embed_in_other_serde_structures() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Envelope {
        seq: u32,
        message: Message,
    }
    let envelope = Envelope {
        seq: 7,
        message: Message::Bye {
            reason: "done".into(),
        },
    };
    let bytes = rmp_serde::to_vec_named(&envelope).unwrap();
    // The message inside is the wire message, verbatim.
    let wire = encode(&envelope.message).unwrap();
    assert!(bytes.windows(wire.len()).any(|w| w == &wire[..]));
    assert_eq!(rmp_serde::from_slice::<Envelope>(&bytes).unwrap(), envelope);
}
