//! The writer task: the only code that writes to a session's transport.
//!
//! It waits for the first queued message, then drains whatever else is queued (control
//! messages first) up to a batch limit, `feed`ing each to the transport, and flushes
//! once. A burst of N messages costs one flush.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Sink, SinkExt};
use tokio::sync::mpsc;

use crate::error::TransportError;
use crate::metrics::Metrics;
use crate::transport::TransportKind;

/// Most messages written between two flushes.
const MAX_BATCH: usize = 256;

/// What the driver sends to the writer.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// Write this payload (Pong, refusal, Bye).
    Frame(Bytes),
    /// Flush what is queued, close the transport, stop.
    Close,
}

pub(crate) async fn run<W>(
    sink: W,
    ctrl_rx: mpsc::Receiver<WriterCmd>,
    data_rx: mpsc::Receiver<Bytes>,
    metrics: Option<Arc<Metrics>>,
    kind: TransportKind,
) -> Result<(), TransportError>
where
    W: Sink<Bytes, Error = TransportError> + Unpin,
{
    match metrics {
        None => write_loop(sink, ctrl_rx, data_rx).await,
        Some(m) => {
            write_loop(
                Counted {
                    sink,
                    metrics: m,
                    kind,
                },
                ctrl_rx,
                data_rx,
            )
            .await
        }
    }
}

/// A sink that counts what passes through it.
struct Counted<W> {
    sink: W,
    metrics: Arc<Metrics>,
    kind: TransportKind,
}

impl<W> Sink<Bytes> for Counted<W>
where
    W: Sink<Bytes, Error = TransportError> + Unpin,
{
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.sink).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        let t = self.metrics.traffic(self.kind);
        t.bytes_out.fetch_add(item.len() as u64, Ordering::Relaxed);
        t.messages_out.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.sink).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.sink).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.sink).poll_close(cx)
    }
}

async fn write_loop<W>(
    mut sink: W,
    mut ctrl_rx: mpsc::Receiver<WriterCmd>,
    mut data_rx: mpsc::Receiver<Bytes>,
) -> Result<(), TransportError>
where
    W: Sink<Bytes, Error = TransportError> + Unpin,
{
    let mut data_open = true;
    loop {
        let first = tokio::select! {
            biased;
            cmd = ctrl_rx.recv() => match cmd {
                Some(WriterCmd::Frame(b)) => b,
                Some(WriterCmd::Close) | None => return sink.close().await,
            },
            data = data_rx.recv(), if data_open => match data {
                Some(b) => b,
                None => {
                    data_open = false;
                    continue;
                }
            },
        };
        sink.feed(first).await?;
        let mut closing = false;
        for _ in 1..MAX_BATCH {
            match ctrl_rx.try_recv() {
                Ok(WriterCmd::Frame(b)) => sink.feed(b).await?,
                Ok(WriterCmd::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => match data_rx.try_recv() {
                    Ok(b) => sink.feed(b).await?,
                    Err(_) => break,
                },
            }
        }
        sink.flush().await?;
        if closing {
            return sink.close().await;
        }
    }
}
