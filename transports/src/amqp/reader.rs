//! The reading half of an AMQP session, and batched acknowledgements.
//!
//! [`AmqpReader`] is a [`Stream`] over the agent's inbox consumer (polled in place,
//! see the `inbox` module) or over a bounded channel the manager's demultiplexer
//! fills. It yields the session's failure, if any, before anything still buffered, and
//! ends (`None`) when the peer closed its end. Dropping it detaches the session from
//! whatever feeds it.
//!
//! [`AckBatch`] acknowledges deliveries with `multiple`: one `basic.ack` per burst
//! instead of one per message, while the prefetch window still bounds what the broker
//! pushes before we have handed it over.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use lapin::options::BasicAckOptions;
use lapin::Acker;
use redpepper_core::error::TransportError;
use tokio::sync::mpsc;

use super::budget::Meter;
use super::inbox::Inbox;
use super::state::SessionState;

/// Where a reader's payloads come from.
enum Source {
    /// Fed by the manager's demultiplexer.
    Channel(mpsc::Receiver<Bytes>),
    /// The agent's own inbox consumer, polled in place.
    Inbox(Box<Inbox>),
}

/// Reading half of an [`AmqpTransport`](super::AmqpTransport).
pub struct AmqpReader {
    source: Source,
    state: Arc<SessionState>,
    done: bool,
    meter: Option<Arc<Meter>>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
    _keep: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for AmqpReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpReader")
            .field("session", &self.state.session())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl AmqpReader {
    /// A reader of what `rx` delivers (manager side); `on_drop` runs when it is
    /// dropped.
    pub(crate) fn new(
        rx: mpsc::Receiver<Bytes>,
        state: Arc<SessionState>,
        on_drop: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        Self {
            source: Source::Channel(rx),
            state,
            done: false,
            meter: None,
            on_drop,
            _keep: None,
        }
    }

    /// A reader of the agent's inbox; `keep` is held as long as the reader lives
    /// (the broker connection).
    pub(crate) fn from_inbox(
        inbox: Inbox,
        state: Arc<SessionState>,
        keep: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        Self {
            source: Source::Inbox(Box::new(inbox)),
            state,
            done: false,
            meter: None,
            on_drop: None,
            _keep: Some(keep),
        }
    }

    /// Count what this reader takes against `meter` (manager side).
    pub(crate) fn with_meter(mut self, meter: Arc<Meter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The session left the accept backlog: its unread bytes stop counting against
    /// the budget of sessions not yet accepted.
    pub(crate) fn accepted(&self) {
        if let Some(m) = &self.meter {
            m.accepted();
        }
    }

    fn failed(&mut self) -> Poll<Option<Result<Bytes, TransportError>>> {
        self.done = true;
        Poll::Ready(self.state.take_error().map(Err))
    }
}

impl Stream for AmqpReader {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.state.is_failed() {
            return self.failed();
        }
        self.state.register(cx.waker());
        if self.state.is_failed() {
            return self.failed();
        }
        let next = match &mut self.source {
            Source::Channel(rx) => rx.poll_recv(cx),
            Source::Inbox(inbox) => inbox.poll_payload(cx),
        };
        match next {
            Poll::Ready(Some(bytes)) => {
                if let Some(m) = &self.meter {
                    m.read(bytes.len());
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(None) if self.state.is_failed() => self.failed(),
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for AmqpReader {
    fn drop(&mut self) {
        self.accepted();
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

/// Acknowledges a consumer's deliveries in bursts (`multiple`).
///
/// The acknowledgements themselves are sent by a task of their own, in order, so the
/// consumer loop never waits for lapin's I/O thread to write one.
#[derive(Debug)]
pub(crate) struct AckBatch {
    last: Option<Acker>,
    pending: usize,
    every: usize,
    tx: mpsc::UnboundedSender<Acker>,
}

impl AckBatch {
    /// Acknowledge at least every `every` deliveries; `what` names the queue in logs.
    pub(crate) fn new(every: usize, what: String) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Acker>();
        tokio::spawn(async move {
            while let Some(acker) = rx.recv().await {
                if let Err(e) = acker.ack(BasicAckOptions { multiple: true }).await {
                    // The consumer sees the same failure and reports it.
                    tracing::debug!(queue = %what, error = %e, "acknowledgement failed");
                    return;
                }
            }
        });
        Self {
            last: None,
            pending: 0,
            every: every.max(1),
            tx,
        }
    }

    /// A delivery was handed over; returns whether it is time to [`flush`](Self::flush).
    pub(crate) fn note(&mut self, acker: Acker) -> bool {
        self.last = Some(acker);
        self.pending += 1;
        self.pending >= self.every
    }

    /// Whether deliveries wait for their acknowledgement.
    pub(crate) fn pending(&self) -> bool {
        self.pending > 0
    }

    /// Acknowledge everything noted so far.
    pub(crate) fn flush(&mut self) {
        self.pending = 0;
        if let Some(acker) = self.last.take() {
            let _ = self.tx.send(acker);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn yields_data_then_end() {
        let (tx, rx) = mpsc::channel(4);
        let state = Arc::new(SessionState::new("s1".into()));
        let mut reader = AmqpReader::new(rx, state, None);
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        drop(tx);
        assert_eq!(reader.next().await.unwrap().unwrap(), "a");
        assert!(reader.next().await.is_none());
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn reading_and_dropping_give_the_bytes_back() {
        use super::super::budget::Pool;
        let pool = Arc::new(Pool::new(100));
        let meter = Arc::new(Meter::new(100, Arc::clone(&pool)));
        let (tx, rx) = mpsc::channel(4);
        let state = Arc::new(SessionState::new("s1".into()));
        let mut reader = AmqpReader::new(rx, state, None).with_meter(Arc::clone(&meter));
        for body in [&b"abc"[..], b"defg"] {
            meter.take_in(body.len()).unwrap();
            tx.send(Bytes::copy_from_slice(body)).await.unwrap();
        }
        assert_eq!((meter.unread(), pool.held()), (7, 7));
        assert_eq!(reader.next().await.unwrap().unwrap(), "abc");
        assert_eq!((meter.unread(), pool.held()), (4, 4));
        drop(reader);
        assert_eq!(pool.held(), 0, "a dropped reader still holds pool bytes");
    }

    #[tokio::test]
    async fn a_failure_overtakes_buffered_data_and_wakes_the_reader() {
        let (tx, rx) = mpsc::channel(4);
        let state = Arc::new(SessionState::new("s1".into()));
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let mut reader = AmqpReader::new(
            rx,
            Arc::clone(&state),
            Some(Box::new(move || {
                flag.store(true, std::sync::atomic::Ordering::SeqCst)
            })),
        );
        let waiting = tokio::spawn(async move {
            let first = reader.next().await;
            (first, reader)
        });
        tokio::task::yield_now().await;
        state.fail(TransportError::Other("broker connection lost".into()));
        let (first, mut reader) = waiting.await.unwrap();
        assert_eq!(
            first.unwrap().unwrap_err().to_string(),
            "broker connection lost"
        );
        tx.send(Bytes::from_static(b"late")).await.unwrap();
        assert!(reader.next().await.is_none());
        drop(reader);
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }
}
