//! `redpepper-bench`: every workload over every transport, side by side with the
//! transport's raw limit and with RedPepper 0.3.4, measured in one run on one
//! machine. Prints a markdown table and writes JSON. These are benchmarks, not
//! tests: nothing here judges a duration except against the issue's targets, which
//! are reported, never asserted.
//!
//! ```text
//! cargo run --release -p redpepper-bench -- [--quick] [--no-python] [--json PATH]
//!     [--transports tls,websocket,amqp] [--placement same-core|cross-core|both]
//!     [--agents 1000,10000] [--workloads rtt,pipeline,notify,payload,storm,fanout,memory,codec,storm-at-once,
//!                            cluster-calls,cluster-fanout,cluster-failover,cluster-memory,
//!                            broker-failover,transport-fallback]
//!     [--cluster-agents 10000] [--failover-agents 1000] [--cluster-hold 61]
//!     [--fallback-agents 1000] [--fallback-probe-interval 5]
//! ```
//!
//! # Layout
//!
//! - `main.rs`: flags, the scratch world, the order of the workloads, output.
//! - [`workloads`]: one module per workload; [`workloads::pair`] runs the
//!   two-process measurements, [`workloads::fleet`] the manager and load generator.
//! - [`child`]: the measured processes (the binary re-runs itself as `child ...`).
//! - [`placement`]: CPU pinning and the open-file limit.
//! - [`nginx`]: nginx in front of the WebSocket endpoint (`websocket-nginx`).
//! - [`broker`]: the RabbitMQ of the `amqp` rows and of the cluster workloads (the
//!   one at `--amqp-url`, or a private node started for the run).
//! - [`setup`]: the scratch world: certificates, `agents.yml`, configurations.
//!
//! Process supervision, certificates, nginx, free ports, `agents.yml` and YAML
//! quoting come from the end-to-end tests' harness, `redpepper-tests`: one of each.
//! - [`launcher`]: how the measured processes are started (`chrt`, our `child`
//!   subcommands, the Python helper); they run as the test harness' `Proc`.
//! - [`tasks`], [`stats`]: what a driving peer runs and reports; percentiles.
//! - [`report`]: rows, ratios, targets, markdown and JSON.
//! - `python/rp_bench.py`: the RedPepper 0.3.4 side.

/// jemalloc: with glibc malloc, allocation was the largest cost of ours on the message
/// path (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod broker;
mod child;
mod launcher;
mod nginx;
mod placement;
mod report;
mod setup;
mod stats;
mod tasks;
mod workloads;

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use crate::launcher::Launcher;
use crate::placement::Placement;
use crate::report::{Meta, Report, Row};
use crate::setup::{Transport, World};
use crate::workloads::pair::{self, Driver, Impl};
use crate::workloads::{Ctx, Options, Workload};

/// Benchmarks of RedPepper-rs against raw transports and RedPepper 0.3.4.
#[derive(Debug, Parser)]
#[command(name = "redpepper-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A measured process (started by the benchmark itself).
    #[command(hide = true, subcommand)]
    Child(child::ChildCommand),
}

/// Where the two sides run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlacementArg {
    /// Both sides pinned to one core.
    SameCore,
    /// Each side on its own core.
    CrossCore,
    /// Both placements, reported separately.
    Both,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Seconds, not minutes: tiny durations and fleets, to check the tool works
    /// (figures are not meaningful). Python baselines only with --python.
    #[arg(long)]
    quick: bool,
    /// Skip the RedPepper 0.3.4 (Python) baselines.
    #[arg(long)]
    no_python: bool,
    /// Python interpreter with RedPepper 0.3.4 installed (default: the workspace
    /// .venv that scripts/test creates).
    #[arg(long, env = "REDPEPPER_PYTHON")]
    python: Option<PathBuf>,
    /// Transports to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tls,websocket,websocket-nginx,amqp"
    )]
    transports: Vec<String>,
    /// CPU placement of the two sides.
    #[arg(long, value_enum, default_value = "both")]
    placement: PlacementArg,
    /// Fleet sizes of the storm, fan-out and memory workloads (default 1000,10000; for
    /// amqp 1000 unless given here).
    #[arg(long, value_delimiter = ',')]
    agents: Option<Vec<usize>>,
    /// Workloads to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    workloads: Option<Vec<Workload>>,
    /// Measured seconds per task (default 2, quick 0.15).
    #[arg(long)]
    secs: Option<f64>,
    /// Most agent handshakes in flight during a connect storm.
    #[arg(long, default_value_t = 200)]
    storm_concurrency: usize,
    /// Agents of the all-at-once storm (workload storm-at-once; default 10000, quick 20).
    #[arg(long)]
    storm_agents: Option<usize>,
    /// Manager certificate keys of the all-at-once storm.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ecdsa,rsa2048"
    )]
    storm_keys: Vec<workloads::storm::KeyKind>,
    /// Seconds every session of the all-at-once storm lives before the manager is
    /// killed and started again (default 61: the agent's backoff counts a session of 60 s
    /// as stable; quick 0.2; 0: no restart).
    #[arg(long)]
    storm_hold: Option<f64>,
    /// Agents of the cluster fan-out and memory workloads, split over two nodes for
    /// the fan-out, all on the other node for the memory (default 10000, quick 20).
    #[arg(long)]
    cluster_agents: Option<usize>,
    /// Agents on the node killed by the cluster failover workload, and AMQP agents of
    /// the broker failover (default 1000, quick 20).
    #[arg(long)]
    failover_agents: Option<usize>,
    /// Seconds every session of the cluster and broker failovers lives before the node
    /// is killed, and of the transport fallback before the TLS path is cut
    /// (default 61: the agent's backoff counts a session of 60 s as stable, as a real
    /// fleet's are; quick 0).
    #[arg(long)]
    cluster_hold: Option<f64>,
    /// Agents of the transport fallback, `transport: [tls, websocket]` (default 1000,
    /// quick 20).
    #[arg(long)]
    fallback_agents: Option<usize>,
    /// The fallback agents' `transport_probe_interval` in seconds: each probes TLS again
    /// after a wait drawn from half of it to all of it (default 5, quick 1; the
    /// agent's own default is 60).
    #[arg(long)]
    fallback_probe_interval: Option<f64>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Broker URL for the amqp transport. When nothing answers there, a private
    /// RabbitMQ node is started for the run (if RabbitMQ is installed) and stopped at
    /// the end.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// Run the measured processes with real-time round-robin scheduling (`chrt -r 1`,
    /// needs root or CAP_SYS_NICE): on a machine with other load, their wake-ups then
    /// do not wait for other processes' time slices. Same for every implementation.
    #[arg(long)]
    realtime: bool,
    /// Keep the scratch directory (certificates, configurations) for a post-mortem.
    #[arg(long)]
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Child(cmd)) => child::main(cmd),
        None => run(cli.run),
    }
}

fn options(args: &RunArgs) -> anyhow::Result<Options> {
    let transports = args
        .transports
        .iter()
        .map(|t| Transport::parse(t.trim()).with_context(|| format!("unknown transport {t}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let placements = match args.placement {
        PlacementArg::SameCore => vec![Placement::SameCore],
        PlacementArg::CrossCore => vec![Placement::CrossCore],
        PlacementArg::Both => vec![Placement::SameCore, Placement::CrossCore],
    };
    let quick = args.quick;
    let secs = args.secs.unwrap_or(if quick { 0.15 } else { 2.0 });
    let all = Workload::value_variants().to_vec();
    let mut workloads = args.workloads.clone().unwrap_or(all);
    workloads.sort();
    workloads.dedup();
    Ok(Options {
        quick,
        transports,
        placements,
        agents: args.agents.clone().unwrap_or_else(|| {
            if quick {
                vec![20]
            } else {
                vec![1000, 10_000]
            }
        }),
        amqp_agents: args
            .agents
            .clone()
            .unwrap_or_else(|| if quick { vec![20] } else { vec![1000] }),
        workloads,
        secs,
        warmup: if quick { 0.05 } else { 0.3 },
        storm_concurrency: args.storm_concurrency,
        storm_agents: args.storm_agents.unwrap_or(if quick { 20 } else { 10_000 }),
        storm_keys: args.storm_keys.clone(),
        storm_hold: args.storm_hold.unwrap_or(if quick { 0.2 } else { 61.0 }),
        fanout_rounds: if quick { 2 } else { 5 },
        amqp_url: args.amqp_url.clone(),
        cluster_agents: args
            .cluster_agents
            .unwrap_or(if quick { 20 } else { 10_000 }),
        failover_agents: args
            .failover_agents
            .unwrap_or(if quick { 20 } else { 1000 }),
        cluster_hold: args.cluster_hold.unwrap_or(if quick { 0.0 } else { 61.0 }),
        fallback_agents: args
            .fallback_agents
            .unwrap_or(if quick { 20 } else { 1000 }),
        fallback_probe_interval: args.fallback_probe_interval.unwrap_or(if quick {
            1.0
        } else {
            5.0
        }),
    })
}

/// The Python interpreter to use, or `None` for no Python baselines.
fn python(args: &RunArgs) -> anyhow::Result<Option<PathBuf>> {
    if args.no_python || (args.quick && args.python.is_none()) {
        return Ok(None);
    }
    let path = args.python.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(".venv")
            .join("bin")
            .join("python")
    });
    if !path.exists() {
        bail!(
            "Python interpreter {} not found: run scripts/test once (it creates the venv with \
             RedPepper 0.3.4), pass --python PATH, or --no-python",
            path.display()
        );
    }
    Ok(Some(path))
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut opts = options(&args)?;
    let python = python(&args)?;
    let cpus = placement::allowed_cpus()?;
    let mut meta = Meta {
        date: utc_now(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        cpu: cpu_model(),
        cpus: cpus.clone(),
        load_before: loadavg(),
        git: git_describe(),
        quick: opts.quick,
        secs_per_task: opts.secs,
        python: python.as_ref().map(|p| p.display().to_string()),
        ..Meta::default()
    };
    // Every workload but the codec's runs over the transports; the cluster's nodes
    // always talk through the broker.
    let over_amqp = (opts.transports.contains(&Transport::Amqp)
        && opts.workloads.iter().any(|w| {
            ![
                Workload::Codec,
                Workload::BrokerFailover,
                Workload::TransportFallback,
            ]
            .contains(w)
                && !w.is_cluster()
        }))
        || opts.workloads.iter().any(|w| w.is_cluster());
    let broker = over_amqp.then(|| broker::for_run(&opts.amqp_url));
    let amqp_off = match &broker {
        Some(Err(why)) => Some(why.clone()),
        _ => None,
    };
    if let Some(Ok(b)) = &broker {
        opts.amqp_url.clone_from(&b.url);
    }
    meta.amqp_broker = broker.as_ref().map(|b| match b {
        Ok(b) => b.describe.clone(),
        Err(why) => format!("none: {why}"),
    });
    meta.notes = notes(&opts);
    if args.realtime {
        meta.notes.push(
            "measured processes ran with real-time round-robin scheduling (chrt -r 1)".to_owned(),
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("redpepper-bench-")
        .tempdir()?;
    let mut fleet = opts.agents.iter().copied().max().unwrap_or(0);
    if opts.workloads.iter().any(|w| w.is_cluster()) {
        fleet = fleet
            .max(opts.cluster_agents)
            .max(opts.failover_agents)
            .max(2);
    }
    if opts.wants(Workload::TransportFallback) {
        fleet = fleet.max(opts.fallback_agents);
    }
    let world = World::create(scratch.path(), fleet, &opts.amqp_url)?;
    let ctx = Ctx {
        opts,
        world,
        launcher: Launcher {
            exe: std::env::current_exe()?,
            python,
            script: launcher::default_script(),
            realtime: args.realtime,
        },
        cpus,
        python_off: if args.quick && !args.no_python {
            "Python baselines off (quick mode; pass --python to include them)".to_owned()
        } else {
            "Python baselines off (--no-python)".to_owned()
        },
        amqp_off,
    };
    let rows = measure(&ctx);
    if let Some(Ok(b)) = broker {
        workloads::progress(&format!("done with the broker: {}", b.describe));
        drop(b);
    }
    meta.load_after = loadavg();
    let report = Report { meta, rows };
    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.keep {
        let kept = scratch.keep();
        eprintln!("[bench] scratch directory kept: {}", kept.display());
    }
    Ok(())
}

/// Every asked-for workload, in the issue's order.
fn measure(ctx: &Ctx) -> Vec<Row> {
    let o = &ctx.opts;
    let mut rows = Vec::new();
    let pair_workloads = [
        Workload::Rtt,
        Workload::Pipeline,
        Workload::Notify,
        Workload::Payload,
    ];
    if pair_workloads.iter().any(|w| o.wants(*w)) {
        let results = pair::run_all(ctx, |imp: Impl, driver: Driver| {
            let mut tasks = Vec::new();
            if o.wants(Workload::Rtt) {
                tasks.extend(workloads::rtt::tasks(ctx, imp, driver));
            }
            if o.wants(Workload::Pipeline) {
                tasks.extend(workloads::pipeline::tasks(ctx, imp, driver));
            }
            if o.wants(Workload::Notify) {
                tasks.extend(workloads::notify::tasks(ctx, imp, driver));
            }
            if o.wants(Workload::Payload) {
                tasks.extend(workloads::payload::tasks(ctx, imp, driver));
            }
            tasks
        });
        type RowsFn = fn(&pair::PairResults, Transport, Placement) -> Vec<Row>;
        let makers: [(Workload, RowsFn); 4] = [
            (Workload::Rtt, workloads::rtt::rows),
            (Workload::Pipeline, workloads::pipeline::rows),
            (Workload::Notify, workloads::notify::rows),
            (Workload::Payload, workloads::payload::rows),
        ];
        for (w, make) in makers {
            if !o.wants(w) {
                continue;
            }
            for &t in &o.transports {
                for &p in &o.placements {
                    rows.extend(make(&results, t, p));
                }
            }
        }
    }
    if [Workload::Storm, Workload::Fanout, Workload::Memory]
        .iter()
        .any(|w| o.wants(*w))
    {
        rows.extend(workloads::fleet::run(ctx));
    }
    if o.wants(Workload::Codec) {
        rows.extend(workloads::codec::run(ctx));
    }
    if o.wants(Workload::StormAtOnce) && o.transports.contains(&Transport::Tls) {
        rows.extend(workloads::storm::run(ctx));
    }
    if o.workloads.iter().any(|w| w.is_cluster()) {
        rows.extend(workloads::cluster::run(ctx));
    }
    if o.wants(Workload::BrokerFailover) {
        rows.extend(workloads::brokers::run(ctx));
    }
    if o.wants(Workload::TransportFallback) {
        rows.extend(workloads::fallback::run(ctx));
    }
    rows
}

fn notes(o: &Options) -> Vec<String> {
    let mut notes = vec![
        "two-process workloads (1-4): one process per side, each pinned with \
         sched_setaffinity before it starts a thread; ours = redpepper-core sessions \
         (Session::accept / Session::connect) over the transports factory's listener and \
         dialer, one current-thread tokio runtime per process"
            .to_owned(),
        "raw baseline (tls): the same factory transport (TCP, rustls, 4-byte length frames) \
         with no session layer: a batching echo server and a closed-loop client, frames the \
         size of our encoded requests"
            .to_owned(),
        "RedPepper 0.3.4: its Manager and Agent classes and their Connection/RPC layer \
         (bench/python/rp_bench.py), logging off, same certificates (ECDSA P-256), pinned \
         the same way"
            .to_owned(),
        format!(
            "fleet workloads (5-7): manager as a real process (ours: Manager::start on a \
             multi-threaded runtime, as the redpepper-manager binary; RedPepper: its Manager), \
             N agents as N sessions of our agent library in one load-generator process, at \
             most {} handshakes in flight, TLS resumption off; RSS from /proc/PID/status",
            o.storm_concurrency
        ),
        "side A (manager, echo server) on the first allowed CPU, side B (agent, client) on \
         the same CPU (same-core) or the second (cross-core)"
            .to_owned(),
    ];
    if o.workloads.iter().any(|w| w.is_cluster()) {
        notes.push(
            "cluster workloads (10-13): every manager node a real process (Manager::start \
             with a cluster: section: a private cluster name per setup, heartbeat 1 s, \
             dead_after 3), joined through the run's broker (every message between nodes \
             crosses it); node A pinned to side A's CPU, node B and the agents to side B's \
             (cross-core when asked for), the broker on any CPU; agents over TLS, each \
             running the agent program's reconnecting loop (Agent::run) in one process per \
             node; the raw lapin round trip is workload 1's amqp baseline"
                .to_owned(),
        );
    }
    if o.transports.contains(&Transport::Amqp) {
        notes.push(
            "amqp: both sides connect to the broker (not pinned: it runs on any allowed CPU); \
             ours = our AMQP transport with its defaults (publisher confirms, mandatory \
             publishes, exclusive queues, manual acknowledgements in bursts, prefetch 512); \
             each of our managers consumes a hello queue of its own; raw baseline = lapin \
             alone through the same broker doing the same per message \
             (bench/src/child/raw_amqp.rs): an echo server (the agent's channel layout) \
             publishing every body back to the client's queue and a closed-loop client (the \
             manager's channel layout), bodies the size of our encoded requests; \
             in the fleets every agent opens its own broker connection, as the agent does, \
             with 4 KiB frames (frame_max=4096: lapin's buffers take 8 MiB per connection at \
             the broker's 128 KiB)"
                .to_owned(),
        );
    }
    notes
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn git_describe() -> Option<String> {
    let out = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
