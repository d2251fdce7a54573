//! Workload 12: kill -9 a node holding `--failover-agents` agents (1,000 by
//! default) → the time until every one of them answers a call through the
//! surviving node. Target (issue 14): under 30 s, bounded by the agents' backoff,
//! not by the cluster.
//!
//! 1. node B starts; the agents start with `manager_host: [B, A]` while A's port is
//!    reserved but not yet listened on, so each of them ends up on B (those that
//!    try A first find nothing there and go on to B);
//! 2. node A starts on its port and joins; it lists the agents, all on B;
//! 3. with `--cluster-hold` > 0 every session is first held that long (61 s by
//!    default: the agent's backoff counts a session of 60 s or more as stable and
//!    then spreads its first retry over 10 s, as a real fleet's long-lived sessions
//!    do when their manager dies);
//! 4. A starts watching (`failover`), B is killed with SIGKILL; A reports when it
//!    counted B dead and when each agent answered an `echo` through it.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{held_note, hold_sessions, row, start_agents, start_node, NODE_A, NODE_B};
use crate::child::cluster::Failover;
use crate::placement::Placement;
use crate::report::{Better, Row, Target};
use crate::workloads::{progress, Ctx};

const W: &str = "12 cluster failover";
/// How long the surviving node waits for every agent.
const LIMIT: Duration = Duration::from_secs(180);

fn try_run(ctx: &Ctx, placement: Placement, n: usize) -> anyhow::Result<(Failover, f64)> {
    let (cpu_a, cpu_b) = placement.cpus(&ctx.cpus)?;
    let cluster = super::cluster_name();
    let port_a = redpepper_tests::try_free_port().context("reserving node A's port")?;
    let b = start_node(ctx, &cluster, NODE_B, cpu_b, 0)?;
    let (agents, _) = start_agents(ctx, &[b.port, port_a], 0, n, cpu_b)?;
    let connected = Instant::now();
    let a = start_node(ctx, &cluster, NODE_A, cpu_a, port_a)?;
    a.wait_nodes(2)?;
    let seen = a.wait_agents(n, Duration::from_secs(60 + (n / 100) as u64))?;
    anyhow::ensure!(
        seen.local == 0,
        "{} agents are on node A before the kill",
        seen.local
    );
    let held = hold_sessions(ctx, connected);
    let line = format!("failover 0 {n} {} {NODE_B}", LIMIT.as_secs_f64());
    a.ask(&line, "watching", Duration::from_secs(30))?;
    b.proc.kill();
    let value = a
        .proc
        .expect("failover", LIMIT + Duration::from_secs(30))
        .context("node A after the kill")?;
    let failover: Failover = serde_json::from_value(value)?;
    progress(&format!(
        "  {}/{} agents answered through A, the last {:.2} s after the kill; B dead at {:?} s",
        failover.callable, failover.agents, failover.secs_all, failover.secs_dead
    ));
    b.proc.finish(Duration::from_secs(2));
    a.proc.finish(Duration::from_secs(5));
    agents.finish(Duration::from_secs(5));
    Ok((failover, held))
}

/// Run workload 12 and make its rows.
pub fn run(ctx: &Ctx, placement: Placement) -> Vec<Row> {
    let n = ctx.opts.failover_agents;
    let result = try_run(ctx, placement, n).map_err(|e| format!("{e:#}"));
    if let Err(e) = &result {
        progress(&format!("  cluster failover failed: {e}"));
    }
    let all = result.clone().and_then(|(f, _)| {
        if f.callable == f.agents {
            Ok(f.secs_all)
        } else {
            Err(format!(
                "{} of {} agents answered through A within {} s; first error: {}",
                f.callable,
                f.agents,
                LIMIT.as_secs(),
                f.first_error.as_deref().unwrap_or("none")
            ))
        }
    });
    let mut r = row(
        W,
        placement,
        &format!("kill -9 node B holding {n} agents: all callable through A"),
        "s",
        Better::Lower,
        all,
    )
    .target(Some(Target::AtMost(30.0)));
    let dead = result.clone().and_then(|(f, _)| {
        f.secs_dead
            .ok_or_else(|| "node A never counted node B dead".to_owned())
    });
    let mut rows = Vec::new();
    if let Ok((f, held)) = &result {
        r = r.note(&format!(
            "half at {:.2} s, 90 % at {:.2} s; calls that failed and were retried: {}; \
             sessions held {held:.0} s before the kill{}",
            f.secs_p50,
            f.secs_p90,
            f.failed_calls,
            held_note(*held)
        ));
    }
    rows.push(r);
    rows.push(
        row(
            W,
            placement,
            "node B counted dead by A after the kill",
            "s",
            Better::Lower,
            dead,
        )
        .note("cluster.heartbeat 1 s × cluster.dead_after 3 (defaults)"),
    );
    rows
}
