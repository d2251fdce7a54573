//! Process signals, handled the same way by both programs.
//!
//! | signal  | effect |
//! |---------|--------|
//! | SIGTERM | graceful stop: the shutdown token is cancelled (Bye to every peer, then exit 0) |
//! | SIGINT  | the same (Ctrl-C) |
//! | SIGHUP  | with a reload channel ([`on_signals`], the manager): logs [`SIGHUP_RELOADING`] and asks for a reload; without one ([`cancel_on_signals`], the agent): logs [`SIGHUP_IGNORED`] and keeps running |
//!
//! SIGHUP means "reload" to operators (nginx, NATS, `systemctl reload`); it must
//! never stop the program nor kill it without Bye (the default action of an
//! unhandled SIGHUP). Reloads asked for while one is pending are merged into it.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The line logged (at WARN) for each SIGHUP of a program that cannot reload.
pub const SIGHUP_IGNORED: &str = "SIGHUP: reload is not supported by this program; ignoring";

/// The line logged (at INFO) for each SIGHUP of a program that reloads.
pub const SIGHUP_RELOADING: &str = "SIGHUP: reloading";

/// [`on_signals`] without reload: SIGHUP is logged and ignored.
pub fn cancel_on_signals(shutdown: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    on_signals(shutdown, None)
}

/// Installs the handlers for SIGTERM, SIGINT and SIGHUP now, then watches them on a
/// task: the first SIGTERM or SIGINT cancels `shutdown` (and ends the task); every
/// SIGHUP before that sends `()` on `reload` (dropped when a reload is already
/// queued: that one will read the newest files), or, with no `reload`, is logged
/// and ignored. Call it before anything starts serving, so no signal finds the
/// default action in place.
///
/// Must be called within a Tokio runtime. Fails when a handler cannot be installed.
pub fn on_signals(
    shutdown: CancellationToken,
    reload: Option<mpsc::Sender<()>>,
) -> std::io::Result<JoinHandle<()>> {
    let listen = |kind: SignalKind, name: &str| -> std::io::Result<Signal> {
        signal(kind)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot handle {name}: {e}")))
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
    Ok(tokio::spawn(async move {
        let name = loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = hup.recv() => match &reload {
                    Some(tx) => {
                        tracing::info!("{SIGHUP_RELOADING}");
                        // Full: a reload is queued and will see the newest files.
                        let _ = tx.try_send(());
                    }
                    None => tracing::warn!("{SIGHUP_IGNORED}"),
                },
            }
        };
        tracing::info!(signal = name, "signal received, shutting down");
        // Before the cancel: a quick stop can end the process before a task that
        // waits for the cancel runs.
        crate::service::notify::stopping();
        shutdown.cancel();
    }))
}
