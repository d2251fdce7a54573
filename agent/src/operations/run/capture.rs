//! Bounded capture of one output stream: its first bytes (head), its last bytes (tail,
//! a ring) and a count of those in between, never more than its cap in memory (plus one
//! read buffer while reading).
//!
//! When bytes were left out, the text reads: the head, a line
//! `... N bytes omitted ...`, the tail. The cut falls on a line end when one is near
//! (within [`LINE_SEARCH`] bytes) and never inside a character; N counts every byte
//! not shown.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::encoding::Encoding;

/// Bytes read from a pipe at a time.
const READ_BUFFER: usize = 64 * 1024;

/// How far from a cut a line end is looked for, to cut there instead.
const LINE_SEARCH: usize = 1024;

/// One stream's bounded capture.
#[derive(Debug)]
pub(super) struct Capture {
    head: Vec<u8>,
    head_cap: usize,
    /// A ring once full: its oldest byte at `tail_start`.
    tail: Vec<u8>,
    tail_start: usize,
    tail_cap: usize,
    /// Every byte the stream produced.
    total: u64,
}

impl Capture {
    /// A capture holding at most `cap` bytes: half head, half tail.
    pub(super) fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Self {
            head: Vec::new(),
            head_cap,
            tail: Vec::new(),
            tail_start: 0,
            tail_cap: cap - head_cap,
            total: 0,
        }
    }

    /// Takes the next bytes of the stream.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let to_head = (self.head_cap - self.head.len()).min(bytes.len());
        let (first, rest) = bytes.split_at(to_head);
        if !first.is_empty() {
            let more = growth(
                self.head.capacity(),
                self.head.len(),
                first.len(),
                self.head_cap,
            );
            self.head.reserve_exact(more);
            self.head.extend_from_slice(first);
        }
        if rest.is_empty() {
            return;
        }
        let mut keep = &rest[rest.len().saturating_sub(self.tail_cap)..];
        if self.tail.len() < self.tail_cap {
            let fill = (self.tail_cap - self.tail.len()).min(keep.len());
            let more = growth(self.tail.capacity(), self.tail.len(), fill, self.tail_cap);
            self.tail.reserve_exact(more);
            self.tail.extend_from_slice(&keep[..fill]);
            keep = &keep[fill..];
        }
        // Full: overwrite the oldest bytes, wrapping around.
        while !keep.is_empty() {
            let n = (self.tail_cap - self.tail_start).min(keep.len());
            self.tail[self.tail_start..self.tail_start + n].copy_from_slice(&keep[..n]);
            self.tail_start = (self.tail_start + n) % self.tail_cap;
            keep = &keep[n..];
        }
    }

    /// Reads `pipe` (when there is one) to its end.
    pub(super) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        pipe: Option<R>,
    ) -> std::io::Result<()> {
        let Some(mut pipe) = pipe else {
            return Ok(());
        };
        let mut buf = vec![0; READ_BUFFER];
        loop {
            let n = pipe.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            self.push(&buf[..n]);
        }
    }

    /// Bytes of memory the capture holds (its buffers' capacity).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.head.capacity() + self.tail.capacity()
    }

    /// Bytes produced and not held.
    fn dropped(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The captured text, decoded, with the omission marked.
    pub(super) fn into_text(mut self, encoding: Encoding) -> String {
        self.tail.rotate_left(self.tail_start);
        if self.dropped() == 0 {
            self.head.append(&mut self.tail);
            return encoding.decode(&self.head);
        }
        let tail = &self.tail;
        let mut head_end = encoding.end_boundary(&self.head);
        let near_end = head_end.saturating_sub(LINE_SEARCH);
        if let Some(nl) = self.head[near_end..head_end]
            .iter()
            .rposition(|&b| b == b'\n')
        {
            head_end = near_end + nl + 1;
        }
        let mut tail_start = encoding.start_boundary(tail);
        let near_start = tail.len().min(tail_start + LINE_SEARCH);
        if let Some(nl) = tail[tail_start..near_start]
            .iter()
            .position(|&b| b == b'\n')
        {
            // Not the tail's very last byte: the tail keeps a line.
            if tail_start + nl + 1 < tail.len() {
                tail_start += nl + 1;
            }
        }
        let omitted = self.total - (head_end + tail.len() - tail_start) as u64;
        let mut text = encoding.decode(&self.head[..head_end]);
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("... {omitted} bytes omitted ...\n"));
        text.push_str(&encoding.decode(&tail[tail_start..]));
        text
    }
}

/// How much to reserve for `adding` more bytes: doubling as a `Vec` does, but never
/// past `cap`.
fn growth(capacity: usize, len: usize, adding: usize, cap: usize) -> usize {
    let need = len + adding;
    if need <= capacity {
        return 0;
    }
    need.max(capacity * 2).min(cap).max(need) - len
}
