//! The WebSocket listener's request head, and the forwarded-client headers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;
use tokio_tungstenite::tungstenite::handshake::server::create_response;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};

use crate::ws::accept::{parse_request, MAX_REQUEST_HEAD};
use crate::ws::forwarded::{client_addr, forwarded_for, x_forwarded_for};
use crate::ws::head::{Head, HeadBuf};

/// The WebSocket path the listener serves.
const PATH: &str = "/redpepper";

/// Read sizes tried; 2048 is what the listener reads at a time.
const CHUNKS: [usize; 8] = [1, 2, 3, 7, 64, 512, 2048, 2048];

/// The TCP peer of the fuzzed connections (a trusted proxy for some `trusted` sets).
const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), 40000);

/// `trusted_proxies` sets tried.
const TRUSTED: [&[&str]; 4] = [
    &[],
    &["10.0.0.0/8"],
    &["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "::1/128"],
    &["0.0.0.0/0", "::/0"],
];

/// Collect `data[1..]` as the listener does (reads of one size, until the head is no
/// longer partial), then answer the head as the listener would.
///
/// Invariants: the collected bytes stay under [`MAX_REQUEST_HEAD`] plus one read; a
/// complete head ends within them, at the same place as when the whole input is
/// parsed at once; the answer to a complete head (refusal or upgrade response,
/// client address behind trusted proxies) is built without panicking and its log
/// text is bounded.
pub fn ws_head(data: &[u8]) -> &'static str {
    let Some((&opts, input)) = data.split_first() else {
        return "empty";
    };
    let chunk = CHUNKS[usize::from(opts & 7)];
    let trusted = nets(TRUSTED[usize::from((opts >> 3) & 3)]);
    let mut buf = HeadBuf::new();
    let mut state = Head::Partial;
    let mut pushed = 0;
    for piece in input.chunks(chunk) {
        state = buf.push(piece);
        pushed += piece.len();
        if state != Head::Partial {
            break;
        }
    }
    let bytes = buf.into_bytes();
    assert_eq!(bytes.len(), pushed);
    assert!(
        pushed < MAX_REQUEST_HEAD + chunk,
        "{pushed} bytes collected for a head"
    );
    let whole = HeadBuf::new().push(input);
    match state {
        Head::Partial => {
            assert_eq!(pushed, input.len());
            assert!(pushed < MAX_REQUEST_HEAD);
            assert!(
                !matches!(whole, Head::Complete(_)),
                "read by read: partial; at once: {whole:?}"
            );
            "partial"
        }
        Head::TooLarge => {
            if let Head::Complete(len) = whole {
                assert!(len >= MAX_REQUEST_HEAD, "a head of {len} bytes missed");
            }
            "too-large"
        }
        Head::Bad(_) => {
            assert!(
                !matches!(whole, Head::Complete(_)),
                "read by read: bad; at once: {whole:?}"
            );
            "bad"
        }
        Head::Complete(len) => {
            assert!(len <= pushed);
            assert_eq!(whole, Head::Complete(len), "read by read vs at once");
            answer(&bytes[..len], &trusted)
        }
    }
}

/// What the listener does with a complete head.
fn answer(head: &[u8], trusted: &[IpNet]) -> &'static str {
    match parse_request(head, PATH) {
        Err(refusal) => {
            super::bounded_text("refusal of a request head", &refusal.why);
            "refused"
        }
        Ok(request) => {
            let _ = create_response(&request);
            let client = client_addr(PEER, request.headers(), trusted);
            check_client(client, request.headers());
            "upgrade"
        }
    }
}

/// Parse `data[1..]`, split at `\n`, as values of `X-Forwarded-For` and/or
/// `Forwarded` (bit 0 and 1 of the first byte), and find the client behind them.
///
/// Invariants: no more hops than bytes; the client is the TCP peer or one of the
/// hops the headers named.
pub fn forwarded(data: &[u8]) -> &'static str {
    let Some((&opts, input)) = data.split_first() else {
        return "empty";
    };
    let trusted = nets(TRUSTED[usize::from((opts >> 2) & 3)]);
    let values: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let texts: Vec<String> = values
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let xff = x_forwarded_for(texts.iter().map(String::as_str));
    let fwd = forwarded_for(texts.iter().map(String::as_str));
    assert!(xff.len() <= input.len() && fwd.len() <= input.len() + 1);

    let mut headers = HeaderMap::new();
    let names: &[&str] = match opts & 3 {
        0 => &["x-forwarded-for"],
        1 => &["forwarded"],
        _ => &["x-forwarded-for", "forwarded"],
    };
    for value in &values {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        for name in names {
            headers.append(HeaderName::from_static(name), value.clone());
        }
    }
    let client = client_addr(PEER, &headers, &trusted);
    check_client(client, &headers);
    if client == PEER {
        "peer"
    } else {
        "forwarded"
    }
}

/// The client found for a connection from [`PEER`] is the peer or a hop named in
/// `headers`.
fn check_client(client: SocketAddr, headers: &HeaderMap) {
    if client == PEER {
        return;
    }
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("unknown"))
            .collect::<Vec<_>>()
    };
    let mut hops = x_forwarded_for(values("x-forwarded-for"));
    hops.extend(forwarded_for(values("forwarded")));
    let named = hops
        .into_iter()
        .flatten()
        .any(|hop| SocketAddr::new(hop.ip().to_canonical(), hop.port()) == client);
    assert!(named, "client {client} is neither the peer nor a hop");
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().filter_map(|n| n.parse().ok()).collect()
}
