//! Workloads 11 and 13, on `--cluster-agents` agents (10,000 by default):
//!
//! - 11, fan-out: nodes A and B, half of the agents on each; node A calls `echo` on
//!   every agent of the cluster at once through its API (`Manager::call`, routed to
//!   B for B's agents), `fanout_rounds` rounds: the median time until the last
//!   answer. Target (issue 14): under 1.5 s for 10,000 agents.
//! - 13, memory: nodes A and B, every agent on B, none on A: A's RSS once the
//!   cluster formed, and again once A's directory lists every agent, each read once
//!   it stopped moving (workload 7's [`settled_rss`]: jemalloc returns freed pages
//!   after its decay time); the growth per agent. Target: under 1 KiB.

use std::time::Duration;

use super::{row, start_agents, start_joined};
use crate::placement::Placement;
use crate::report::{Better, Row, Target};
use crate::workloads::fleet::fanouts;
use crate::workloads::fleet::memory::{settled_rss, QUICK_SETTLE_WINDOW, SETTLE_WINDOW};
use crate::workloads::{progress, Ctx};

/// A's RSS once it stopped moving: within a tolerance finer than the 1 KiB target
/// over the fleet, over jemalloc's decay time (a few seconds in quick mode).
fn settled(ctx: &Ctx, a: &super::Node, n: usize) -> anyhow::Result<u64> {
    let tolerance = (n as u64 * 64).max(128 * 1024);
    let (span, limit) = if ctx.opts.quick {
        (QUICK_SETTLE_WINDOW, Duration::from_secs(30))
    } else {
        (SETTLE_WINDOW, Duration::from_secs(120))
    };
    let s = settled_rss(&a.proc, span, tolerance, limit).map_err(anyhow::Error::msg)?;
    if !s.settled {
        progress(&format!(
            "  node A's RSS still moved after {:.0} s: taking the last reading",
            s.secs
        ));
    }
    Ok(s.rss)
}

/// How long a node may take to list every agent of the cluster.
fn directory_limit(n: usize) -> Duration {
    Duration::from_secs(60 + (n / 100) as u64)
}

fn try_fanout(ctx: &Ctx, placement: Placement, n: usize) -> anyhow::Result<(f64, String)> {
    let (a, b, cpu_b) = start_joined(ctx, placement)?;
    let half = n / 2;
    let (_on_a, _) = start_agents(ctx, &[a.port], 0, half, cpu_b)?;
    let (_on_b, _) = start_agents(ctx, &[b.port], half, n - half, cpu_b)?;
    let seen = a.wait_agents(n, directory_limit(n))?;
    progress(&format!(
        "  node A lists {} agents, {} of them its own",
        seen.count, seen.local
    ));
    let fanout = fanouts(ctx, &a.proc, n).map_err(anyhow::Error::msg)?;
    a.proc.finish(Duration::from_secs(5));
    b.proc.finish(Duration::from_secs(5));
    let note = format!(
        "{} on A, {} on B; calls answered per round (ok/agents): {}",
        seen.local,
        seen.count - seen.local,
        fanout.rounds
    );
    Ok((fanout.median.secs, note))
}

/// Run workload 11 and make its row.
pub fn fanout(ctx: &Ctx, placement: Placement) -> Vec<Row> {
    let n = ctx.opts.cluster_agents;
    let result = try_fanout(ctx, placement, n).map_err(|e| format!("{e:#}"));
    if let Err(e) = &result {
        progress(&format!("  cluster fan-out failed: {e}"));
    }
    let (value, note) = match result {
        Ok((secs, note)) => (Ok(secs), Some(note)),
        Err(e) => (Err(e), None),
    };
    let mut r = row(
        "11 cluster fan-out",
        placement,
        &format!("echo from A to {n} agents, half on B: until the last answer (median round)"),
        "s",
        Better::Lower,
        value,
    )
    // The target is for 10,000 agents on this machine.
    .target((n == 10_000).then_some(Target::AtMost(1.5)));
    if let Some(note) = note {
        r = r.note(&note);
    }
    vec![r]
}

/// A's RSS before and after B's agents, in bytes, and the agents A then listed.
fn try_memory(ctx: &Ctx, placement: Placement, n: usize) -> anyhow::Result<(u64, u64, usize)> {
    let (a, b, cpu_b) = start_joined(ctx, placement)?;
    let before = settled(ctx, &a, n)?;
    let (_on_b, _) = start_agents(ctx, &[b.port], 0, n, cpu_b)?;
    let seen = a.wait_agents(n, directory_limit(n))?;
    anyhow::ensure!(seen.local == 0, "node A holds {} agents itself", seen.local);
    let after = settled(ctx, &a, n)?;
    a.proc.finish(Duration::from_secs(5));
    b.proc.finish(Duration::from_secs(5));
    Ok((before, after, seen.count))
}

/// Run workload 13 and make its row.
pub fn memory(ctx: &Ctx, placement: Placement) -> Vec<Row> {
    let n = ctx.opts.cluster_agents;
    let result = try_memory(ctx, placement, n).map_err(|e| format!("{e:#}"));
    if let Err(e) = &result {
        progress(&format!("  cluster memory failed: {e}"));
    }
    let per_agent = result.clone().and_then(|(before, after, listed)| {
        if listed == 0 {
            return Err("node A listed no agent".to_owned());
        }
        Ok((after as f64 - before as f64) / listed as f64 / 1024.0)
    });
    let mut r = row(
        "13 cluster memory",
        placement,
        &format!("node A's RSS per agent of node B in its directory ({n})"),
        "KiB",
        Better::Lower,
        per_agent,
    )
    .target(Some(Target::AtMost(1.0)));
    if let Ok((before, after, listed)) = result {
        r = r.note(&format!(
            "RSS of A, settled: {:.1} MiB with the cluster formed, {:.1} MiB listing \
             {listed} agents of B (none of its own)",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        ));
    }
    vec![r]
}
