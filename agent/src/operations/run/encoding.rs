//! The text encodings `encoding` may name: output is decoded with it, `stdin` encoded.

/// `utf-8` (default), `ascii` and `latin-1` (`iso-8859-1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Encoding {
    Utf8,
    Ascii,
    Latin1,
}

impl Encoding {
    pub(super) fn parse(name: &str) -> Result<Self, String> {
        let norm = name.to_ascii_lowercase().replace(['-', '_'], "");
        match norm.as_str() {
            "utf8" => Ok(Self::Utf8),
            "ascii" | "usascii" => Ok(Self::Ascii),
            "latin1" | "iso88591" | "l1" => Ok(Self::Latin1),
            _ => Err(format!(
                "command.Run: encoding {name:?} is not supported (utf-8, ascii, latin-1)"
            )),
        }
    }

    /// The text of `bytes`; undecodable bytes are replaced.
    pub(super) fn decode(self, bytes: &[u8]) -> String {
        match self {
            Self::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Self::Ascii => bytes
                .iter()
                .map(|&b| {
                    if b.is_ascii() {
                        char::from(b)
                    } else {
                        '\u{fffd}'
                    }
                })
                .collect(),
            Self::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        }
    }

    pub(super) fn encode(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Utf8 => Ok(text.as_bytes().to_vec()),
            Self::Ascii | Self::Latin1 => {
                let max = if self == Self::Ascii { 0x7f } else { 0xff };
                text.chars()
                    .map(|c| {
                        u8::try_from(u32::from(c))
                            .ok()
                            .filter(|&b| u32::from(b) <= max)
                            .ok_or_else(|| format!("command.Run: stdin holds {c:?}, not encodable"))
                    })
                    .collect()
            }
        }
    }

    /// Where the text of `bytes`, the start of a longer stream, may end: before a
    /// character cut in two. Every byte boundary is one in ASCII and Latin-1.
    pub(super) fn end_boundary(self, bytes: &[u8]) -> usize {
        if self != Self::Utf8 {
            return bytes.len();
        }
        let n = bytes.len();
        for back in 1..=n.min(4) {
            let b = bytes[n - back];
            if is_continuation(b) {
                continue;
            }
            let width = match b {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            return if width > back { n - back } else { n };
        }
        n
    }

    /// Where the text of `bytes`, the end of a longer stream, may start: after the
    /// rest of a character whose first bytes were cut off.
    pub(super) fn start_boundary(self, bytes: &[u8]) -> usize {
        if self != Self::Utf8 {
            return 0;
        }
        bytes
            .iter()
            .take(3)
            .take_while(|&&b| is_continuation(b))
            .count()
    }
}

fn is_continuation(b: u8) -> bool {
    (0x80..=0xbf).contains(&b)
}
