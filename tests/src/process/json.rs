//! [`Proc::expect`]: the benchmark's children report on stdout as JSON objects,
//! one per line (`{"ready": ...}`, `{"result": ...}`, or `{"error": "why"}`).

use std::time::Duration;

use serde_json::Value;

use super::{Poll, Proc, State, Stream};
use crate::error::HarnessError;

impl Proc {
    /// Waits at most `timeout` for a stdout line `{"key": value, ...}` after the
    /// previous match and returns the value; other lines are skipped (consumed),
    /// and an object with an `error` key is an error carrying its text.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Process`] on an `error` line, when `timeout` passes, or when
    /// the process closes its output first; the message ends with its last lines.
    pub fn expect(&self, key: &str, timeout: Duration) -> Result<Value, HarnessError> {
        let reported = self
            .wait_until(timeout, |state| take_report(state, key))
            .map_err(|why| HarnessError::Process(format!("waiting for {key:?}: {why}")))?;
        reported.map_err(|error| {
            let state = self.shared.lock();
            HarnessError::Process(self.failure(&state, &format!("reported an error: {error}")))
        })
    }
}

/// The first stdout JSON object from the cursor on with `key` (`Ok`) or `error`
/// (`Err` with its text); moves the cursor past it.
fn take_report(state: &mut State, key: &str) -> Poll<Result<Value, String>> {
    let start = state.cursor.min(state.lines.len());
    for (index, line) in state.lines.iter().enumerate().skip(start) {
        if line.stream != Stream::Stdout || !line.text.starts_with('{') {
            continue;
        }
        let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(&line.text) else {
            continue;
        };
        let found = if let Some(error) = object.remove("error") {
            Err(error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned))
        } else if let Some(value) = object.remove(key) {
            Ok(value)
        } else {
            continue;
        };
        state.cursor = index + 1;
        return Poll::Ready(found);
    }
    state.cursor = state.lines.len();
    if state.open_streams == 0 {
        return Poll::Closed(format!("output closed without a {key:?} line"));
    }
    Poll::Pending
}
