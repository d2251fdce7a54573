//! Two-process measurements: one listening process (the manager side, or the echo
//! server) pinned to side A's CPU and one dialing process (the agent side, or the
//! echo client) pinned to side B's, for every implementation:
//!
//! | implementation | listening side                         | dialing side                          |
//! |----------------|----------------------------------------|---------------------------------------|
//! | ours           | `child pair-server --stack ours`       | `child pair-client --stack ours`      |
//! | raw            | `child pair-server --stack raw` (echo) | `child pair-client --stack raw`       |
//! | RedPepper      | `rp_bench.py pair-server` (Manager)    | `rp_bench.py pair-client` (Agent)     |
//!
//! The driving side (the caller) is the manager side for manager→agent and the agent
//! side for agent→manager; it runs every task of the run on one connection and prints
//! one result per task.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use redpepper_tests::Proc;

use super::{progress, Ctx};
use crate::launcher;
use crate::placement::Placement;
use crate::setup::Transport;
use crate::tasks::{Task, TaskResult};

/// Whose code runs on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impl {
    /// Our session layer over our transport.
    Ours,
    /// The transport alone (echo).
    Raw,
    /// RedPepper 0.3.4 (Python).
    Python,
}

/// Which side calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Driver {
    /// The manager calls the agent.
    Manager,
    /// The agent calls the manager (for raw: the client drives).
    Agent,
}

impl Driver {
    /// Direction as shown in the table.
    pub fn direction(self) -> &'static str {
        match self {
            Driver::Manager => "manager→agent",
            Driver::Agent => "agent→manager",
        }
    }
}

/// One two-process run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunKey {
    /// Transport.
    pub transport: Transport,
    /// Placement.
    pub placement: Placement,
    /// Implementation.
    pub imp: Impl,
    /// Driving side.
    pub driver: Driver,
}

impl RunKey {
    /// The keys of the runs over `transport` in `placement`, by implementation
    /// and driving side.
    pub fn of(transport: Transport, placement: Placement) -> impl Fn(Impl, Driver) -> RunKey {
        move |imp, driver| RunKey {
            transport,
            placement,
            imp,
            driver,
        }
    }
}

/// What one run gave: the results it got, and why it stopped early if it did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Results by task label.
    pub results: BTreeMap<String, TaskResult>,
    /// The failure that ended the run (or why it was not run).
    pub error: Option<String>,
}

/// Every run's outcome.
#[derive(Debug, Clone, Default)]
pub struct PairResults {
    runs: BTreeMap<RunKey, Outcome>,
    /// Whether the RedPepper 0.3.4 baselines were asked for (rows against it are
    /// left out otherwise).
    pub python: bool,
}

impl PairResults {
    /// The result of task `label` of run `key`, or why there is none.
    pub fn get(&self, key: RunKey, label: &str) -> Result<&TaskResult, String> {
        let Some(outcome) = self.runs.get(&key) else {
            return Err("not run".to_owned());
        };
        match (outcome.results.get(label), &outcome.error) {
            (Some(r), _) if r.ops > 0 => Ok(r),
            (Some(r), _) => Err(r
                .first_error
                .clone()
                .unwrap_or_else(|| "no operation completed".to_owned())),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(format!("no result for {label}")),
        }
    }

    /// A metric of task `label` of run `key`.
    pub fn metric(
        &self,
        key: RunKey,
        label: &str,
        f: impl Fn(&TaskResult) -> Option<f64>,
    ) -> Result<f64, String> {
        self.get(key, label)
            .and_then(|r| f(r).ok_or_else(|| "no samples".to_owned()))
    }
}

/// The runs worth starting, in order.
const RUNS: [(Impl, Driver); 5] = [
    (Impl::Ours, Driver::Manager),
    (Impl::Ours, Driver::Agent),
    (Impl::Raw, Driver::Agent),
    (Impl::Python, Driver::Manager),
    (Impl::Python, Driver::Agent),
];

/// Why a run cannot happen here, if it cannot.
fn unavailable(ctx: &Ctx, transport: Transport, imp: Impl) -> Option<String> {
    match (imp, transport) {
        (Impl::Python, _) if ctx.launcher.python.is_none() => Some(ctx.python_off.clone()),
        (Impl::Python, Transport::Websocket | Transport::WebsocketNginx | Transport::Amqp) => {
            Some(format!("RedPepper 0.3.4 has no {transport} transport"))
        }
        (_, Transport::Amqp) => ctx.amqp_off.clone(),
        _ => None,
    }
}

/// Run every pair the workloads have tasks for.
pub fn run_all(ctx: &Ctx, tasks_for: impl Fn(Impl, Driver) -> Vec<Task>) -> PairResults {
    let mut all = PairResults {
        python: ctx.launcher.python.is_some(),
        ..PairResults::default()
    };
    for &transport in &ctx.opts.transports {
        for &placement in &ctx.opts.placements {
            for (imp, driver) in RUNS {
                let tasks = tasks_for(imp, driver);
                if tasks.is_empty() {
                    continue;
                }
                let key = RunKey {
                    transport,
                    placement,
                    imp,
                    driver,
                };
                let outcome = match unavailable(ctx, transport, imp) {
                    Some(reason) => Outcome {
                        results: BTreeMap::new(),
                        error: Some(reason),
                    },
                    None => run_pair(ctx, key, &tasks),
                };
                if let Some(e) = &outcome.error {
                    progress(&format!(
                        "  {transport} {placement} {imp:?} {}: {e}",
                        driver.direction()
                    ));
                }
                all.runs.insert(key, outcome);
            }
        }
    }
    all
}

fn common_args(ctx: &Ctx, key: RunKey, cpu: usize) -> Vec<String> {
    let mut args = vec![
        "--work".to_owned(),
        ctx.world.dir.display().to_string(),
        "--cpu".to_owned(),
        cpu.to_string(),
    ];
    if key.imp != Impl::Python {
        let stack = if key.imp == Impl::Raw { "raw" } else { "ours" };
        args.extend(
            [
                "--stack",
                stack,
                "--transport",
                key.transport.as_str(),
                "--amqp-url",
                ctx.opts.amqp_url.as_str(),
            ]
            .map(str::to_owned),
        );
    }
    args
}

fn spawn(ctx: &Ctx, key: RunKey, mode: &str, args: Vec<String>) -> anyhow::Result<Proc> {
    let mut all = vec![mode.to_owned()];
    all.extend(args);
    let (name, cmd) = match key.imp {
        Impl::Python => (
            format!("rp_bench.py {mode}"),
            ctx.launcher.python(&all).context("Python is off")?,
        ),
        _ => (format!("{mode} ({:?})", key.imp), ctx.launcher.ours(&all)),
    };
    launcher::spawn(&name, cmd)
}

/// One run of `key` with `tasks` (the cluster workloads' raw lapin round trip too).
pub(crate) fn run_pair(ctx: &Ctx, key: RunKey, tasks: &[Task]) -> Outcome {
    let budget: f64 = tasks.iter().map(Task::budget_secs).sum();
    progress(&format!(
        "{} {} {:?} {}: {} tasks, about {:.0} s",
        key.transport,
        key.placement,
        key.imp,
        key.driver.direction(),
        tasks.len(),
        budget
    ));
    let mut outcome = Outcome::default();
    if let Err(e) = try_run_pair(ctx, key, tasks, &mut outcome) {
        outcome.error = Some(format!("{e:#}"));
    }
    outcome
}

fn try_run_pair(
    ctx: &Ctx,
    key: RunKey,
    tasks: &[Task],
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let (cpu_a, cpu_b) = key.placement.cpus(&ctx.cpus)?;
    let drive = serde_json::to_string(tasks)?;
    let mut server_args = common_args(ctx, key, cpu_a);
    if key.driver == Driver::Manager {
        server_args.extend(["--drive".to_owned(), drive.clone()]);
    }
    let server = spawn(ctx, key, "pair-server", server_args)?;
    let ready = server.expect("ready", Duration::from_secs(60))?;
    let port = ready
        .get("port")
        .and_then(serde_json::Value::as_u64)
        .context("ready without a port")?;
    // nginx (websocket-nginx) stands between the two, on side A's CPU.
    let (_nginx, port) = match key.transport {
        Transport::WebsocketNginx => {
            let backend = u16::try_from(port).context("port out of range")?;
            let nginx = crate::nginx::start(ctx, cpu_a, backend)?;
            let front = nginx.port();
            (Some(nginx), u64::from(front))
        }
        _ => (None, port),
    };
    let mut client_args = common_args(ctx, key, cpu_b);
    client_args.extend(["--port".to_owned(), port.to_string()]);
    // Over amqp the listening side (our manager, the raw echo server) names its queue.
    if let Some(queue) = ready.get("queue").and_then(serde_json::Value::as_str) {
        client_args.extend(["--amqp-queue".to_owned(), queue.to_owned()]);
    }
    if key.driver == Driver::Agent {
        client_args.extend(["--drive".to_owned(), drive]);
    }
    let client = spawn(ctx, key, "pair-client", client_args)?;
    let driving = match key.driver {
        Driver::Manager => &server,
        Driver::Agent => &client,
    };
    for task in tasks {
        let limit = Duration::from_secs_f64(task.budget_secs() + 60.0);
        let value = driving.expect("result", limit)?;
        let result: TaskResult =
            serde_json::from_value(value).context("a result that is not a TaskResult")?;
        if let Some(e) = &result.first_error {
            progress(&format!(
                "  {}: {} errors, first: {e}",
                result.label, result.errors
            ));
        }
        outcome.results.insert(result.label.clone(), result);
    }
    driving.expect("done", Duration::from_secs(30))?;
    client.finish(Duration::from_secs(2));
    server.finish(Duration::from_secs(2));
    Ok(())
}
