//! Property-style tests over many generated messages: encode/decode round trips,
//! `encoded_len` is exact, the bytes are what an independent MessagePack
//! implementation (rmpv) writes and reads for the same map, and mangled payloads never
//! panic.
//!
//! The generator is a small deterministic xorshift, so failures reproduce.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redpepper_codec::{
    decode, encode, encode_into, encoded_len, AgentHello, ManagerHello, Message, Notification,
    Request, Response, Value,
};

/// xorshift64*: deterministic, good enough to spread cases around.
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

    /// Lengths biased to the boundaries of MessagePack's length forms.
    fn len(&mut self) -> usize {
        const EDGES: [usize; 10] = [0, 1, 15, 16, 31, 32, 255, 256, 300, 70_000];
        match self.below(10) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            _ => self.below(12) as usize,
        }
    }

    fn string(&mut self) -> String {
        const PIECES: [&str; 8] = ["a", "Z", "0", "-", "é", "☕", "🌶", " "];
        let len = self.len();
        if len > 1000 {
            return "q".repeat(len);
        }
        (0..len)
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn int(&mut self) -> i64 {
        const EDGES: [i64; 16] = [
            0,
            127,
            128,
            255,
            256,
            65535,
            65536,
            -1,
            -32,
            -33,
            -128,
            -129,
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
                // Any finite or infinite float: NaN != NaN would spoil the equality.
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
                // Half of them carry our `timeout` extension (seconds from 0 to ~4e6).
                timeout: self
                    .next()
                    .is_multiple_of(2)
                    .then(|| (self.next() % 4_000_000_000) as f64 / 1000.0),
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
fn generated_messages_round_trip() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut buf = Vec::new();
    for n in 0..3000 {
        let msg = rng.message();
        let bytes = encode(&msg).unwrap();
        assert_eq!(encoded_len(&msg), bytes.len(), "case {n}: {msg:?}");
        assert_eq!(decode(&bytes).unwrap(), msg, "case {n}");

        // encode_into appends the same bytes.
        buf.clear();
        buf.push(0xaa);
        encode_into(&msg, &mut buf).unwrap();
        assert_eq!(&buf[1..], &bytes[..], "case {n}");
    }
}

#[test]
fn mangled_payloads_never_panic() {
    let mut rng = Rng(0xdead_beef_0bad_f00d);
    for _ in 0..1500 {
        let msg = rng.message();
        let bytes = encode(&msg).unwrap().to_vec();
        // Truncations.
        for _ in 0..8 {
            let cut = rng.below(bytes.len() as u64) as usize;
            assert!(decode(&bytes[..cut]).is_err());
        }
        // Byte flips and insertions: any result but a panic; a success must
        // re-encode to something that decodes to the same message.
        for _ in 0..16 {
            let mut mangled = bytes.clone();
            let at = rng.below(mangled.len() as u64) as usize;
            match rng.below(3) {
                0 => mangled[at] = rng.next() as u8,
                1 => mangled[at] ^= 1 << rng.below(8),
                _ => mangled.insert(at, rng.next() as u8),
            }
            if let Ok(m) = decode(&mangled) {
                let again = encode(&m).unwrap();
                let m2 = decode(&again).unwrap();
                assert_eq!(format!("{m:?}"), format!("{m2:?}"));
            }
        }
    }
}

/// The message as the generic map Python's `model_dump()` gives: `t` first, then the
/// fields in protocol order.
fn as_map(msg: &Message) -> Value {
    let s = |x: &str| Value::from(x);
    let fields = match msg {
        Message::AgentHello(m) => vec![
            ("id", s(&m.id)),
            ("version", s(&m.version)),
            ("credentials", s(&m.credentials)),
        ],
        Message::ManagerHello(m) => vec![("version", s(&m.version))],
        Message::Ping { data } | Message::Pong { data } => vec![("data", Value::from(*data))],
        Message::Bye { reason } => vec![("reason", s(reason))],
        Message::Request(m) => {
            let mut fields = vec![
                ("id", s(&m.id)),
                ("method", s(&m.method)),
                ("args", Value::Array(m.args.clone())),
                (
                    "kwargs",
                    Value::Map(m.kwargs.iter().map(|(k, v)| (s(k), v.clone())).collect()),
                ),
            ];
            // Our extension, after `kwargs`, only when set.
            fields.extend(m.timeout.map(|t| ("timeout", Value::F64(t))));
            fields
        }
        Message::Response(m) => vec![
            ("id", s(&m.id)),
            ("success", Value::Boolean(m.success)),
            ("data", m.data.clone()),
        ],
        Message::Notification(m) => vec![("type", s(&m.r#type)), ("data", m.data.clone())],
    };
    let t = (s("t"), Value::from(msg.message_type().code()));
    Value::Map(
        std::iter::once(t)
            .chain(fields.into_iter().map(|(k, v)| (s(k), v)))
            .collect(),
    )
}

#[test]
fn generated_messages_are_what_an_independent_msgpack_writes_and_reads() {
    // rmpv picks the smallest form of every int, str, bin, ext, array and map length
    // as msgpack-python does: our bytes must be its bytes, and it must read them back
    // as the same map.
    let mut rng = Rng(0x5eed_5e2d_e000_0001);
    for n in 0..2000 {
        let msg = rng.message();
        let bytes = encode(&msg).unwrap();
        let map = as_map(&msg);
        let mut reference = Vec::new();
        rmpv::encode::write_value(&mut reference, &map).unwrap();
        assert!(bytes[..] == reference[..], "case {n}: {msg:?}");
        assert_eq!(
            rmpv::decode::read_value(&mut &bytes[..]).unwrap(),
            map,
            "case {n}"
        );
    }
}
