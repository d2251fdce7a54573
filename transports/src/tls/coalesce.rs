//! A write buffer under the TLS stream that costs an idle connection almost nothing.
//!
//! It does what [`tokio::io::BufWriter`] does for us (ciphertext written by rustls
//! collects in memory and reaches the socket on `flush`, or when [`WRITE_BUFFER`] bytes
//! are waiting, so a batch of frames costs one write system call) but its buffer starts
//! empty and grows only as far as the traffic needs. A `BufWriter` holds its whole
//! capacity from the first byte on: 32 KiB per connection, most of it never used by
//! the thousands of idle agents a manager keeps, and part of it resident.
//!
//! Reads pass straight through.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes collected before they are written without waiting for a flush: two full
/// TLS records.
pub const WRITE_BUFFER: usize = 32 * 1024;

/// A buffer grown beyond this is dropped once written instead of kept (one allocation
/// per large batch, against 32 KiB held by every connection that ever sent one).
const KEEP_WRITE_BUFFER: usize = 8 * 1024;

/// A growing write buffer over `S`; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written to `inner`.
    written: usize,
}

impl<S> Coalesce<S> {
    /// Wrap `inner`; nothing is allocated until the first write.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
        }
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Write everything collected to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if self.buf.capacity() > KEEP_WRITE_BUFFER {
            // A batch this large is rare; an idle connection should not keep its buffer.
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > WRITE_BUFFER {
            ready!(this.poll_drain(cx))?;
        }
        if data.len() >= WRITE_BUFFER {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if this.buf.len() + total > WRITE_BUFFER {
            ready!(this.poll_drain(cx))?;
        }
        if total >= WRITE_BUFFER {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        this.buf.reserve(total);
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn collects_until_flush_then_writes_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(a);
        assert_eq!(
            w.buf.capacity(),
            0,
            "nothing allocated before the first write"
        );
        w.write_all(b"hello ").await.unwrap();
        w.write_all(b"world").await.unwrap();
        assert_eq!(w.pending(), 11);
        w.flush().await.unwrap();
        assert_eq!(w.pending(), 0);
        let mut got = [0u8; 11];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test]
    async fn large_writes_go_through_and_keep_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(a);
        let big = vec![7u8; WRITE_BUFFER + 5];
        w.write_all(b"head").await.unwrap();
        w.write_all(&big).await.unwrap();
        w.write_all(b"tail").await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 8 + big.len());
        assert_eq!(&got[..4], b"head");
        assert!(got[4..4 + big.len()].iter().all(|&x| x == 7));
        assert_eq!(&got[4 + big.len()..], b"tail");
    }

    #[tokio::test]
    async fn a_full_buffer_is_written_before_more_is_taken() {
        // The peer reads nothing: once WRITE_BUFFER bytes wait, a write must wait too.
        let (a, _b) = tokio::io::duplex(16);
        let mut w = Coalesce::new(a);
        w.write_all(&vec![1u8; WRITE_BUFFER - 1]).await.unwrap();
        let more = futures::FutureExt::now_or_never(w.write_all(&[2u8; 10]));
        assert!(more.is_none(), "the write waits for the socket");
    }
}
