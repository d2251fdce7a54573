//! Workload 15, transport fallback (issue 15, docs/CLUSTER.md "Transport fallback"):
//! one manager process serving tls and websocket (`child fallback-manager`),
//! `--fallback-agents` agents (1,000 by default) in one process (`child
//! cluster-agents`, each running the agent program's reconnecting loop) with
//! `transport: [tls, websocket]`, their TLS path through a [`Relay`] this process
//! holds (the network, made to order), their WebSocket path direct.
//!
//! 1. the manager starts, then the relay in front of its TLS port, then the agents;
//!    the manager waits until every agent has a TLS session;
//! 2. with `--cluster-hold` > 0 every session is first held that long (61 s by default:
//!    the agent's backoff counts a session of 60 s as stable and spreads its first
//!    retry over 10 s, as in the field);
//! 3. **cut**: the manager starts watching, the relay refuses new connections and cuts
//!    every open one: the time until every agent answered an `echo` over a WebSocket
//!    session. Target: the TLS dial's limit plus the ceiling of the agent's first
//!    reconnect delay ([`target`]), what the agent may spend before its round reaches
//!    the WebSocket entry when TLS is down;
//! 4. **back**: the manager starts calling every agent (`echo` every [`PACE`]) and
//!    watching, the relay accepts again: the time until every agent is on TLS again
//!    (each probes TLS after a wait drawn from half `--fallback-probe-interval` to all
//!    of it), and the calls that failed meanwhile (the move is meant to have no gap).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use redpepper_agent::backoff::Backoff;
use redpepper_tests::relay::Relay;
use redpepper_tests::Proc;

use super::{cluster, progress, Ctx};
use crate::child::cluster::{Failover, Wait};
use crate::child::fallback::MoveBack;
use crate::launcher;
use crate::placement::{raise_nofile, Placement};
use crate::report::{Better, Row, Target};
use crate::tasks::Burst;

const W: &str = "15 transport fallback";
/// How long the manager waits for every agent in each phase.
const LIMIT: Duration = Duration::from_secs(180);
/// How often each agent is called while the fleet moves back to TLS.
pub const PACE: Duration = Duration::from_millis(250);

/// The target of the cut, in two parts: the agent's TLS dial limit (TCP connect and
/// TLS handshake: what a TLS entry can cost when its path drops packets) and the
/// ceiling of its first reconnect delay after a session that lived `held`.
pub fn target(held: Duration) -> (Duration, Duration) {
    let mut backoff = Backoff::new(Backoff::BASE, Backoff::CAP);
    backoff.session_ended(held);
    (
        redpepper_transports::tls::DEFAULT_CONNECT_TIMEOUT,
        backoff.ceiling(),
    )
}

struct Outcome {
    connect_secs: f64,
    held: Duration,
    cut: usize,
    fallback: Failover,
    back: MoveBack,
}

/// Send `line` to `proc` and wait up to `limit` for the answer keyed `key`.
fn ask(proc: &Proc, line: &str, key: &str, limit: Duration) -> anyhow::Result<serde_json::Value> {
    proc.send_line(line).map_err(anyhow::Error::msg)?;
    proc.expect(key, limit)
        .with_context(|| format!("the manager after {line:?}"))
}

fn port(ready: &serde_json::Value, key: &str) -> anyhow::Result<u16> {
    ready
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .with_context(|| format!("the manager's ready line has no {key}: {ready}"))
}

/// The manager child on `cpu`: it and its TLS and WebSocket ports.
fn start_manager(ctx: &Ctx, cpu: usize) -> anyhow::Result<(Proc, u16, u16)> {
    let args = [
        "fallback-manager",
        "--work",
        &ctx.world.dir.display().to_string(),
        "--cpu",
        &cpu.to_string(),
    ]
    .map(str::to_owned);
    let proc = launcher::spawn("fallback manager", ctx.launcher.ours(&args))?;
    let ready = proc
        .expect("ready", Duration::from_secs(60))
        .context("the manager did not start")?;
    let (tls, ws) = (port(&ready, "port")?, port(&ready, "ws_port")?);
    Ok((proc, tls, ws))
}

/// `n` agents on `cpu` with `transport: [tls, websocket]`: TLS to `tls_port`,
/// WebSocket to `ws_port`; once each had a session.
fn start_agents(
    ctx: &Ctx,
    cpu: usize,
    tls_port: u16,
    ws_port: u16,
    n: usize,
) -> anyhow::Result<(Proc, Burst)> {
    let (tls, ws) = (tls_port.to_string(), ws_port.to_string());
    let probe = ctx.opts.fallback_probe_interval.to_string();
    let args = [
        "--ports",
        tls.as_str(),
        "--ws-port",
        ws.as_str(),
        "--probe-interval",
        probe.as_str(),
    ];
    cluster::spawn_agents(ctx, "fallback agents", &ctx.world.dir, cpu, n, &args)
}

fn try_run(ctx: &Ctx, placement: Placement, n: usize) -> anyhow::Result<Outcome> {
    let (cpu_a, cpu_b) = placement.cpus(&ctx.cpus)?;
    let (manager, tls_port, ws_port) = start_manager(ctx, cpu_a)?;
    // The relay holds two descriptors per agent in this process.
    let nofile = raise_nofile(2 * n as u64 + 1024)?;
    anyhow::ensure!(
        nofile >= 2 * n as u64 + 64,
        "open-file limit {nofile} is too low for a relay of {n} connections"
    );
    let relay = Relay::try_start(SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)))
        .context("starting the relay in front of the manager's TLS port")?;
    let (agents, burst) = start_agents(ctx, cpu_b, relay.addr().port(), ws_port, n)?;
    let connected = Instant::now();
    let line = format!("tls {n} 60");
    let on_tls: Wait = serde_json::from_value(ask(&manager, &line, "tls", LIMIT)?)?;
    anyhow::ensure!(
        on_tls.count == n,
        "{} of {n} agents are on TLS before the cut (the others fell back at their first \
         connect)",
        on_tls.count
    );
    let held = Duration::from_secs_f64(cluster::hold_sessions(ctx, connected));

    let line = format!("fallback {n} {}", LIMIT.as_secs_f64());
    ask(&manager, &line, "watching", Duration::from_secs(30))?;
    relay.refuse(true);
    let cut = relay.cut();
    let value = manager
        .expect("fallback", LIMIT + Duration::from_secs(30))
        .context("the manager after the cut")?;
    let fallback: Failover = serde_json::from_value(value)?;
    progress(&format!(
        "  TLS cut ({cut} connections): {}/{} agents answered over WebSocket, the last {:.2} s after",
        fallback.callable, fallback.agents, fallback.secs_all
    ));
    anyhow::ensure!(
        fallback.callable == n,
        "{} of {n} agents answered over WebSocket within {} s; first error: {}",
        fallback.callable,
        LIMIT.as_secs(),
        fallback.first_error.as_deref().unwrap_or("none")
    );

    let limit = LIMIT + Duration::from_secs_f64(ctx.opts.fallback_probe_interval);
    let line = format!(
        "moveback {n} {} {}",
        limit.as_secs_f64(),
        PACE.as_secs_f64()
    );
    ask(&manager, &line, "watching", Duration::from_secs(30))?;
    relay.refuse(false);
    let value = manager
        .expect("moveback", limit + Duration::from_secs(60))
        .context("the manager after the relay reopened")?;
    let back: MoveBack = serde_json::from_value(value)?;
    progress(&format!(
        "  TLS back: {}/{} agents on TLS, the last {:.2} s after; {} of {} calls failed",
        back.on_tls, back.agents, back.secs_all, back.failed_calls, back.calls
    ));
    agents.finish(Duration::from_secs(5));
    manager.finish(Duration::from_secs(5));
    drop(relay);
    Ok(Outcome {
        connect_secs: burst.secs,
        held,
        cut,
        fallback,
        back,
    })
}

/// Run workload 15 and make its rows.
pub fn run(ctx: &Ctx) -> Vec<Row> {
    let n = ctx.opts.fallback_agents;
    let probe = ctx.opts.fallback_probe_interval;
    let placement = cluster::placement(ctx);
    progress(&format!(
        "fallback: cut the TLS path of {n} [tls, websocket] agents, then restore it"
    ));
    let result = try_run(ctx, placement, n).map_err(|e| format!("{e:#}"));
    if let Err(e) = &result {
        progress(&format!("  transport fallback failed: {e}"));
    }
    let held = result.as_ref().map_or(
        Duration::from_secs_f64(ctx.opts.cluster_hold.max(0.0)),
        |o| o.held,
    );
    let (dial, step) = target(held);
    let row = |transport: &str, metric: &str, unit: &str, value: Result<f64, String>| {
        Row::new(
            W,
            transport,
            placement.as_str(),
            metric,
            unit,
            Better::Lower,
            value,
        )
    };

    let mut cut = row(
        "tls → websocket",
        &format!("TLS path cut under {n} agents: all answer over WebSocket"),
        "s",
        result
            .as_ref()
            .map(|o| o.fallback.secs_all)
            .map_err(Clone::clone),
    )
    .target(Some(Target::AtMost((dial + step).as_secs_f64())));
    let target_note = format!(
        "target = TLS dial limit {:.0} s + first reconnect delay ceiling {:.0} s ({})",
        dial.as_secs_f64(),
        step.as_secs_f64(),
        if held >= Backoff::STABLE {
            "after a stable session"
        } else {
            "after a session under 60 s; --cluster-hold 61 for a real fleet's"
        }
    );
    if let Ok(o) = &result {
        let f = &o.fallback;
        cut = cut.note(&format!(
            "half at {:.2} s, 90 % at {:.2} s; calls that failed and were retried: {}; \
             {} TLS connections cut; first connect of all agents {:.1} s; sessions held \
             {:.0} s before the cut",
            f.secs_p50,
            f.secs_p90,
            f.failed_calls,
            o.cut,
            o.connect_secs,
            o.held.as_secs_f64()
        ));
    }
    cut = cut.note(&target_note);

    let back_all = result.as_ref().map_err(Clone::clone).and_then(|o| {
        let b = &o.back;
        if b.on_tls == b.agents {
            Ok(b.secs_all)
        } else {
            Err(format!(
                "{} of {} agents back on TLS within {} s",
                b.on_tls,
                b.agents,
                LIMIT.as_secs_f64() + probe
            ))
        }
    });
    let mut back = row(
        "websocket → tls",
        &format!("TLS path back: all {n} agents on TLS again"),
        "s",
        back_all,
    );
    if let Ok(o) = &result {
        back = back.note(&format!(
            "half at {:.2} s, 90 % at {:.2} s",
            o.back.secs_p50, o.back.secs_p90
        ));
    }
    back = back.note(&format!(
        "transport_probe_interval {probe} s for the run (default 60): each agent probes TLS \
         after a wait drawn from [{:.1}, {probe}] s",
        probe / 2.0
    ));

    let mut failed = row(
        "websocket → tls",
        "calls that failed during the move back",
        "calls",
        result
            .as_ref()
            .map(|o| o.back.failed_calls as f64)
            .map_err(Clone::clone),
    )
    .target(Some(Target::AtMost(0.0)));
    if let Ok(o) = &result {
        failed = failed.note(&format!(
            "{} calls, `echo` to every agent every {} s through Manager::call, from the \
             reopening until the last agent was on TLS; first failure: {}",
            o.back.calls,
            PACE.as_secs_f64(),
            o.back.first_error.as_deref().unwrap_or("none")
        ));
    }
    vec![cut, back, failed]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_the_dial_limit_plus_the_first_delay_ceiling() {
        let s = Duration::from_secs;
        // A stable session: the first retry is spread over 10 s.
        assert_eq!(target(s(61)), (s(10), s(10)));
        // A young one: the first retry is within the base, 1 s.
        assert_eq!(target(s(0)), (s(10), s(1)));
    }
}
