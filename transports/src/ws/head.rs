//! Collecting an HTTP request head as it arrives, parsing it only when it can have
//! ended.
//!
//! Parsing the whole buffer after every read would cost O(n²) for a client that sends
//! its head a byte per packet. [`HeadBuf`] parses only when the bytes just read
//! complete an empty line (`\r\n\r\n`, or the bare `\n\n` httparse also accepts),
//! searching from just before them, plus once on the first read and once when the
//! request line is complete, so a client that does not speak HTTP at all is answered
//! at once. Empty lines before the request line (which httparse skips) are not taken
//! for the end of the head.

use super::accept::{MAX_HEADERS, MAX_REQUEST_HEAD};

/// What the bytes collected so far are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// A complete head of this many bytes (what follows belongs to the WebSocket).
    Complete(usize),
    /// Not complete yet: read more.
    Partial,
    /// Over [`MAX_REQUEST_HEAD`] bytes without an end, or over [`MAX_HEADERS`] headers.
    TooLarge,
    /// Not an HTTP request.
    Bad(httparse::Error),
}

/// The bytes of a request head, collected read by read.
#[derive(Debug, Default)]
pub(crate) struct HeadBuf {
    buf: Vec<u8>,
    /// Leading `\r` / `\n` bytes: empty lines before the request line.
    leading: usize,
    /// Whether a `\n` ended the request line.
    line_done: bool,
    /// Times the buffer was parsed.
    parses: usize,
}

impl HeadBuf {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(1024),
            ..Self::default()
        }
    }

    /// Everything collected (the head, then whatever the client sent after it).
    #[cfg(test)]
    fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Everything collected, consumed.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Add the bytes of one read and say where the head stands.
    pub(crate) fn push(&mut self, data: &[u8]) -> Head {
        let old = self.buf.len();
        self.buf.extend_from_slice(data);
        if self.leading == old {
            self.leading += data
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        }
        let body = &self.buf[old.max(self.leading)..];
        let line_ends = !self.line_done && body.contains(&b'\n');
        self.line_done |= line_ends;
        // An empty line may start up to 3 bytes before this read (`\r\n\r` + `\n`).
        let from = old.saturating_sub(3).max(self.leading);
        if old == 0 || line_ends || ends_head(&self.buf[from..]) {
            match self.parse() {
                Ok(httparse::Status::Complete(len)) => return Head::Complete(len),
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => return Head::TooLarge,
                Err(e) => return Head::Bad(e),
            }
        }
        if self.buf.len() >= MAX_REQUEST_HEAD {
            Head::TooLarge
        } else {
            Head::Partial
        }
    }

    fn parse(&mut self) -> httparse::Result<usize> {
        self.parses += 1;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        httparse::Request::new(&mut headers).parse(&self.buf)
    }
}

/// Whether `bytes` hold an empty line: `\n\n` or `\n\r\n`.
fn ends_head(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == b"\n\n" || (w == b"\n\r" && bytes.get(i + 2) == Some(&b'\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Push `head` a byte at a time, until the head is no longer partial (as
    /// `read_head` stops).
    fn byte_by_byte(head: &[u8]) -> (HeadBuf, Vec<Head>) {
        let mut buf = HeadBuf::new();
        let mut states = Vec::new();
        for byte in head.chunks(1) {
            let state = buf.push(byte);
            let done = state != Head::Partial;
            states.push(state);
            if done {
                break;
            }
        }
        (buf, states)
    }

    fn big_head() -> String {
        let mut head = String::from("GET /redpepper HTTP/1.1\r\nHost: m\r\n");
        for i in 0..40 {
            head.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(300)));
        }
        head.push_str("\r\n");
        head
    }

    #[test]
    fn a_head_sent_a_byte_at_a_time_is_parsed_a_few_times_only() {
        let head = big_head();
        assert!(head.len() > 12 * 1024);
        let (buf, states) = byte_by_byte(head.as_bytes());
        assert_eq!(states.last(), Some(&Head::Complete(head.len())));
        assert!(states[..states.len() - 1]
            .iter()
            .all(|s| *s == Head::Partial));
        // First byte, end of the request line, the final empty line.
        assert!(buf.parses <= 3, "parsed {} times", buf.parses);
    }

    #[test]
    fn empty_lines_before_the_request_line_do_not_trigger_parsing() {
        let mut head = "\r\n".repeat(2000);
        head.push_str("GET / HTTP/1.1\nHost: m\n\nFRAME");
        let (buf, states) = byte_by_byte(head.as_bytes());
        let complete = head.len() - "FRAME".len();
        assert_eq!(states.len(), complete);
        assert_eq!(states.last(), Some(&Head::Complete(complete)));
        assert!(buf.parses <= 3, "parsed {} times", buf.parses);
    }

    #[test]
    fn whole_heads_and_what_follows() {
        let mut buf = HeadBuf::new();
        let head = b"GET / HTTP/1.1\r\nHost: m\r\n\r\n";
        let mut data = head.to_vec();
        data.extend_from_slice(b"\x82\x00");
        assert_eq!(buf.push(&data), Head::Complete(head.len()));
        assert_eq!(buf.bytes(), &data[..]);
        // Split inside the final empty line.
        let mut buf = HeadBuf::new();
        assert_eq!(buf.push(b"GET / HTTP/1.1\r\nHost: m\r\n\r"), Head::Partial);
        assert_eq!(buf.push(b"\n"), Head::Complete(head.len()));
    }

    #[test]
    fn limits_and_garbage() {
        let mut buf = HeadBuf::new();
        assert_eq!(buf.push(b"GET / HTTP/1.1\r\n"), Head::Partial);
        let mut state = Head::Partial;
        while state == Head::Partial {
            state = buf.push(b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        }
        assert_eq!(state, Head::TooLarge);
        assert!(buf.bytes().len() >= MAX_REQUEST_HEAD);

        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(HeadBuf::new().push(many.as_bytes()), Head::TooLarge);

        // A TLS ClientHello on a plain port: refused on the first read.
        assert!(matches!(
            HeadBuf::new().push(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Head::Bad(_)
        ));
    }
}
