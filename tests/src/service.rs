//! [`Service`]: a system program (nginx, tinyproxy) run from a configuration file
//! the harness writes, ready once it logs a given line or listens on its port, and
//! restartable on the same port.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::error::HarnessError;
use crate::net::wait_for_listen;
use crate::process::{Group, Proc};

/// When a freshly started service counts as ready.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ready {
    /// It logged a line containing this text.
    Logs(&'static str),
    /// Something listens on this TCP port.
    Listens(u16),
}

/// The process of a service, if it runs.
#[derive(Debug)]
pub(crate) struct Service {
    name: &'static str,
    proc: Option<Proc>,
}

impl Service {
    /// A stopped service labelled `name`.
    pub(crate) fn new(name: &'static str) -> Self {
        Self { name, proc: None }
    }

    /// Writes `text` to `conf`, runs `cmd` in process group `group` and waits up
    /// to `timeout` until it is `ready`.
    pub(crate) fn start(
        &mut self,
        (conf, text): (&Path, &str),
        cmd: Command,
        group: Group,
        (ready, timeout): (Ready, Duration),
    ) -> Result<(), HarnessError> {
        std::fs::write(conf, text).map_err(HarnessError::io("write", conf))?;
        let proc = Proc::try_spawn_in(self.name, cmd, group)?;
        let started = match ready {
            Ready::Logs(text) => proc.wait_for_line(|l| l.contains(text), timeout).map(drop),
            Ready::Listens(port) => wait_for_listen(port, timeout).map_err(|why| {
                format!(
                    "{why}; last output lines:\n{}",
                    proc.tail(crate::process::TAIL_LINES)
                )
            }),
        };
        started
            .map_err(|why| HarnessError::Process(format!("{} did not start: {why}", self.name)))?;
        self.proc = Some(proc);
        Ok(())
    }

    /// The running process.
    ///
    /// # Panics
    ///
    /// When the service is stopped.
    pub(crate) fn proc(&self) -> &Proc {
        self.proc
            .as_ref()
            .unwrap_or_else(|| panic!("{} is stopped", self.name))
    }

    /// Kills the service at once: open connections break.
    pub(crate) fn stop(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.kill();
        }
    }
}
