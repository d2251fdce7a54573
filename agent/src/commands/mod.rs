//! What the agent keeps about commands: the table of running commands (each with a
//! [`CancellationToken`], for the `cancel` request and for refusing a duplicate id),
//! the [`Outbox`] of results not yet confirmed by the manager, and the output limit
//! of operations.
//!
//! An [`Agent`](crate::Agent) attaches every new session ([`Commands::attach`]), which
//! makes results survive reconnects. A [`Commands`] nobody attaches (a router from
//! [`operations::router`](crate::operations::router) used on its own, possibly shared
//! by several agents' sessions) delivers each result once on the session its command
//! came in on, as before.
//!
//! Files: [`outbox`] (delivery with receipt barriers), [`fit`] (notifications sized to
//! `max_message_size`).

pub mod fit;
pub mod outbox;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redpepper_config::AgentCommandsConfig;
use redpepper_core::Session;
use tokio_util::sync::CancellationToken;

pub use outbox::{Outbox, Outcome};

/// The agent's commands. See the module documentation.
#[derive(Debug)]
pub struct Commands {
    running: Mutex<HashMap<String, CancellationToken>>,
    outbox: Arc<Outbox>,
    attached: AtomicBool,
    output_limit: usize,
}

impl Commands {
    /// Commands bounded as `config` says.
    pub fn new(config: &AgentCommandsConfig) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::default(),
            outbox: Outbox::new(config.outbox, config.outbox_bytes),
            attached: AtomicBool::new(false),
            output_limit: config.output_limit,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Results and progress go to `session` from now on (the agent's newest session);
    /// results still waiting are sent on it.
    pub fn attach(&self, session: &Session) {
        self.attached.store(true, Ordering::Relaxed);
        self.outbox.attach(session);
    }

    /// The outbox of results.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// `commands.output_limit`: the most bytes of output an operation keeps. The
    /// output cap of `command.Run`.
    pub fn output_limit(&self) -> usize {
        self.output_limit
    }

    /// Register running command `id`: its token, and a guard that removes it when
    /// dropped. `None` when a command with this id is running already.
    pub(crate) fn start(self: &Arc<Self>, id: &str) -> Option<(CancellationToken, Running)> {
        let mut table = self.table();
        if table.contains_key(id) {
            return None;
        }
        let token = CancellationToken::new();
        table.insert(id.to_owned(), token.clone());
        Some((
            token,
            Running {
                commands: self.clone(),
                id: id.to_owned(),
            },
        ))
    }

    /// Tell running command `id` to stop; false when no such command runs.
    pub fn cancel(&self, id: &str) -> bool {
        match self.table().get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Commands running now.
    pub fn running(&self) -> usize {
        self.table().len()
    }

    /// The session progress goes to: the attached one, else the command's own.
    pub(crate) fn session_for(&self, origin: &Session) -> Option<Session> {
        if self.attached.load(Ordering::Relaxed) {
            self.outbox.current()
        } else {
            (!origin.is_closed()).then(|| origin.clone())
        }
    }

    /// A command finished: keep its result until the manager has it (attached), or
    /// send it on its own session once (not attached).
    pub(crate) async fn finished(&self, origin: &Session, outcome: Outcome) {
        if self.attached.load(Ordering::Relaxed) {
            self.outbox.push(outcome);
        } else if let Err(e) = outbox::send_result(origin, &outcome).await {
            tracing::warn!(command = %outcome.id, error = %e, "command result not delivered");
        }
    }
}

/// A running command's place in the table, given up when dropped.
#[derive(Debug)]
pub(crate) struct Running {
    commands: Arc<Commands>,
    id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.commands.table().remove(&self.id);
    }
}
