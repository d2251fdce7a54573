//! `run`: start an operation (or a state) on agents and follow it to the end.
//!
//! On a terminal, one progress bar per agent, driven by `command_progress`
//! (`current/total`: one step for an operation, one per task for a state), drawn on
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
//!
//! `run TARGET state [NAME]` sends what RedPepper's manager sends for a state:
//! `cmdtype` `state`, `args` `[NAME]` (none for the default state), `kwargs` `{}`.
//!
//! `--timeout` is the run's timeout on the manager: at it, the agents still running
//! the command are told to stop and their results say `timeout`.
//!
//! Ctrl-C cancels the run (`DELETE /v1/runs/{run_id}`, one line on stderr saying so)
//! and goes on showing its lines: the cancelled agents' results say `cancelled`, then
//! the summary. A second Ctrl-C exits at once (status 130). Cancelling, rather than
//! leaving the job running as Salt does, because whoever presses Ctrl-C means "stop
//! this"; a run to leave behind is started with `--timeout` and followed or cancelled
//! from elsewhere (`redpepper-ctl runs`, `redpepper-ctl cancel`).

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::RunArgs;
use crate::client::AdminClient;
use crate::commands::show;
use crate::error::CtlError;
use crate::runs::run_path;
use crate::values::parse_kwargs;
use crate::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK};

/// The answer header of `POST /v1/runs` that carries the run's id.
pub const RUN_ID_HEADER: &str = "x-redpepper-run-id";

/// Ctrl-C while a run streams: the first cancels the run, the second exits.
struct Interrupts {
    /// `None` when SIGINT cannot be caught (then it ends the process as usual).
    sigint: Option<tokio::signal::unix::Signal>,
    seen: u32,
}

impl Interrupts {
    fn new() -> Self {
        let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        Self { sigint, seen: 0 }
    }

    /// The next Ctrl-C; never, when SIGINT is not caught.
    async fn next(&mut self) {
        let got = match &mut self.sigint {
            Some(s) => s.recv().await.is_some(),
            None => false,
        };
        if got {
            self.seen += 1;
        } else {
            // Not caught (or no more signals to come): never.
            self.sigint = None;
            futures::future::pending::<()>().await;
        }
    }
}

/// Past this many agents a terminal gets one summary bar instead of one per agent.
pub const HANDFUL: usize = 5;

/// How updates are shown.
enum View {
    Json,
    /// `--out yaml`: the result lines, printed as one document at the end.
    Yaml(Vec<Value>),
    Plain,
    /// One bar on stderr for the whole run; lines for failures only.
    Summary(ProgressBar),
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
            View::Summary(bar) => bar.suspend(|| println!("{line}")),
            _ => println!("{line}"),
        }
    }
}

/// The result of one agent as text lines.
pub fn result_lines(ev: &Value) -> Vec<String> {
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
    if let View::Summary(bar) = view {
        if ev["event"] == "result" {
            bar.inc(1);
            if ev["success"] != true {
                for line in result_lines(ev) {
                    view.println(&line);
                }
            }
        }
        return;
    }
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
                // An empty state reports 0/0: a full bar, drawn as such.
                bar.set_length(total);
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

/// The operation RedPepper agents run a state for (`state [NAME]`).
pub const STATE: &str = "state";

/// The body of `POST /v1/runs` for `a`.
pub fn body(a: &RunArgs) -> Result<Value, CtlError> {
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        return Err(CtlError::Usage(format!(
            "--timeout {}: expected a positive number of seconds",
            a.timeout
        )));
    }
    if a.operation == STATE && a.args.len() > 1 {
        // RedPepper's agent refuses more ("State command takes at most one argument").
        return Err(CtlError::Usage(format!(
            "state {}: expected at most one argument, the state's name",
            a.args.join(" ")
        )));
    }
    let mut b = json!({
        "target": a.target,
        "operation": a.operation,
        "args": a.args,
        "kwargs": parse_kwargs(&a.kwargs)?,
        "timeout": a.timeout,
    });
    if a.data {
        b["match"] = json!("data");
    } else if a.regex {
        b["match"] = json!("regex");
    }
    if let Some(batch) = &a.batch {
        b["batch"] = parse_batch(batch)?;
    }
    Ok(b)
}

/// `--batch N` or `--batch N%`.
pub fn parse_batch(batch: &str) -> Result<Value, CtlError> {
    let bad = || {
        CtlError::Usage(format!(
            "--batch {batch}: expected a count above 0 or a percentage such as 25%"
        ))
    };
    let t = batch.trim();
    if let Some(p) = t.strip_suffix('%') {
        match p.trim().parse::<f64>() {
            Ok(p) if p > 0.0 && p <= 100.0 => Ok(json!(t)),
            _ => Err(bad()),
        }
    } else {
        match t.parse::<u64>() {
            Ok(n) if n > 0 => Ok(json!(n)),
            _ => Err(bad()),
        }
    }
}

/// The summary bar (on stderr, which is a terminal).
fn summary_bar() -> View {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} agent(s) done, {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    View::Summary(bar)
}

/// `run`.
pub async fn run(client: &AdminClient, a: &RunArgs, verbose: bool) -> Result<i32, CtlError> {
    let body = body(a)?;
    let summarize = !verbose && std::io::stderr().is_terminal();
    let mut agents_seen = std::collections::HashSet::new();
    let mut lines = client
        .lines(Method::POST, "/v1/runs?stream=true", Some(&body))
        .await?;
    let mut view = if crate::output::get() == crate::output::Out::Yaml {
        View::Yaml(Vec::new())
    } else if a.json {
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
    let mut run_id = lines.header(RUN_ID_HEADER);
    let mut interrupts = Interrupts::new();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            () = interrupts.next() => {
                if let Some(code) = interrupted(client, run_id.as_deref(), interrupts.seen).await {
                    return Ok(code);
                }
                continue;
            }
        };
        let Some(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        if matches!(view, View::Json) {
            println!("{line}");
        }
        let ev: Value = serde_json::from_str(&line)
            .map_err(|e| CtlError::Io(format!("unreadable progress line `{line}`: {e}")))?;
        if ev["event"] == "summary" {
            if let View::Summary(bar) = &view {
                bar.finish_and_clear();
            }
            if let View::Yaml(results) = &view {
                let doc = json!({"run_id": run_id, "results": results, "summary": ev});
                print!("{}", crate::output::render(&doc));
            } else if !matches!(view, View::Json) {
                view.println(&format!(
                    "summary: {} agent(s), {} succeeded, {} failed, {} changed",
                    ev["total"], ev["succeeded"], ev["failed"], ev["changed"]
                ));
                let down: Vec<String> = ev["not_connected"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(show)
                    .collect();
                if !down.is_empty() {
                    eprintln!(
                        "redpepper-ctl: {} agent(s) did not return (not connected): {}",
                        down.len(),
                        down.join(", ")
                    );
                }
            }
            let ok = ev["failed"] == 0 && ev["total"].as_u64().unwrap_or(0) > 0;
            return Ok(if ok { EXIT_OK } else { EXIT_FAILED });
        }
        if run_id.is_none() {
            run_id = ev["run_id"].as_str().map(str::to_owned);
        }
        if let View::Yaml(results) = &mut view {
            if ev["event"] == "result" {
                results.push(ev);
            }
            continue;
        }
        if summarize && !matches!(view, View::Json | View::Summary(_)) {
            if let Some(agent) = ev["agent"].as_str() {
                agents_seen.insert(agent.to_owned());
            }
            if agents_seen.len() > HANDFUL {
                if let View::Bars { multi, .. } = &view {
                    let _ = multi.clear();
                }
                view = summary_bar();
            }
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

/// Ctrl-C number `seen` during a run: the first cancels the run and the lines go on
/// (`None`); the second, or one before the run's id is known, exits (the status).
async fn interrupted(client: &AdminClient, run_id: Option<&str>, seen: u32) -> Option<i32> {
    match run_id {
        Some(id) if seen == 1 => {
            eprintln!("redpepper-ctl: cancelling run {id} (Ctrl-C again to exit at once)");
            if let Err(e) = client.ok_json(Method::DELETE, &run_path(id), None).await {
                eprintln!("redpepper-ctl: could not cancel run {id}: {e}");
            }
            None
        }
        Some(id) => {
            eprintln!("redpepper-ctl: interrupted; run {id} may still be in progress");
            Some(EXIT_INTERRUPTED)
        }
        None => {
            eprintln!(
                "redpepper-ctl: interrupted before the run had an id; it may still be in progress"
            );
            Some(EXIT_INTERRUPTED)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    fn run_args(line: &[&str]) -> RunArgs {
        let cli =
            crate::cli::Cli::try_parse_from(["redpepper-ctl", "run"].iter().chain(line).copied())
                .unwrap();
        match cli.command {
            crate::cli::Command::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_state_is_sent_as_redpepper_sends_it() {
        // RedPepper's manager: cmdtype "state", args [NAME] or [], kwargs {}.
        let named = body(&run_args(&["web*", "state", "deploy"])).unwrap();
        assert_eq!(named["operation"], "state");
        assert_eq!(named["args"], json!(["deploy"]));
        assert_eq!(named["kwargs"], json!({}));
        let default = body(&run_args(&["web1", "state"])).unwrap();
        assert_eq!(default["args"], json!([]));
        assert_eq!(default["kwargs"], json!({}));
        let err = body(&run_args(&["web1", "state", "a", "b"])).unwrap_err();
        assert!(
            matches!(&err, CtlError::Usage(m) if m.contains("at most one argument")),
            "{err:?}"
        );
    }

    #[test]
    fn an_operation_keeps_its_arguments() {
        let b = body(&run_args(&["web1", "echo.Echo", "a", "b", "-k", "n=1"])).unwrap();
        assert_eq!(b["args"], json!(["a", "b"]));
        assert_eq!(b["kwargs"], json!({"n": 1}));
        assert!(body(&run_args(&["web1", "noop.Noop", "--timeout", "0"])).is_err());
    }
}
