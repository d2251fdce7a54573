//! Starting a [`Proc`]: the child with piped stdio, a waiter thread that reaps it
//! and records its exit status, and a reader thread per output stream.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};

use super::{Group, Line, Proc, Shared, State, Stream};
use crate::error::HarnessError;

impl Proc {
    /// Starts `cmd` like [`Proc::try_spawn`], in process group `group`.
    ///
    /// # Errors
    ///
    /// When the program or a thread watching it cannot be started.
    pub fn try_spawn_in(name: &str, mut cmd: Command, group: Group) -> Result<Proc, HarnessError> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if group == Group::Own {
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn {
            name: name.to_owned(),
            program: format!("{:?}", cmd.get_program()),
            source,
        })?;
        let pid = child.id();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            state: Mutex::new(State {
                open_streams: 2,
                ..State::default()
            }),
            cond: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        });
        let stdin = child.stdin.take();
        let out = child.stdout.take();
        let err = child.stderr.take();
        let waiter = Arc::clone(&shared);
        let waiting = std::thread::Builder::new()
            .name(format!("{name}-wait"))
            .spawn(move || {
                let status = child.wait();
                let mut state = waiter.lock();
                // An error here means the child is gone already; call it killed.
                state.exit = Some(status.unwrap_or_else(|_| ExitStatus::from_raw(9)));
                drop(state);
                waiter.changed();
            });
        // From here on the `Proc` owns the child: an early return kills it.
        let proc = Proc {
            shared,
            pid,
            group,
            stdin: Mutex::new(stdin),
        };
        waiting.map_err(proc.thread_error("waiter"))?;
        let echo =
            std::env::var_os("REDPEPPER_TEST_ECHO").is_some_and(|v| v != "0" && !v.is_empty());
        let out = out.map(|p| Box::new(p) as Box<dyn Read + Send>);
        let err = err.map(|p| Box::new(p) as Box<dyn Read + Send>);
        for (stream, pipe) in [(Stream::Stdout, out), (Stream::Stderr, err)] {
            match pipe {
                Some(pipe) => spawn_reader(&proc.shared, stream, pipe, echo)
                    .map_err(proc.thread_error("output reader"))?,
                None => proc.shared.lock().open_streams -= 1,
            }
        }
        Ok(proc)
    }

    fn thread_error(&self, which: &str) -> impl FnOnce(std::io::Error) -> HarnessError {
        let name = format!("{} thread of {}", which, self.name());
        move |source| HarnessError::Spawn {
            name,
            program: "std::thread".to_owned(),
            source,
        }
    }
}

fn spawn_reader(
    shared: &Arc<Shared>,
    stream: Stream,
    pipe: impl Read + Send + 'static,
    echo: bool,
) -> std::io::Result<()> {
    let shared = Arc::clone(shared);
    let name = format!("{}-{stream:?}", shared.name);
    std::thread::Builder::new().name(name).spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    let line = Line {
                        stream,
                        text: String::from_utf8_lossy(&buf).into_owned(),
                    };
                    if echo {
                        eprintln!("[{}] {line}", shared.name);
                    }
                    shared.lock().lines.push(line);
                    shared.changed();
                }
            }
        }
        shared.lock().open_streams -= 1;
        shared.changed();
    })?;
    Ok(())
}
