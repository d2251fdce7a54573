//! Tests of `command.Run`'s bounds: output capture ([`capture`]), timeout, cancel and
//! drop ([`stop`]), environment and user switching ([`identity`]); helpers here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod capture;
mod identity;
mod stop;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use nix::unistd::{Gid, User};
use redpepper_core::Value;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::capture::Capture;
use super::encoding::Encoding;
use super::{env, group_list, run, RunLimits};
use crate::operations::test_support::WAIT;
use crate::operations::{OpArgs, OpResult};

fn kwargs(list: &[(&str, Value)]) -> Vec<(Value, Value)> {
    list.iter()
        .map(|(k, v)| (Value::from(*k), v.clone()))
        .collect()
}

async fn try_run(list: &[(&str, Value)], cancel: &CancellationToken) -> Result<OpResult, String> {
    let kwargs = kwargs(list);
    let args = OpArgs {
        args: &[],
        kwargs: &kwargs,
    };
    run(&args, &RunLimits::default(), cancel).await
}

/// Runs a command that must run (succeed or fail).
async fn ran(list: &[(&str, Value)]) -> OpResult {
    try_run(list, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("could not run: {e}"))
}

/// The number in the `... N bytes omitted ...` line, and the text without that line.
fn omitted(text: &str) -> (u64, String) {
    let start = text.find("... ").expect("an omission marker");
    let end = start
        + text[start..]
            .find(" bytes omitted ...\n")
            .expect("marker end");
    let n = text[start + 4..end].parse().expect("a byte count");
    let rest = format!(
        "{}{}",
        &text[..start],
        &text[end + " bytes omitted ...\n".len()..]
    );
    (n, rest)
}
