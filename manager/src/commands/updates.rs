//! One run's updates, bounded: a few progress updates queued (when the reader lags,
//! the oldest queued progress goes, so it sees the latest), and the final update
//! (result or loss) in a slot of its own, never dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::CommandUpdate;

/// Progress updates kept for a reader that lags.
const PROGRESS_QUEUE: usize = 16;

#[derive(Debug, Default)]
struct State {
    progress: VecDeque<CommandUpdate>,
    last: Option<CommandUpdate>,
    /// The final update was taken, or the sender is gone: nothing more comes.
    ended: bool,
    sender_gone: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The tracker's end.
#[derive(Debug)]
pub(crate) struct UpdateTx(Arc<Shared>);

/// The run's end.
#[derive(Debug)]
pub(crate) struct UpdateRx(Arc<Shared>);

pub(crate) fn channel() -> (UpdateTx, UpdateRx) {
    let shared = Arc::new(Shared::default());
    (UpdateTx(shared.clone()), UpdateRx(shared))
}

impl UpdateTx {
    /// Queue `update`: progress coalesced when the reader lags; a final update (result
    /// or loss) is always kept, and only the first counts.
    pub(crate) fn send(&self, update: CommandUpdate) {
        {
            let mut state = self.0.lock();
            match update {
                CommandUpdate::Progress { .. } => {
                    if state.last.is_some() {
                        return;
                    }
                    if state.progress.len() >= PROGRESS_QUEUE {
                        state.progress.pop_front();
                    }
                    state.progress.push_back(update);
                }
                CommandUpdate::Result(_) | CommandUpdate::Lost(_) => {
                    if state.last.is_none() {
                        state.last = Some(update);
                    }
                }
            }
        }
        self.0.notify.notify_one();
    }
}

impl Drop for UpdateTx {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.notify.notify_one();
    }
}

impl UpdateRx {
    /// The next update; `None` after the final one, or when the sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<CommandUpdate> {
        loop {
            let notified = self.0.notify.notified();
            {
                let mut state = self.0.lock();
                if let Some(p) = state.progress.pop_front() {
                    return Some(p);
                }
                if state.ended {
                    return None;
                }
                if let Some(last) = state.last.take() {
                    state.ended = true;
                    return Some(last);
                }
                if state.sender_gone {
                    return None;
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(n: i64) -> CommandUpdate {
        CommandUpdate::Progress {
            current: n,
            total: 1000,
            message: String::new(),
        }
    }

    #[tokio::test]
    async fn a_lagging_reader_sees_the_latest_progress_and_always_the_result() {
        let (tx, mut rx) = channel();
        for n in 0..1000 {
            tx.send(progress(n));
        }
        tx.send(CommandUpdate::Lost("first final wins".into()));
        tx.send(CommandUpdate::Lost("ignored".into()));
        tx.send(progress(5000));
        drop(tx);
        let mut seen = Vec::new();
        while let Some(u) = rx.recv().await {
            seen.push(u);
        }
        assert_eq!(seen.len(), PROGRESS_QUEUE + 1);
        assert_eq!(seen[PROGRESS_QUEUE - 1], progress(999));
        assert_eq!(
            seen[PROGRESS_QUEUE],
            CommandUpdate::Lost("first final wins".into())
        );
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_reader_waits_for_updates_and_ends_with_the_sender() {
        let (tx, mut rx) = channel();
        let reader = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second)
        });
        tokio::task::yield_now().await;
        tx.send(progress(1));
        drop(tx);
        let (first, second) = reader.await.unwrap_or((None, Some(progress(0))));
        assert_eq!(first, Some(progress(1)));
        assert_eq!(second, None);
    }
}
