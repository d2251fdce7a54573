//! Workload 9: N agents (10,000 by default) arriving at once and retrying as the agent
//! program does, with an ECDSA P-256 and with an RSA-2048 manager certificate; then
//! the same fleet losing its long-lived sessions at once (the manager killed and
//! started again on the same port).
//!
//! Per (key, placement):
//!
//! 1. our manager (`child storm-manager`) starts on side A's CPU;
//! 2. its handshake rate, closed loop: a few agents on side B's CPU connect (full TLS
//!    handshake and hello) and say Bye, over and over ([`RATE_CLIENTS`] at once);
//! 3. the storm: N agents start at once on side B's CPU (one process, one task each),
//!    each running `Agent::run`, the agent program's loop: its dialer's connect timeout
//!    (10 s for TCP + TLS), its hello timeout (3 s), its backoff. Reported: the time
//!    until every agent has a session, against N / the rate (target: within 1.25x);
//!    the manager's handshake work spent on agents that did not get a session
//!    (ClientHellos it answered minus sessions, counted in the manager: target under
//!    10 %); the longest dial any agent waited against its connect timeout;
//! 4. with `--storm-hold` > 0: once every session has lived that long (the agent's
//!    backoff counts a session of 60 s or more as stable), the manager is killed
//!    (SIGKILL) and started again on the same port, and the same figures are taken
//!    from the kill until every agent has a new session.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use redpepper_devcerts::{ManagerKey, DEFAULT_SERVER_NAMES};
use redpepper_tests::Proc;

use super::{progress, Ctx};
use crate::child::storm::{ManagerStats, Phase, Rate};
use crate::launcher;
use crate::placement::Placement;
use crate::report::{Better, Row, Target};

/// Agents in the closed loop that measures the manager's handshake rate.
pub const RATE_CLIENTS: usize = 8;

/// The manager certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum KeyKind {
    /// ECDSA P-256 (the development certificates' default).
    Ecdsa,
    /// RSA-2048.
    Rsa2048,
}

impl KeyKind {
    /// Name in the table and in the certificate directory.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ecdsa => "ECDSA P-256",
            KeyKind::Rsa2048 => "RSA-2048",
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            KeyKind::Ecdsa => "certs-ecdsa",
            KeyKind::Rsa2048 => "certs-rsa2048",
        }
    }
}

/// Generate the certificates of `key` under `work` (a CA, the manager's certificate
/// with that key, the agent's); their directory.
pub fn certificates(work: &Path, key: KeyKind) -> anyhow::Result<PathBuf> {
    let dir = work.join(key.dir_name());
    match key {
        KeyKind::Ecdsa => {
            redpepper_devcerts::generate(&dir)?;
        }
        KeyKind::Rsa2048 => {
            // ring (rcgen's backend) cannot generate RSA keys: openssl does.
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .output()
                .context("running openssl genpkey (the RSA-2048 manager key)")?;
            anyhow::ensure!(
                out.status.success(),
                "openssl genpkey failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let pem = String::from_utf8(out.stdout).context("openssl's key is not text")?;
            redpepper_devcerts::generate_with(
                &dir,
                DEFAULT_SERVER_NAMES,
                ManagerKey::Pkcs8Pem(&pem),
            )?;
        }
    }
    Ok(dir)
}

/// One storm's figures.
#[derive(Debug, Clone)]
struct Outcome {
    rate: Rate,
    storm: Phase,
    /// Manager counts over the storm only (after the rate's).
    storm_manager: ManagerStats,
    /// Sessions the manager established during the closed loop (warm-up included).
    rate_sessions: u64,
    /// Manager CPU seconds during the closed loop and during the storm.
    cpu: Result<(f64, f64), String>,
    /// After the restart, when asked for: the agents' and the new manager's figures.
    restart: Option<Result<(Phase, ManagerStats), String>>,
}

fn start_manager(ctx: &Ctx, certs: &Path, cpu: usize, port: u16) -> anyhow::Result<(Proc, u16)> {
    let args = [
        "storm-manager".to_owned(),
        "--work".to_owned(),
        ctx.world.dir.display().to_string(),
        "--cpu".to_owned(),
        cpu.to_string(),
        "--certs".to_owned(),
        certs.display().to_string(),
        "--port".to_owned(),
        port.to_string(),
    ];
    let manager = launcher::spawn("storm manager", ctx.launcher.ours(&args))?;
    let ready = manager.expect("ready", Duration::from_secs(60))?;
    let port = ready
        .get("port")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .context("the storm manager named no port")?;
    Ok((manager, port))
}

fn manager_stats(manager: &Proc) -> anyhow::Result<ManagerStats> {
    manager.send_line("stats").map_err(anyhow::Error::msg)?;
    Ok(serde_json::from_value(
        manager.expect("stats", Duration::from_secs(30))?,
    )?)
}

fn client_args(ctx: &Ctx, certs: &Path, cpu: usize, port: u16, mode: &str) -> Vec<String> {
    [
        "storm-client",
        "--work",
        &ctx.world.dir.display().to_string(),
        "--cpu",
        &cpu.to_string(),
        "--certs",
        &certs.display().to_string(),
        "--port",
        &port.to_string(),
        "--mode",
        mode,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run_one(ctx: &Ctx, key: KeyKind, placement: Placement, n: usize) -> anyhow::Result<Outcome> {
    let o = &ctx.opts;
    let certs = certificates(&ctx.world.dir, key)?;
    let (cpu_a, cpu_b) = placement.cpus(&ctx.cpus)?;
    let (manager, port) = start_manager(ctx, &certs, cpu_a, 0)?;

    let mut args = client_args(ctx, &certs, cpu_b, port, "rate");
    args.extend([
        "--concurrency".to_owned(),
        RATE_CLIENTS.to_string(),
        "--secs".to_owned(),
        o.secs.to_string(),
    ]);
    let cpu_start = manager.cpu_secs();
    let rate_client = launcher::spawn("storm rate client", ctx.launcher.ours(&args))?;
    let rate: Rate = serde_json::from_value(
        rate_client.expect("rate", Duration::from_secs_f64(60.0 + 3.0 * o.secs))?,
    )?;
    rate_client.finish(Duration::from_secs(5));
    let before = manager_stats(&manager)?;
    let cpu_rate = manager.cpu_secs();

    let mut args = client_args(ctx, &certs, cpu_b, port, "storm");
    let limit = 120.0 + n as f64 / 20.0;
    args.extend([
        "--agents".to_owned(),
        n.to_string(),
        "--limit".to_owned(),
        limit.to_string(),
    ]);
    let fleet = launcher::spawn("storm agents", ctx.launcher.ours(&args))?;
    let wait = Duration::from_secs_f64(limit + 60.0);
    let storm: Phase = serde_json::from_value(fleet.expect("storm", wait)?)?;
    let connected_at = Instant::now();
    let after = manager_stats(&manager)?;
    let cpu_storm = manager.cpu_secs();
    let cpu = match (cpu_start, cpu_rate, cpu_storm) {
        (Ok(a), Ok(b), Ok(c)) => Ok((b - a, c - b)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(format!("{e:#}")),
    };
    let storm_manager = ManagerStats {
        client_hellos: after.client_hellos.saturating_sub(before.client_hellos),
        sessions: after.sessions.saturating_sub(before.sessions),
        hello_failures: after.hello_failures.saturating_sub(before.hello_failures),
        evicted: after.evicted.saturating_sub(before.evicted),
        refused: after.refused.saturating_sub(before.refused),
        agents: after.agents,
    };
    progress(&format!(
        "  {}: all {}/{} connected in {:.2} s, manager: {:?}",
        key.as_str(),
        storm.connected,
        n,
        storm.secs_all,
        storm_manager
    ));

    let restart = (o.storm_hold > 0.0 && storm.connected == n).then(|| {
        let hold = Duration::from_secs_f64(o.storm_hold);
        let held = connected_at.elapsed();
        if held < hold {
            progress(&format!(
                "  holding every session {:.0} s (a stable session for the backoff)",
                hold.as_secs_f64()
            ));
            std::thread::sleep(hold - held);
        }
        restart(ctx, &fleet, manager, &certs, cpu_a, port, wait).map_err(|e| format!("{e:#}"))
    });
    fleet.finish(Duration::from_secs(10));
    Ok(Outcome {
        rate,
        storm,
        storm_manager,
        rate_sessions: before.sessions,
        cpu,
        restart,
    })
}

/// Kill the manager, start it again on the same port, and wait for every agent.
fn restart(
    ctx: &Ctx,
    fleet: &Proc,
    manager: Proc,
    certs: &Path,
    cpu: usize,
    port: u16,
    wait: Duration,
) -> anyhow::Result<(Phase, ManagerStats)> {
    fleet.send_line("mark").map_err(anyhow::Error::msg)?;
    fleet.expect("marked", Duration::from_secs(30))?;
    manager.kill();
    manager.finish(Duration::from_secs(5));
    let (manager, _) = start_manager(ctx, certs, cpu, port)?;
    let phase: Phase = serde_json::from_value(fleet.expect("reconnect", wait)?)?;
    let stats = manager_stats(&manager)?;
    progress(&format!(
        "  after the restart: all {}/{} connected in {:.2} s, manager: {stats:?}",
        phase.connected, phase.agents, phase.secs_all
    ));
    manager.finish(Duration::from_secs(5));
    Ok((phase, stats))
}

/// Run every storm and make the rows of workload 9.
pub fn run(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    let n = ctx.opts.storm_agents;
    for &key in &ctx.opts.storm_keys {
        for &placement in &ctx.opts.placements {
            progress(&format!(
                "tls {placement} storm of {n} agents at once, {} manager certificate",
                key.as_str()
            ));
            let outcome = run_one(ctx, key, placement, n).map_err(|e| format!("{e:#}"));
            if let Err(e) = &outcome {
                progress(&format!("  storm failed: {e}"));
            }
            rows.extend(storm_rows(key, placement, n, &outcome));
        }
    }
    rows
}

/// The share of the manager's handshake work spent on agents that got no session.
fn wasted(m: &ManagerStats) -> Result<f64, String> {
    if m.client_hellos == 0 {
        return Err("the manager answered no ClientHello".to_owned());
    }
    Ok(m.client_hellos.saturating_sub(m.sessions) as f64 / m.client_hellos as f64 * 100.0)
}

fn handshake_rate(r: &Rate) -> Result<f64, String> {
    if r.handshakes == 0 {
        return Err(format!(
            "no handshake in the closed loop; first error: {}",
            r.first_error.as_deref().unwrap_or("none")
        ));
    }
    Ok(r.handshakes as f64 / r.secs)
}

/// Makes a row of one storm: metric, unit, which way is better, our figure.
type MakeRow<'a> = &'a dyn Fn(&str, &str, Better, Result<f64, String>) -> Row;

fn phase_rows(
    row: MakeRow<'_>,
    what: &str,
    n: usize,
    phase: &Phase,
    manager: &ManagerStats,
    rate: Result<f64, String>,
    at_once: bool,
) -> Vec<Row> {
    let all = if phase.connected == phase.agents {
        Ok(phase.secs_all)
    } else {
        Err(format!(
            "{} of {} agents connected before the limit; first error: {}",
            phase.connected,
            phase.agents,
            phase.first_error.as_deref().unwrap_or("none")
        ))
    };
    let ideal = rate.map(|r| n as f64 / r);
    let ratio = match (&all, &ideal) {
        (Ok(t), Ok(i)) if *i > 0.0 => Ok(t / i),
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        _ => Err("no rate".to_owned()),
    };
    let mut rows = vec![
        row(&format!("{what}: all connected"), "s", Better::Lower, all).note(&format!(
            "half at {:.2} s, 90 % at {:.2} s",
            phase.secs_p50, phase.secs_p90
        )),
        row(
            &format!("{what}: all connected / (N / rate)"),
            "x",
            Better::Lower,
            ratio,
        )
        // After a restart the backoff spreads the fleet on purpose: no target.
        .target(at_once.then_some(Target::AtMost(1.25))),
        row(
            &format!("{what}: handshake work wasted"),
            "%",
            Better::Lower,
            wasted(manager),
        )
        .target(Some(Target::AtMost(10.0)))
        .note(&format!(
            "ClientHellos the manager answered {}, sessions {}, hellos failed {}, closed to \
             make room {}",
            manager.client_hellos, manager.sessions, manager.hello_failures, manager.evicted
        )),
        row(
            &format!("{what}: longest wait on one dial"),
            "s",
            Better::Lower,
            Ok(phase.max_dial_secs),
        )
        // A dial that hit the timeout ends a few ms past it (timer wheel, scheduling).
        .target(Some(Target::AtMost(phase.connect_timeout_secs + 0.1)))
        .note(&format!(
            "the agent's connect timeout is {:.0} s (TCP + TLS), + 0.1 s for the timer; longest attempt that got a \
             session (dial + hello): {:.2} s",
            phase.connect_timeout_secs, phase.max_attempt_secs
        )),
    ];
    rows.push(
        row(
            &format!("{what}: attempts per agent"),
            "attempts",
            Better::Lower,
            Ok(phase.attempts as f64 / phase.agents.max(1) as f64),
        )
        .note(&format!(
            "most by one agent {}; dials timed out {}, failed otherwise {}, hellos failed {}",
            phase.max_attempts, phase.dial_timeouts, phase.dial_errors, phase.hello_failures
        )),
    );
    rows
}

fn storm_rows(
    key: KeyKind,
    placement: Placement,
    n: usize,
    outcome: &Result<Outcome, String>,
) -> Vec<Row> {
    let w = "9 storm at once";
    let row = |metric: &str, unit: &str, better, v: Result<f64, String>| {
        Row::new(
            w,
            "tls",
            placement.as_str(),
            &format!("{}, {metric}", key.as_str()),
            unit,
            better,
            v,
        )
    };
    let o = match outcome {
        Ok(o) => o,
        Err(e) => {
            return vec![row(
                &format!("{n} at once: all connected"),
                "s",
                Better::Lower,
                Err(e.clone()),
            )]
        }
    };
    let rate = handshake_rate(&o.rate);
    let mut rows = vec![row(
        &format!("handshake rate, closed loop of {}", o.rate.concurrency),
        "handshakes/s",
        Better::Higher,
        rate.clone(),
    )
    .note(&format!(
        "full TLS handshake + hello + Bye; failures {}",
        o.rate.failures
    ))];
    let per_session = |secs: f64, sessions: u64| -> Result<f64, String> {
        if sessions == 0 || secs <= 0.0 {
            return Err("no session, or below /proc's 10 ms CPU tick".to_owned());
        }
        Ok(secs / sessions as f64 * 1e6)
    };
    let (closed, storm) = match &o.cpu {
        Ok((closed, storm)) => (
            per_session(*closed, o.rate_sessions),
            per_session(*storm, o.storm_manager.sessions),
        ),
        Err(e) => (Err(e.clone()), Err(e.clone())),
    };
    rows.push(
        row(
            &format!("{n} at once: manager CPU per session"),
            "µs",
            Better::Lower,
            storm,
        )
        .against("closed loop", closed)
        .note("all manager threads, TLS + hello + authentication; the closed loop's includes its Byes"),
    );
    rows.extend(phase_rows(
        &row,
        &format!("{n} at once"),
        n,
        &o.storm,
        &o.storm_manager,
        rate.clone(),
        true,
    ));
    match &o.restart {
        Some(Ok((phase, manager))) => rows.extend(phase_rows(
            &row,
            &format!("{n} after a manager restart"),
            n,
            phase,
            manager,
            rate,
            false,
        )),
        Some(Err(e)) => rows.push(row(
            &format!("{n} after a manager restart: all connected"),
            "s",
            Better::Lower,
            Err(e.clone()),
        )),
        None => {}
    }
    rows
}
