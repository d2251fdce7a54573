//! The answer of an HTTP CONNECT proxy.

use redpepper_core::error::TransportError;

use crate::proxy::{http_connect, ProxyUrl, MAX_RESPONSE_HEAD};

/// The proxy's password: it must never appear in an error.
const SECRET: &str = "s3cr3t-pw";

/// Run [`http_connect`] against a "proxy" that answers `data[1..]` and closes (bit 0
/// of the first byte: with credentials in the proxy URL).
///
/// Invariants: at most [`MAX_RESPONSE_HEAD`] bytes are read, and nothing after the
/// blank line that ends the answer head; success only on a `2xx` status line; errors
/// name the proxy without its credentials and are bounded.
pub fn proxy_answer(data: &[u8]) -> &'static str {
    let Some((&opts, answer)) = data.split_first() else {
        return "empty";
    };
    let url = if opts & 1 == 1 {
        format!("http://agent:{SECRET}@proxy.invalid:3128")
    } else {
        "http://proxy.invalid:3128".to_owned()
    };
    let Ok(proxy) = ProxyUrl::parse(&url) else {
        panic!("the fuzzed proxy URL {url} does not parse");
    };
    // `&[u8]` reads and `sink()` writes never wait: the future completes when polled.
    let mut io = tokio::io::join(answer, tokio::io::sink());
    let result =
        futures::executor::block_on(http_connect(&mut io, &proxy, "manager.invalid", 7051));
    let (rest, _) = io.into_inner();
    let read = &answer[..answer.len() - rest.len()];
    assert!(read.len() <= MAX_RESPONSE_HEAD, "read {} bytes", read.len());
    let ends = |r: &[u8]| r.ends_with(b"\r\n\r\n") || r.ends_with(b"\n\n");
    // Nothing after the first blank line is read.
    let first_end = (1..=read.len()).find(|&n| ends(&read[..n]));
    assert!(
        first_end.is_none_or(|n| n == read.len()),
        "read past the end of the answer head"
    );
    match result {
        Ok(()) => {
            assert!(ends(read), "a tunnel without a complete answer head");
            let text = String::from_utf8_lossy(read);
            let line = text.lines().next().unwrap_or_default().trim_end();
            let mut words = line.split(' ');
            let version = words.next().unwrap_or_default();
            let status = words.next().unwrap_or_default();
            assert!(
                version.starts_with("HTTP/") && status.len() == 3 && status.starts_with('2'),
                "a tunnel on status line {line:?}"
            );
            "tunnel"
        }
        Err(TransportError::Connect { target, reason }) => {
            assert!(!target.contains(SECRET) && !reason.contains(SECRET));
            super::bounded_text("CONNECT failure", &reason);
            if ends(read) {
                "refused"
            } else {
                "incomplete"
            }
        }
        Err(other) => panic!("CONNECT failed with an unexpected error: {other}"),
    }
}
