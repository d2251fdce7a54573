//! Workloads 5, 6 and 7, on one fleet per (transport, placement, size):
//!
//! 1. the manager starts as a real process pinned to side A's CPU (ours: the
//!    `redpepper-manager` library started as its binary starts it; RedPepper: its
//!    `Manager` class); its idle RSS is read from `/proc/PID/status`;
//! 2. a load generator pinned to side B's CPU dials N agents with our agent library,
//!    at most `--storm-concurrency` handshakes at once, full TLS handshakes (no
//!    resumption): total time, handshakes/s, failures (5);
//! 3. once the manager counts them all, its RSS again: bytes per idle agent (7); then
//!    every agent sends one 1 MiB notification and the manager's settled RSS per idle
//!    agent is compared before and after ([`memory`], ours only);
//! 4. the manager calls `echo` on every agent at once, several rounds: the median
//!    time until the last answer (6).
//!
//! N agents are N sessions in one load-generator process, not N processes: 10,000
//! agent processes do not fit this machine, and the manager cannot tell the
//! difference (each session is its own TCP connection, TLS handshake and hello).

pub(crate) mod memory;

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{progress, Ctx, Workload, REDPEPPER};
use crate::placement::Placement;
use redpepper_tests::Proc;

use crate::launcher;
use crate::report::{Better, Row, Target};
use crate::setup::Transport;
use crate::tasks::Burst;

/// The fan-out figure: the median round, and `ok/agents` of every round.
#[derive(Debug, Clone)]
pub(crate) struct Fanout {
    /// The round with the median time.
    pub(crate) median: Burst,
    /// `ok/agents` of every round.
    pub(crate) rounds: String,
}

/// One fleet's figures; each `Err` says why it is missing.
#[derive(Debug, Clone)]
struct Fleet {
    storm: Result<Burst, String>,
    /// Manager CPU seconds spent during the storm.
    storm_cpu: Result<f64, String>,
    /// Agents the manager counted when its RSS was read.
    connected: Option<u64>,
    rss_idle: Result<u64, String>,
    rss_loaded: Result<u64, String>,
    fanout: Result<Fanout, String>,
    /// RSS before and after one large message per agent.
    big: Result<memory::BigMessage, String>,
}

impl Fleet {
    fn failed(reason: String) -> Fleet {
        Fleet {
            storm: Err(reason.clone()),
            storm_cpu: Err(reason.clone()),
            connected: None,
            rss_idle: Err(reason.clone()),
            rss_loaded: Err(reason.clone()),
            fanout: Err(reason.clone()),
            big: Err(reason),
        }
    }

    /// Per agent the manager counted when its RSS was read (fewer than the storm
    /// connected when sessions ended in between, as over an overloaded broker).
    fn per_agent_kib(&self) -> Result<f64, String> {
        let storm = self.storm.as_ref().map_err(Clone::clone)?;
        let idle = self.rss_idle.clone()?;
        let loaded = self.rss_loaded.clone()?;
        let agents = self
            .connected
            .map_or(storm.ok as f64, |n| n as f64)
            .min(storm.ok as f64);
        if agents < 1.0 {
            return Err("no agent connected".to_owned());
        }
        Ok((loaded as f64 - idle as f64) / agents / 1024.0)
    }
}

fn start_manager(
    ctx: &Ctx,
    python: bool,
    transport: Transport,
    cpu: usize,
) -> anyhow::Result<Proc> {
    let mut args = vec![
        "manager".to_owned(),
        "--work".to_owned(),
        ctx.world.dir.display().to_string(),
        "--cpu".to_owned(),
        cpu.to_string(),
    ];
    if python {
        let cmd = ctx.launcher.python(&args).context("Python is off")?;
        return launcher::spawn("rp_bench.py manager", cmd);
    }
    args.extend(
        [
            "--transport",
            transport.as_str(),
            "--amqp-url",
            &ctx.opts.amqp_url,
        ]
        .map(str::to_owned),
    );
    launcher::spawn("manager child", ctx.launcher.ours(&args))
}

fn run_fleet(
    ctx: &Ctx,
    python: bool,
    transport: Transport,
    placement: Placement,
    n: usize,
) -> anyhow::Result<Fleet> {
    let (cpu_a, cpu_b) = placement.cpus(&ctx.cpus)?;
    let manager = start_manager(ctx, python, transport, cpu_a)?;
    let ready = manager.expect("ready", Duration::from_secs(60))?;
    let port = ready
        .get("port")
        .and_then(serde_json::Value::as_u64)
        .context("no port")?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = manager.rss_bytes().map_err(|e| e.to_string());

    let mut args: Vec<String> = vec![
        "loadgen".into(),
        "--work".into(),
        ctx.world.dir.display().to_string(),
        "--cpu".into(),
        cpu_b.to_string(),
        "--transport".into(),
        transport.as_str().into(),
        "--amqp-url".into(),
        ctx.opts.amqp_url.clone(),
        "--port".into(),
        port.to_string(),
        "--agents".into(),
        n.to_string(),
        "--concurrency".into(),
        ctx.opts.storm_concurrency.to_string(),
    ];
    // Our manager over amqp names the hello queue it consumes.
    if let Some(queue) = ready.get("queue").and_then(serde_json::Value::as_str) {
        args.extend(["--amqp-queue".to_owned(), queue.to_owned()]);
    }
    let cpu_before = manager.cpu_secs();
    let loadgen = launcher::spawn("load generator", ctx.launcher.ours(&args))?;
    let limit = Duration::from_secs(120 + (n / 20) as u64);
    let storm: Burst = serde_json::from_value(loadgen.expect("storm", limit)?)?;
    let storm_cpu = match (cpu_before, manager.cpu_secs()) {
        (Ok(before), Ok(after)) => Ok(after - before),
        (Err(e), _) | (_, Err(e)) => Err(format!("{e:#}")),
    };
    if let Some(e) = &storm.first_error {
        progress(&format!("  storm: {} failed, first: {e}", storm.failed));
    }

    // The manager registers an agent just after its hello answer: wait for all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let connected = loop {
        manager.send_line("count").map_err(anyhow::Error::msg)?;
        let count = manager.expect("agents", Duration::from_secs(30))?;
        let count = count.as_u64().unwrap_or(0);
        if count as usize >= storm.ok || Instant::now() > deadline {
            break count;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(1));
    let rss_loaded = manager.rss_bytes().map_err(|e| e.to_string());

    let big = if !ctx.opts.wants(Workload::Memory) {
        Err("not asked for".to_owned())
    } else if python {
        Err("ours only (the Python bench manager counts no notifications)".to_owned())
    } else {
        memory::run(&manager, &loadgen, connected, ctx.opts.quick).map_err(|e| format!("{e:#}"))
    };

    let fanout = if ctx.opts.wants(Workload::Fanout) {
        fanouts(ctx, &manager, n)
    } else {
        Err("not asked for".to_owned())
    };
    loadgen.finish(Duration::from_secs(5));
    manager.finish(Duration::from_secs(5));
    Ok(Fleet {
        storm: Ok(storm),
        storm_cpu,
        connected: Some(connected),
        rss_idle,
        rss_loaded,
        fanout,
        big,
    })
}

/// One fan-out: the manager sends a command to every agent and reports.
fn fanout(manager: &Proc, n: usize) -> anyhow::Result<Burst> {
    manager.send_line("fanout").map_err(anyhow::Error::msg)?;
    let value = manager.expect("fanout", Duration::from_secs(120 + (n / 50) as u64))?;
    Ok(serde_json::from_value(value)?)
}

/// Several fan-outs; the one with the median time.
pub(crate) fn fanouts(ctx: &Ctx, manager: &Proc, n: usize) -> Result<Fanout, String> {
    let mut rounds = Vec::new();
    for _ in 0..ctx.opts.fanout_rounds.max(1) {
        let round = fanout(manager, n).map_err(|e| format!("{e:#}"))?;
        if let Some(e) = &round.first_error {
            progress(&format!("  fan-out: {} failed, first: {e}", round.failed));
        }
        rounds.push(round);
    }
    let summary = rounds
        .iter()
        .map(|r| format!("{}/{}", r.ok, r.agents))
        .collect::<Vec<_>>()
        .join(", ");
    // The median of the rounds that reached every agent the first round saw; a
    // manager that lost agents on the way has no figure, only the round counts.
    let expected = rounds.first().map_or(0, |r| r.agents);
    let mut complete: Vec<Burst> = rounds
        .iter()
        .filter(|r| r.agents == expected && r.failed == 0 && r.ok == expected)
        .cloned()
        .collect();
    if complete.len() < rounds.len() {
        let first_error = rounds.iter().find_map(|r| r.first_error.clone());
        return Err(format!(
            "calls answered per round (ok/agents): {summary}; first error: {}",
            first_error.as_deref().unwrap_or("none")
        ));
    }
    complete.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let median = complete.len() / 2;
    let median = complete
        .into_iter()
        .nth(median)
        .ok_or_else(|| "no round".to_owned())?;
    Ok(Fanout {
        median,
        rounds: summary,
    })
}

/// Run every fleet and make the rows of workloads 5, 6 and 7.
pub fn run(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    // The fleet measures the manager; nginx in front of it changes nothing there.
    let transports = ctx
        .opts
        .transports
        .iter()
        .filter(|&&t| t != Transport::WebsocketNginx);
    for &transport in transports {
        for &placement in &ctx.opts.placements {
            let sizes = if transport == Transport::Amqp {
                &ctx.opts.amqp_agents
            } else {
                &ctx.opts.agents
            };
            for &n in sizes {
                let fleet = |python| {
                    if let (Transport::Amqp, Some(why)) = (transport, &ctx.amqp_off) {
                        return Fleet::failed(why.clone());
                    }
                    if python && ctx.launcher.python.is_none() {
                        return Fleet::failed(ctx.python_off.clone());
                    }
                    if python && transport != Transport::Tls {
                        return Fleet::failed(format!(
                            "RedPepper 0.3.4 has no {transport} transport"
                        ));
                    }
                    let who = if python { REDPEPPER } else { "ours" };
                    progress(&format!(
                        "{transport} {placement} fleet of {n} agents: {who}"
                    ));
                    run_fleet(ctx, python, transport, placement, n)
                        .unwrap_or_else(|e| Fleet::failed(format!("{e:#}")))
                };
                let ours = fleet(false);
                let py = fleet(true);
                rows.extend(fleet_rows(ctx, transport, placement, n, &ours, &py));
            }
        }
    }
    rows
}

fn fleet_rows(
    ctx: &Ctx,
    transport: Transport,
    placement: Placement,
    n: usize,
    ours: &Fleet,
    py: &Fleet,
) -> Vec<Row> {
    let big = n >= 10_000;
    // RedPepper 0.3.4 speaks tls only; its targets apply there only.
    let python = ctx.launcher.python.is_some() && transport == Transport::Tls;
    let vs_redpepper = |t: Target| (python && big).then_some(t);
    // Our figure, against RedPepper 0.3.4's when its baselines are on.
    let row = |workload: &str, metric: &str, unit: &str, better, v, base| {
        let r = Row::new(
            workload,
            transport.as_str(),
            placement.as_str(),
            metric,
            unit,
            better,
            v,
        );
        if python {
            r.against(REDPEPPER, base)
        } else {
            r
        }
    };
    let storm = |f: &Fleet, g: fn(&Burst) -> f64| f.storm.as_ref().map(g).map_err(Clone::clone);
    let mut rows = Vec::new();
    if ctx.opts.wants(Workload::Storm) {
        let w = "5 connect storm";
        let secs = |s: &Burst| s.secs;
        let rate = |s: &Burst| s.ok as f64 / s.secs.max(1e-9);
        let failed = |s: &Burst| s.failed as f64;
        let metric = format!("{n} agents, total");
        rows.push(row(
            w,
            &metric,
            "s",
            Better::Lower,
            storm(ours, secs),
            storm(py, secs),
        ));
        let metric = format!("{n} agents");
        rows.push(
            row(
                w,
                &metric,
                "handshakes/s",
                Better::Higher,
                storm(ours, rate),
                storm(py, rate),
            )
            .target(vs_redpepper(Target::RatioAtLeast(4.0))),
        );
        let cpu = |f: &Fleet| -> Result<f64, String> {
            let storm = f.storm.as_ref().map_err(Clone::clone)?;
            let secs = f.storm_cpu.clone()?;
            if storm.ok == 0 {
                return Err("no agent connected".to_owned());
            }
            if secs <= 0.0 {
                return Err("below the 10 ms resolution of /proc/PID/stat".to_owned());
            }
            Ok(secs / storm.ok as f64 * 1e6)
        };
        let metric = format!("{n} agents, manager CPU per handshake");
        let what = match transport {
            Transport::Amqp => "hello + authentication (no TLS: agents connect to the broker)",
            _ => "TLS + hello + authentication",
        };
        rows.push(
            row(w, &metric, "µs", Better::Lower, cpu(ours), cpu(py)).note(&format!(
                "{what}, all manager threads; 1e6 / this = handshakes/s one manager core can take"
            )),
        );
        let metric = format!("{n} agents, failures");
        let (o, p) = (storm(ours, failed), storm(py, failed));
        rows.push(row(w, &metric, "agents", Better::Lower, o, p));
    }
    if ctx.opts.wants(Workload::Fanout) {
        let fan = |f: &Fleet| {
            f.fanout
                .as_ref()
                .map(|r| r.median.secs)
                .map_err(Clone::clone)
        };
        let metric = format!("one call to {n} agents");
        let mut r = row("6 fan-out", &metric, "s", Better::Lower, fan(ours), fan(py))
            .target(big.then_some(Target::AtMost(1.0)));
        if let Ok(f) = &ours.fanout {
            r = r.note(&format!("median of rounds (ok/agents: {})", f.rounds));
        }
        rows.push(r);
    }
    if ctx.opts.wants(Workload::Memory) {
        let w = "7 memory";
        let mib = |r: &Result<u64, String>| r.clone().map(|b| b as f64 / (1024.0 * 1024.0));
        let (o, p) = (mib(&ours.rss_idle), mib(&py.rss_idle));
        rows.push(row(w, "manager RSS idle", "MiB", Better::Lower, o, p));
        let metric = format!("manager RSS with {n} agents");
        let (o, p) = (mib(&ours.rss_loaded), mib(&py.rss_loaded));
        rows.push(row(w, &metric, "MiB", Better::Lower, o, p));
        let metric = format!("per idle agent ({n})");
        let (o, p) = (ours.per_agent_kib(), py.per_agent_kib());
        let mut r = row(w, &metric, "KiB", Better::Lower, o, p).target(Some(Target::AtMost(20.0)));
        match (ours.connected, py.connected) {
            (Some(a), Some(b)) if python => {
                r = r.note(&format!(
                    "agents connected when measured: ours {a}, RedPepper {b}"
                ));
            }
            (Some(a), _) => r = r.note(&format!("agents connected when measured: {a}")),
            _ => {}
        }
        rows.push(r);
        let big = |f: &Fleet| -> Result<(f64, f64, f64), String> {
            let idle = f.rss_idle.clone()?;
            f.big.as_ref().map_err(Clone::clone)?.per_agent_kib(idle)
        };
        let (o, p) = (big(ours), big(py));
        let pick = |r: &Result<(f64, f64, f64), String>, i: usize| {
            r.clone()
                .map(|(before, after, delta)| [before, after, delta][i])
        };
        let phases = ["before", "after", "delta"];
        for (i, phase) in phases.iter().enumerate() {
            let metric = format!("per idle agent ({n}), one 1 MiB message each: {phase}");
            let mut r = row(w, &metric, "KiB", Better::Lower, pick(&o, i), pick(&p, i));
            if *phase == "delta" {
                r = r.target(Some(Target::AtMost(4.0)));
                if let Ok(b) = &ours.big {
                    r = r.note(&b.note());
                }
            }
            rows.push(r);
        }
    }
    rows
}
