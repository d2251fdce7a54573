//! The outbox: every command's final result is kept until the manager has read it,
//! and delivered on whatever session is current, including after a reconnect.
//!
//! RedPepper has no acknowledgement. After writing results on a session, the delivery
//! task asks that session for a receipt barrier ([`Session::barrier`]): a Ping queued
//! behind the results, whose Pong proves the manager read them. Results a barrier
//! confirmed are dropped; the others are sent again on the next session (a manager
//! that got one twice ignores the second: RedPepper 0.3.4 drops results for ids it
//! does not follow, ours too).
//!
//! Bounded: at most `commands.outbox` results and `commands.outbox_bytes` bytes; when
//! a new result does not fit, the oldest are dropped with a warning naming them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

use redpepper_core::{CallError, Session, Value};
use tokio::sync::{watch, Notify};

use super::fit::{cut_middle, fit};

/// Bytes counted for a result besides its id and output.
const ENTRY_OVERHEAD: usize = 64;

/// A command's final result, as `command_result` carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The command id.
    pub id: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Whether it changed something.
    pub changed: bool,
    /// Its output.
    pub output: String,
}

impl Outcome {
    fn size(&self) -> usize {
        self.id.len() + self.output.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    outcome: Arc<Outcome>,
}

#[derive(Debug, Default)]
struct State {
    entries: VecDeque<Entry>,
    bytes: usize,
    next_seq: u64,
    /// The delivery task runs.
    delivering: bool,
}

/// Results waiting until the manager has them. See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    max_results: usize,
    max_bytes: usize,
    wake: Arc<Notify>,
    session: watch::Sender<Option<Session>>,
    /// How many results wait (for [`Outbox::wait_pending`]).
    count: watch::Sender<usize>,
}

impl Outbox {
    /// At most `max_results` results and `max_bytes` bytes of them.
    pub fn new(max_results: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            max_results: max_results.max(1),
            max_bytes: max_bytes.max(ENTRY_OVERHEAD + 1024),
            wake: Arc::new(Notify::new()),
            session: watch::Sender::new(None),
            count: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deliver on `session` from now on (the agent's newest session).
    pub fn attach(self: &Arc<Self>, session: &Session) {
        self.session.send_replace(Some(session.clone()));
        self.ensure_delivering();
    }

    /// The session results and progress go to, while it is open.
    pub fn current(&self) -> Option<Session> {
        self.session.borrow().clone().filter(|s| !s.is_closed())
    }

    /// Keep `outcome` until the manager has it.
    pub fn push(self: &Arc<Self>, mut outcome: Outcome) {
        // One result larger than the whole outbox keeps what fits of its output.
        let room = self.max_bytes - ENTRY_OVERHEAD - outcome.id.len().min(self.max_bytes / 2);
        if outcome.size() > self.max_bytes {
            outcome.output = cut_middle(&outcome.output, room / 2).into_owned();
        }
        let size = outcome.size();
        {
            let mut state = self.lock();
            while !state.entries.is_empty()
                && (state.entries.len() >= self.max_results || state.bytes + size > self.max_bytes)
            {
                if let Some(old) = state.entries.pop_front() {
                    state.bytes -= old.outcome.size();
                    tracing::warn!(
                        command = %old.outcome.id,
                        max_results = self.max_results,
                        max_bytes = self.max_bytes,
                        "outbox full (commands.outbox, commands.outbox_bytes): dropped the oldest undelivered command result"
                    );
                }
            }
            state.next_seq += 1;
            let seq = state.next_seq;
            state.bytes += size;
            state.entries.push_back(Entry {
                seq,
                outcome: Arc::new(outcome),
            });
            self.count.send_replace(state.entries.len());
        }
        self.wake.notify_one();
        self.ensure_delivering();
    }

    /// Results waiting, and their bytes.
    pub fn pending(&self) -> (usize, usize) {
        let state = self.lock();
        (state.entries.len(), state.bytes)
    }

    /// Results after `seq`, in order.
    fn after(&self, seq: u64) -> Vec<(u64, Arc<Outcome>)> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.seq > seq)
            .map(|e| (e.seq, e.outcome.clone()))
            .collect()
    }

    /// The manager has every result up to `seq`.
    fn confirm(&self, seq: u64) {
        let mut state = self.lock();
        while state.entries.front().is_some_and(|e| e.seq <= seq) {
            if let Some(e) = state.entries.pop_front() {
                state.bytes -= e.outcome.size();
            }
        }
        self.count.send_replace(state.entries.len());
    }

    /// Wait until exactly `n` results wait for delivery.
    pub async fn wait_pending(&self, n: usize) {
        let mut rx = self.count.subscribe();
        // The sender lives in `self`: `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|&c| c == n).await;
    }

    fn ensure_delivering(self: &Arc<Self>) {
        let mut state = self.lock();
        if state.delivering || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        state.delivering = true;
        tokio::spawn(deliver(
            Arc::downgrade(self),
            self.wake.clone(),
            self.session.subscribe(),
        ));
    }
}

/// The delivery task: per session, send what is waiting, then a barrier; confirmed
/// results are dropped. Ends with the outbox.
async fn deliver(
    outbox: Weak<Outbox>,
    wake: Arc<Notify>,
    mut sessions: watch::Receiver<Option<Session>>,
) {
    loop {
        let current = sessions.borrow_and_update().clone();
        let Some(session) = current.filter(|s| !s.is_closed()) else {
            if sessions.changed().await.is_err() {
                return;
            }
            continue;
        };
        // Results after this one have not been written on `session` yet.
        let mut sent = 0;
        loop {
            let woken = wake.notified();
            let batch = match outbox.upgrade() {
                Some(o) => o.after(sent),
                None => return,
            };
            if batch.is_empty() {
                tokio::select! {
                    () = woken => continue,
                    changed = sessions.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        break;
                    }
                    _ = session.closed() => break,
                }
            }
            let mut closed = false;
            for (seq, outcome) in batch {
                if send_result(&session, &outcome).await.is_err() {
                    closed = true;
                    break;
                }
                sent = seq;
            }
            if closed || session.barrier().await.is_err() {
                tracing::debug!("session ended before the manager confirmed the command results: they go out again on the next session");
                break;
            }
            match outbox.upgrade() {
                Some(o) => o.confirm(sent),
                None => return,
            }
        }
    }
}

/// Write one `command_result` on `session`, sized to it: `Err` only when the session
/// ended. A result that cannot be sent at all is replaced by a small failed one saying
/// why (and dropped if even that cannot be sent).
pub(crate) async fn send_result(session: &Session, o: &Outcome) -> Result<(), CallError> {
    let limit = session.max_message_size();
    let fields = |success: bool, changed: bool| {
        [
            ("id", Value::from(o.id.as_str())),
            ("success", Value::from(success)),
            ("changed", Value::from(changed)),
        ]
    };
    let data = fit(
        "command_result",
        &fields(o.success, o.changed),
        "output",
        &o.output,
        limit,
    )
    .or_else(|reason| {
        tracing::warn!(command = %o.id, %reason, "command result too large: sending a failed result instead");
        let text = format!("command result not deliverable: {reason}");
        fit("command_result", &fields(false, o.changed), "output", &text, limit)
    });
    match data {
        Ok(data) => match session.notify("command_result", data).await {
            Err(e @ CallError::SessionClosed(_)) => Err(e),
            Err(e) => {
                tracing::warn!(command = %o.id, error = %e, "command result not sendable, dropped");
                Ok(())
            }
            Ok(()) => Ok(()),
        },
        Err(reason) => {
            tracing::warn!(command = %o.id, %reason, "command result not sendable, dropped");
            Ok(())
        }
    }
}

/// Send one `command_progress` on the current session, sized to it; best effort.
pub(crate) async fn send_progress(
    session: Option<Session>,
    id: &str,
    current: usize,
    total: usize,
    message: &str,
) {
    let Some(session) = session else {
        tracing::debug!(command = %id, "no session: command progress not sent");
        return;
    };
    let fields = [
        ("command_id", Value::from(id)),
        ("current", Value::from(current)),
        ("total", Value::from(total)),
    ];
    let data = match fit(
        "command_progress",
        &fields,
        "message",
        message,
        session.max_message_size(),
    ) {
        Ok(data) => data,
        Err(reason) => {
            tracing::debug!(command = %id, %reason, "command progress not sendable");
            return;
        }
    };
    if let Err(e) = session.notify("command_progress", data).await {
        tracing::debug!(command = %id, error = %e, "command progress not delivered");
    }
}
