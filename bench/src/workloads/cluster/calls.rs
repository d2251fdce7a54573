//! Workload 10: a call from node A to an agent on node B (A → broker → B → agent and
//! back), against a call from A to an agent on A and against the raw lapin round
//! trip through the same broker (`child pair-* --stack raw --transport amqp`, as in
//! workloads 1-4): p50/p99 sequentially and with 64 calls in flight, and calls/s
//! with 64 in flight. Targets (issue 14): a forwarded call costs at most one broker
//! round trip more than a local one (cross-node p50 − local p50 ≤ the raw round
//! trip's p50), and cross-node throughput is at least half the local one.

use std::time::Duration;

use super::{row, start_agents, start_joined, Node};
use crate::placement::Placement;
use crate::report::{Better, Row, Target};
use crate::setup::{fleet_id, Transport};
use crate::tasks::{Calls, Task, TaskResult};
use crate::workloads::pair::{self, Driver, Impl, RunKey};
use crate::workloads::{progress, Ctx};

const W: &str = "10 cluster calls";
/// Calls in flight of the throughput loops.
const IN_FLIGHT: usize = 64;
const LOCAL: &str = "local call on node A";
const RAW: &str = "raw lapin round trip";

/// The two loops every side runs: sequential, then 64 in flight.
fn loops(ctx: &Ctx, who: &str) -> [Calls; 2] {
    [1, IN_FLIGHT].map(|in_flight| Calls {
        label: format!("{who} {in_flight}"),
        in_flight,
        payload: 0,
        warmup: ctx.opts.warmup,
        secs: ctx.opts.secs,
    })
}

/// Figures of one side: the sequential loop and the 64-in-flight loop.
type Side = [Result<TaskResult, String>; 2];

fn failed(why: &str) -> Side {
    [Err(why.to_owned()), Err(why.to_owned())]
}

/// Run a loop of routed calls from node A to `agent`.
fn call_loop(a: &Node, agent: &str, c: &Calls) -> Result<TaskResult, String> {
    let json = serde_json::to_string(c).map_err(|e| e.to_string())?;
    let limit = Duration::from_secs_f64(c.warmup + c.secs + 60.0);
    let value = a
        .ask(&format!("calls {agent} {json}"), "result", limit)
        .map_err(|e| format!("{e:#}"))?;
    let result: TaskResult = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if let Some(e) = &result.first_error {
        progress(&format!(
            "  {}: {} errors, first: {e}",
            c.label, result.errors
        ));
    }
    if result.ops == 0 {
        return Err(result
            .first_error
            .unwrap_or_else(|| "no call completed".to_owned()));
    }
    Ok(result)
}

/// Nodes A and B, one agent on each; the local and the cross-node figures.
fn ours(ctx: &Ctx, placement: Placement) -> anyhow::Result<(Side, Side)> {
    let (a, b, cpu_b) = start_joined(ctx, placement)?;
    let (local_id, remote_id) = (fleet_id(0), fleet_id(1));
    let (_on_a, _) = start_agents(ctx, &[a.port], 0, 1, cpu_b)?;
    let (_on_b, _) = start_agents(ctx, &[b.port], 1, 1, cpu_b)?;
    a.wait_agents(2, Duration::from_secs(30))?;
    let [seq, par] = loops(ctx, "local");
    let local = [
        call_loop(&a, &local_id, &seq),
        call_loop(&a, &local_id, &par),
    ];
    let [seq, par] = loops(ctx, "cross-node");
    let cross = [
        call_loop(&a, &remote_id, &seq),
        call_loop(&a, &remote_id, &par),
    ];
    a.proc.finish(Duration::from_secs(5));
    b.proc.finish(Duration::from_secs(5));
    Ok((local, cross))
}

/// The raw lapin round trip through the same broker, the same two loops.
fn raw(ctx: &Ctx, placement: Placement) -> Side {
    let key = RunKey {
        transport: Transport::Amqp,
        placement,
        imp: Impl::Raw,
        driver: Driver::Agent,
    };
    let [seq, par] = loops(ctx, "cluster raw");
    let tasks = [Task::Calls(seq.clone()), Task::Calls(par.clone())];
    let outcome = pair::run_pair(ctx, key, &tasks);
    let get = |c: &Calls| match (outcome.results.get(&c.label), &outcome.error) {
        (Some(r), _) if r.ops > 0 => Ok(r.clone()),
        (Some(r), _) => Err(r
            .first_error
            .clone()
            .unwrap_or_else(|| "no round trip completed".to_owned())),
        (None, Some(e)) => Err(e.clone()),
        (None, None) => Err("no result".to_owned()),
    };
    [get(&seq), get(&par)]
}

fn metric(side: &Side, i: usize, f: impl Fn(&TaskResult) -> Option<f64>) -> Result<f64, String> {
    match side.get(i) {
        Some(Ok(r)) => f(r).ok_or_else(|| "no samples".to_owned()),
        Some(Err(e)) => Err(e.clone()),
        None => Err("not run".to_owned()),
    }
}

/// Run workload 10 and make its rows.
pub fn run(ctx: &Ctx, placement: Placement) -> Vec<Row> {
    let (local, cross) = match ours(ctx, placement) {
        Ok(sides) => sides,
        Err(e) => {
            let why = format!("{e:#}");
            progress(&format!("  cluster calls failed: {why}"));
            (failed(&why), failed(&why))
        }
    };
    let raw = raw(ctx, placement);
    rows(placement, &local, &cross, &raw)
}

fn rows(placement: Placement, local: &Side, cross: &Side, raw: &Side) -> Vec<Row> {
    type Pick = fn(&TaskResult) -> Option<f64>;
    let p50: Pick = |r| r.p50_us;
    let p99: Pick = |r| r.p99_us;
    let rate: Pick = TaskResult::rate;
    let figures: [(usize, &str, &str, Better, Pick); 5] = [
        (0, "sequential p50", "µs", Better::Lower, p50),
        (0, "sequential p99", "µs", Better::Lower, p99),
        (1, "64 in flight p50", "µs", Better::Lower, p50),
        (1, "64 in flight p99", "µs", Better::Lower, p99),
        (1, "64 in flight", "calls/s", Better::Higher, rate),
    ];
    let mut rows = Vec::new();
    for (i, what, unit, better, pick) in figures {
        let ours = metric(cross, i, pick);
        let metric_name = format!("A→B's agent, {what}");
        let mut vs_local = row(W, placement, &metric_name, unit, better, ours.clone())
            .against(LOCAL, metric(local, i, pick));
        if unit == "calls/s" {
            vs_local = vs_local
                .target(Some(Target::RatioAtLeast(0.5)))
                .note("target: cross-node throughput at least half the local one");
        }
        rows.push(vs_local);
        rows.push(
            row(W, placement, &metric_name, unit, better, ours).against(RAW, metric(raw, i, pick)),
        );
    }
    // What forwarding adds to a call, against one broker round trip.
    let extra = match (metric(cross, 0, p50), metric(local, 0, p50)) {
        (Ok(c), Ok(l)) => Ok(c - l),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let raw_p50 = metric(raw, 0, p50);
    let mut r = row(
        W,
        placement,
        "forwarding cost: A→B's agent p50 − local p50, sequential",
        "µs",
        Better::Lower,
        extra,
    )
    .against(RAW, raw_p50.clone())
    .note("target: at most one broker round trip (the raw lapin p50) more than a local call");
    if let Ok(v) = raw_p50 {
        r = r.target(Some(Target::AtMost(v)));
    }
    rows.push(r);
    rows
}
