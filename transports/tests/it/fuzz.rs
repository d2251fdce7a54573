//! The fuzz targets' bodies (`redpepper_transports::fuzzing`) in the normal test run:
//! seeded random inputs, mostly mutations of valid ones, through each parser of
//! peer-controlled bytes. Each body panics when an invariant breaks (results and
//! buffers within their limits, answers consistent with the input, bounded error
//! text); each test also checks that its inputs reached the parser's deep paths.
//!
//! `RP_FUZZ_ITERS` sets the inputs per target (default 3000), `RP_FUZZ_SEED` the
//! seed (default fixed, so a failure repeats). A failing input is printed as hex:
//! put its bytes in a file and run `cargo fuzz run <target> <file>`, or add it to the
//! regression tests below.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redpepper_transports::fuzzing;

/// Bytes that mean something to one of the parsers.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n\n",
    b"\r\n\r\n",
    b"\n",
    b",",
    b";",
    b"\"",
    b"\\",
    b"=",
    b":",
    b"[",
    b"]",
    b" ",
    b"for=",
    b"HTTP",
    b"HTTP/1.1 ",
    b"200",
    b"Upgrade: websocket\r\n",
    b"\xff\xff\xff\xff",
    b"\0\0\0\x07",
    b"\0\0\x01\x2c",
    b"\0",
    b"\x7f",
    b"\x80",
    b"\xc3\xa9",
    b"redpepper.eof",
];

fn iterations() -> usize {
    std::env::var("RP_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn base_seed() -> u64 {
    std::env::var("RP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f022)
}

/// Run `target` on `iterations()` inputs made from `seeds`; the labels it returned.
fn run(name: &str, target: fn(&[u8]) -> &'static str, seeds: &[Vec<u8>]) -> BTreeSet<&'static str> {
    let seed = base_seed();
    let mut rng = StdRng::seed_from_u64(seed ^ name.len() as u64);
    let mut seen = BTreeSet::new();
    // The seeds themselves, with every option byte.
    for s in seeds {
        for opts in [0u8, 1, 2, 3, 0x1f, 0xff] {
            seen.insert(call(name, target, &with_opts(opts, s), seed, 0));
        }
    }
    for i in 0..iterations() {
        let input = generate(&mut rng, seeds);
        seen.insert(call(name, target, &input, seed, i));
    }
    seen
}

fn with_opts(opts: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![opts];
    v.extend_from_slice(body);
    v
}

fn call(
    name: &str,
    target: fn(&[u8]) -> &'static str,
    input: &[u8],
    seed: u64,
    i: usize,
) -> &'static str {
    match catch_unwind(AssertUnwindSafe(|| target(input))) {
        Ok(label) => label,
        Err(_) => panic!(
            "fuzz target {name} failed (RP_FUZZ_SEED={seed}, input {i}) on input {}",
            hex::encode(input)
        ),
    }
}

/// An option byte, then random bytes (1 in 8) or a seed with a few mutations.
fn generate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = if seeds.is_empty() || rng.random_ratio(1, 8) {
        let mut v = vec![0u8; rng.random_range(0..256)];
        rng.fill(&mut v[..]);
        v
    } else {
        seeds[rng.random_range(0..seeds.len())].clone()
    };
    for _ in 0..rng.random_range(0..5) {
        mutate(rng, &mut data, seeds);
    }
    with_opts(rng.random(), &data)
}

fn mutate(rng: &mut StdRng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let at = |rng: &mut StdRng, len: usize| rng.random_range(0..=len);
    match rng.random_range(0..8) {
        0 if !data.is_empty() => {
            let i = rng.random_range(0..data.len());
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 if !data.is_empty() => {
            let i = rng.random_range(0..data.len());
            data[i] = rng.random();
        }
        2 => {
            let token = TOKENS[rng.random_range(0..TOKENS.len())];
            let i = at(rng, data.len());
            data.splice(i..i, token.iter().copied());
        }
        3 if !data.is_empty() => {
            let a = rng.random_range(0..data.len());
            let b = at(rng, data.len()).max(a);
            data.drain(a..b.min(a + 64));
        }
        4 if !data.is_empty() => {
            // Repeat a slice (long heads, many headers, many hops).
            let a = rng.random_range(0..data.len());
            let b = (a + rng.random_range(1..64)).min(data.len());
            let piece = data[a..b].to_vec();
            let times = rng.random_range(1..400);
            data.splice(
                b..b,
                piece.iter().copied().cycle().take(piece.len() * times),
            );
        }
        5 => data.truncate(at(rng, data.len())),
        6 if !seeds.is_empty() => {
            let other = &seeds[rng.random_range(0..seeds.len())];
            let from = at(rng, other.len());
            let i = at(rng, data.len());
            data.splice(i..i, other[from..].iter().copied());
        }
        _ => {
            let i = at(rng, data.len());
            let mut noise = vec![0u8; rng.random_range(1..16)];
            rng.fill(&mut noise[..]);
            data.splice(i..i, noise);
        }
    }
}

fn assert_reached(seen: &BTreeSet<&str>, wanted: &[&str]) {
    for w in wanted {
        assert!(seen.contains(w), "no input reached {w:?}; reached {seen:?}");
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn tls_frames() {
    let mut two = frame(b"abc");
    two.extend(frame(&[7; 7]));
    let seeds = vec![
        two,
        frame(b""),
        frame(&[1; 300]),
        frame(&[2; 301]),
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
        vec![0xff, 0xff, 0xff, 0xff, 1, 2],
    ];
    let seen = run("tls_frames", fuzzing::tls_frames, &seeds);
    assert_reached(&seen, &["frames", "too-large", "http", "truncated"]);
}

const UPGRADE: &str = "GET /redpepper HTTP/1.1\r\nHost: m\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn ws_seeds() -> Vec<Vec<u8>> {
    let mut many = String::from("GET /redpepper HTTP/1.1\r\n");
    for i in 0..70 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    [
        format!("{UPGRADE}\r\n\u{2}\0"),
        format!("{UPGRADE}X-Forwarded-For: 192.0.2.7, 10.0.0.2\r\n\r\n"),
        format!("{UPGRADE}Forwarded: for=\"[2001:db8::1]:80\";proto=https, for=10.1.2.3\r\n\r\n"),
        format!("\r\n\r\n{}", UPGRADE.replace("\r\n", "\n") + "\n"),
        "GET /redpepper HTTP/1.1\r\nHost: m\r\n\r\n".into(),
        "HEAD /other?x HTTP/1.0\r\n\r\n".into(),
        "POST /redpepper HTTP/1.1\r\nContent-Length: 0\r\n\r\n".into(),
        many,
        "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

#[test]
fn ws_request_heads() {
    let seen = run("ws_head", fuzzing::ws_head, &ws_seeds());
    assert_reached(
        &seen,
        &["upgrade", "refused", "bad", "too-large", "partial"],
    );
}

#[test]
fn forwarded_headers() {
    let seeds: Vec<Vec<u8>> = [
        "192.0.2.7, 10.0.0.2",
        "203.0.113.7, 2001:db8::2\n[2001:db8::3]:99 ,10.0.0.1:5, junk",
        "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
        "for=unknown, by=10.0.0.1, for=\"_hidden\", for=\"198.51.100.17:8080\";host=\"a,b\"",
        "for=\"[::1]\", for=10.1.2.3\nfor=\"a\\\"b\"",
        "::ffff:192.0.2.7",
    ]
    .into_iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let seen = run("forwarded", fuzzing::forwarded, &seeds);
    assert_reached(&seen, &["peer", "forwarded"]);
}

#[test]
fn proxy_answers() {
    let seeds: Vec<Vec<u8>> = [
        &b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\nTLS BYTES"[..],
        b"HTTP/1.0 200 OK\n\n\x16\x03\x01",
        b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
        b"HTTP/1.1 401 Unauthorized\r\n\r\n",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2000 x\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n",
        b"HTTP/1.1 200 OK\r\nVia: ",
    ]
    .into_iter()
    .map(<[u8]>::to_vec)
    .collect();
    let seen = run("proxy_answer", fuzzing::proxy_answer, &seeds);
    assert_reached(&seen, &["tunnel", "refused", "incomplete"]);
}

/// Basic properties as in a content header frame: flags, then the fields present
/// (short strings, plus a field table for `headers`).
fn properties(fields: &[(u8, &str)], headers: bool) -> Vec<u8> {
    let mut flags: u16 = fields.iter().map(|(bit, _)| 1u16 << bit).sum();
    if headers {
        flags |= 1 << 13;
    }
    let mut out = flags.to_be_bytes().to_vec();
    // Fields in flag order, highest bit first.
    for bit in (2..16).rev() {
        if bit == 13 && headers {
            let mut table = vec![1, b'k', b'S'];
            table.extend_from_slice(&3u32.to_be_bytes());
            table.extend_from_slice(b"val");
            out.extend_from_slice(&(table.len() as u32).to_be_bytes());
            out.extend(table);
        }
        if let Some((_, value)) = fields.iter().find(|(b, _)| *b == bit) {
            out.push(value.len() as u8);
            out.extend_from_slice(value.as_bytes());
        }
    }
    out
}

#[test]
fn amqp_deliveries() {
    // Bits: 10 correlation_id, 9 reply_to, 8 expiration, 5 type, 4 user_id.
    let sid = "0123456789abcdef0123456789abcdef";
    let mut seeds = vec![
        properties(
            &[
                (10, sid),
                (4, "agent1"),
                (9, "redpepper.agent.a1"),
                (8, "3000"),
            ],
            false,
        ),
        properties(&[(10, sid), (4, "agent1"), (8, "60000")], true),
        properties(&[(10, sid), (4, "agent1"), (5, "redpepper.eof")], false),
        properties(&[(10, "abc"), (5, "something")], false),
        properties(&[(10, "a b")], false),
        properties(&[(4, "agent1")], false),
        properties(&[(10, sid)], false),
    ];
    for s in seeds.iter_mut().take(2) {
        s.extend_from_slice(b"\x92\x01\xa5hello payload");
    }
    let seen = run("amqp_delivery", fuzzing::amqp_delivery, &seeds);
    assert_reached(
        &seen,
        &[
            "payload",
            "too-large",
            "eof",
            "foreign",
            "not-ours",
            "unknown-session",
        ],
    );
}
