//! `run`: start an operation on agents and follow it to the end.
//!
//! On a terminal, one progress bar per agent, driven by `command_progress`, drawn on
//! stdout with the results and the summary (so they show whatever stderr is);
//! otherwise plain lines:
//!
//! ```text
//! web1: started 9f3a…
//! web1: [0/1] Running echo.Echo...
//! web1: [1/1] Finished echo.Echo
//! web1: succeeded (changed: no)
//! web1> hello
//! summary: 1 agent(s), 1 succeeded, 0 failed, 0 changed
//! ```

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::RunArgs;
use crate::client::AdminClient;
use crate::commands::show;
use crate::error::CtlError;
use crate::values::parse_kwargs;
use crate::{EXIT_FAILED, EXIT_OK};

/// How updates are shown.
enum View {
    Json,
    Plain,
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
        style: ProgressStyle,
    },
}

impl View {
    fn bar(&mut self, agent: &str) -> Option<&ProgressBar> {
        let View::Bars { multi, bars, style } = self else {
            return None;
        };
        Some(bars.entry(agent.to_owned()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(1));
            bar.set_style(style.clone());
            bar.set_prefix(agent.to_owned());
            bar
        }))
    }

    fn println(&self, line: &str) {
        match self {
            View::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
            _ => println!("{line}"),
        }
    }
}

/// The result of one agent as text lines.
fn result_lines(ev: &Value) -> Vec<String> {
    let agent = show(&ev["agent"]);
    let mut lines = Vec::new();
    if ev["success"] == true {
        let changed = if ev["changed"] == true { "yes" } else { "no" };
        lines.push(format!("{agent}: succeeded (changed: {changed})"));
    } else if ev.get("code").is_some_and(|c| !c.is_null()) {
        lines.push(format!(
            "{agent}: FAILED ({}): {}",
            show(&ev["code"]),
            show(&ev["error"])
        ));
    } else {
        lines.push(format!("{agent}: FAILED"));
    }
    if let Some(output) = ev["output"].as_str() {
        lines.extend(output.lines().map(|l| format!("{agent}> {l}")));
    }
    lines
}

fn handle(view: &mut View, ev: &Value) {
    let agent = show(&ev["agent"]);
    match ev["event"].as_str().unwrap_or_default() {
        "started" => {
            if let Some(bar) = view.bar(&agent) {
                bar.set_message("started");
            } else {
                view.println(&format!("{agent}: started {}", show(&ev["command_id"])));
            }
        }
        "progress" => {
            let (current, total) = (
                ev["current"].as_u64().unwrap_or(0),
                ev["total"].as_u64().unwrap_or(0),
            );
            let message = show(&ev["message"]);
            if let Some(bar) = view.bar(&agent) {
                bar.set_length(total.max(1));
                bar.set_position(current);
                bar.set_message(message);
            } else {
                view.println(&format!("{agent}: [{current}/{total}] {message}"));
            }
        }
        "result" => {
            if let Some(bar) = view.bar(&agent) {
                let mark = if ev["success"] == true {
                    "ok"
                } else {
                    "FAILED"
                };
                bar.finish_with_message(mark);
            }
            for line in result_lines(ev) {
                view.println(&line);
            }
        }
        _ => {}
    }
}

/// `run`.
pub async fn run(client: &AdminClient, a: &RunArgs) -> Result<i32, CtlError> {
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        return Err(CtlError::Usage(format!(
            "--timeout {}: expected a positive number of seconds",
            a.timeout
        )));
    }
    let body = json!({
        "target": a.target,
        "operation": a.operation,
        "args": a.args,
        "kwargs": parse_kwargs(&a.kwargs)?,
        "timeout": a.timeout,
    });
    let mut lines = client
        .lines(Method::POST, "/v1/runs?stream=true", Some(&body))
        .await?;
    let mut view = if a.json {
        View::Json
    } else if std::io::stdout().is_terminal() {
        View::Bars {
            // On stdout, with the results and the summary: stderr may be redirected
            // (`2>/dev/null`), and what `multi.println` writes goes where the bars go.
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: HashMap::new(),
            style: ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        }
    } else {
        View::Plain
    };
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        if matches!(view, View::Json) {
            println!("{line}");
        }
        let ev: Value = serde_json::from_str(&line)
            .map_err(|e| CtlError::Io(format!("unreadable progress line `{line}`: {e}")))?;
        if ev["event"] == "summary" {
            if !matches!(view, View::Json) {
                view.println(&format!(
                    "summary: {} agent(s), {} succeeded, {} failed, {} changed",
                    ev["total"], ev["succeeded"], ev["failed"], ev["changed"]
                ));
            }
            let ok = ev["failed"] == 0 && ev["total"].as_u64().unwrap_or(0) > 0;
            return Ok(if ok { EXIT_OK } else { EXIT_FAILED });
        }
        if !matches!(view, View::Json) {
            handle(&mut view, &ev);
        }
    }
    Err(CtlError::Io(format!(
        "the manager at {} ended the run stream before its summary",
        client.url()
    )))
}
