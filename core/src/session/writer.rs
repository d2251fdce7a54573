//! The writer task: the only code that writes to a session's transport.
//!
//! It waits for the first queued message, then drains whatever else is queued (control
//! messages first) up to a batch limit, `feed`ing each to the transport, and flushes
//! once. A burst of N messages costs one flush.

use bytes::Bytes;
use futures::{Sink, SinkExt};
use tokio::sync::mpsc;

use crate::error::TransportError;

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
