//! Process signals, handled the same way by both programs.
//!
//! | signal  | effect |
//! |---------|--------|
//! | SIGTERM | graceful stop: the shutdown token is cancelled (Bye to every peer, then exit 0) |
//! | SIGINT  | the same (Ctrl-C) |
//! | SIGHUP  | logs `SIGHUP: reload is not supported yet; ignoring` and keeps running |
//!
//! SIGHUP means "reload" to operators (nginx, NATS, `systemctl reload`), which is not
//! implemented yet; until it is, it must neither stop the program nor kill it without
//! Bye (the default action of an unhandled SIGHUP), so it is logged and ignored.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The line logged (at WARN) for each SIGHUP.
pub const SIGHUP_IGNORED: &str = "SIGHUP: reload is not supported yet; ignoring";

/// Installs the handlers for SIGTERM, SIGINT and SIGHUP now, then watches them on a
/// task: the first SIGTERM or SIGINT cancels `shutdown` (and ends the task); every
/// SIGHUP before that is logged and ignored (see the module docs). Call it before
/// anything starts serving, so no signal finds the default action in place.
///
/// Must be called within a Tokio runtime. Fails when a handler cannot be installed.
pub fn cancel_on_signals(shutdown: CancellationToken) -> std::io::Result<JoinHandle<()>> {
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
                _ = hup.recv() => tracing::warn!("{SIGHUP_IGNORED}"),
            }
        };
        tracing::info!(signal = name, "signal received, shutting down");
        shutdown.cancel();
    }))
}
