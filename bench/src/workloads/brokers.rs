//! Workload 14, broker failover (issue 15, docs/CLUSTER.md "Broker cluster"): a
//! RabbitMQ cluster of three private nodes ([`RabbitCluster`]), one manager process
//! (the fleet workloads' `child manager`) whose `amqp.url` lists the three nodes with
//! `amqp.queue_type: quorum`, and `--failover-agents` AMQP agents (1,000 by default)
//! in one process (`child cluster-agents`, each running the agent program's
//! reconnecting loop, `transport: amqp` with the three URLs). kill -9 the broker node
//! the manager's AMQP listener is connected to → the time until every agent answers a
//! call through the manager again. Target (issue 15): under 30 s.
//!
//! 1. the three nodes start and join; users `bench-manager` and `bench-agent` (all
//!    permissions in a vhost of their own) are created through the first;
//! 2. the manager starts (its hello queue a quorum queue), then the agents, each
//!    connecting to a node picked at random from the list, as the agent does;
//! 3. with `--cluster-hold` > 0 every session is first held that long (61 s by default:
//!    the agent's backoff counts a session of 60 s as stable and spreads its first
//!    retry over 10 s);
//! 4. the manager's broker node is found with `rabbitmqctl list_connections` (the one
//!    connection of user `bench-manager`), the manager starts watching, the node is
//!    killed with SIGKILL; the manager reports when each agent answered an `echo`.
//!
//! Every agent loses its session, not only those on the killed node: a session over
//! AMQP lives on the manager's per-connection reply queue, which goes with the
//! manager's broker connection.

use std::time::{Duration, Instant};

use anyhow::Context;
use redpepper_tests::rabbitmq::{BrokerUser, Perms, RabbitCluster};
use redpepper_tests::Proc;

use super::{cluster, progress, Ctx};
use crate::child::cluster::Failover;
use crate::launcher;
use crate::placement::{raise_nofile, Placement};
use crate::report::{Better, Row, Target};
use crate::setup::World;

const W: &str = "14 broker failover";
/// What the transport column says.
const TRANSPORT: &str = "amqp (3-node RabbitMQ cluster)";
/// How long the manager waits for every agent after the kill.
const LIMIT: Duration = Duration::from_secs(180);
const VHOST: &str = "bench-brokers";
const MANAGER_USER: &str = "bench-manager";
const AGENT_USER: &str = "bench-agent";

/// Open files each broker node may use: an AMQP connection per agent.
const BROKER_NOFILE: u64 = 65_536;

struct Outcome {
    failover: Failover,
    held: f64,
    killed: usize,
    connect_secs: f64,
}

fn start_cluster() -> anyhow::Result<RabbitCluster> {
    anyhow::ensure!(
        redpepper_tests::rabbitmq::installed(),
        "RabbitMQ is not installed (apt-get install rabbitmq-server, or run scripts/test once)"
    );
    if let Err(e) = raise_nofile(BROKER_NOFILE) {
        progress(&format!("cannot raise the open-file limit: {e:#}"));
    }
    // The harness panics with the reason when a node does not start or join.
    std::panic::catch_unwind(RabbitCluster::start).map_err(|p| {
        anyhow::anyhow!(
            "the RabbitMQ cluster did not start: {}",
            crate::broker::panic_text(p.as_ref())
        )
    })
}

/// The node holding user `user`'s connection(s), by their server port.
fn node_of(rmq: &RabbitCluster, user: &str) -> anyhow::Result<usize> {
    let text = rmq
        .node(0)
        .ctl(&["list_connections", "-q", "user", "port"])
        .map_err(anyhow::Error::msg)?;
    let mut nodes: Vec<usize> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(user))
                .then(|| w.next().and_then(|p| p.parse::<u16>().ok()))
                .flatten()
        })
        .filter_map(|port| rmq.by_port(port))
        .collect();
    nodes.dedup();
    match nodes.as_slice() {
        [one] => Ok(*one),
        _ => anyhow::bail!("user {user}'s connections are on nodes {nodes:?}:\n{text}"),
    }
}

fn spawn_manager(
    ctx: &Ctx,
    world: &World,
    cpu: usize,
    urls: &str,
) -> anyhow::Result<(Proc, String)> {
    let args = [
        "manager",
        "--work",
        &world.dir.display().to_string(),
        "--cpu",
        &cpu.to_string(),
        "--transport",
        "amqp",
        "--amqp-url",
        urls,
        "--quorum",
    ]
    .map(str::to_owned);
    let proc = launcher::spawn("manager child", ctx.launcher.ours(&args))?;
    let ready = proc
        .expect("ready", Duration::from_secs(60))
        .context("the manager did not start")?;
    let queue = ready
        .get("queue")
        .and_then(serde_json::Value::as_str)
        .context("the manager named no hello queue")?
        .to_owned();
    Ok((proc, queue))
}

fn spawn_agents(
    ctx: &Ctx,
    world: &World,
    cpu: usize,
    urls: &str,
    queue: &str,
    n: usize,
) -> anyhow::Result<(Proc, f64)> {
    let args = [
        "--transport",
        "amqp",
        "--amqp-url",
        urls,
        "--amqp-queue",
        queue,
        "--ports",
        "0",
    ];
    let (proc, burst) = cluster::spawn_agents(ctx, "AMQP agents", &world.dir, cpu, n, &args)?;
    Ok((proc, burst.secs))
}

fn try_run(ctx: &Ctx, placement: Placement, n: usize) -> anyhow::Result<Outcome> {
    let (cpu_a, cpu_b) = placement.cpus(&ctx.cpus)?;
    progress("  starting three RabbitMQ nodes and joining them");
    let rmq = start_cluster()?;
    let pass = |u: &str| format!("{u}-{:016x}", rand::random::<u64>());
    let (manager_pass, agent_pass) = (pass(MANAGER_USER), pass(AGENT_USER));
    let users = [
        BrokerUser {
            name: MANAGER_USER.into(),
            password: manager_pass.clone(),
            perms: Perms::all(),
        },
        BrokerUser {
            name: AGENT_USER.into(),
            password: agent_pass.clone(),
            perms: Perms::all(),
        },
    ];
    std::panic::catch_unwind(|| rmq.node(0).add_users(VHOST, &users)).map_err(|p| {
        anyhow::anyhow!(
            "creating the users: {}",
            crate::broker::panic_text(p.as_ref())
        )
    })?;
    let manager_urls = rmq.amqp_urls(MANAGER_USER, &manager_pass, VHOST).join(",");
    let agent_urls = rmq.amqp_urls(AGENT_USER, &agent_pass, VHOST).join(",");
    // A world of its own: its agents.yml names the agents' broker user.
    let world = World::create(&ctx.world.dir.join("brokers"), n, &agent_urls)?;
    let (manager, queue) = spawn_manager(ctx, &world, cpu_a, &manager_urls)?;
    let (agents, connect_secs) = spawn_agents(ctx, &world, cpu_b, &agent_urls, &queue, n)?;
    let connected = Instant::now();
    let held = cluster::hold_sessions(ctx, connected);
    let killed = node_of(&rmq, MANAGER_USER)?;
    manager
        .send_line(&format!("failover {n} {}", LIMIT.as_secs_f64()))
        .map_err(anyhow::Error::msg)?;
    manager
        .expect("watching", Duration::from_secs(30))
        .context("the manager before the kill")?;
    rmq.node(killed).kill();
    let value = manager
        .expect("failover", LIMIT + Duration::from_secs(30))
        .context("the manager after the kill")?;
    let failover: Failover = serde_json::from_value(value)?;
    progress(&format!(
        "  {}/{} agents answered after broker node {killed} was killed, the last {:.2} s after the kill",
        failover.callable, failover.agents, failover.secs_all
    ));
    agents.finish(Duration::from_secs(5));
    manager.finish(Duration::from_secs(5));
    drop(rmq);
    Ok(Outcome {
        failover,
        held,
        killed,
        connect_secs,
    })
}

/// Run workload 14 and make its row.
pub fn run(ctx: &Ctx) -> Vec<Row> {
    let n = ctx.opts.failover_agents;
    let placement = cluster::placement(ctx);
    progress(&format!(
        "brokers: kill -9 the manager's RabbitMQ node under {n} AMQP agents"
    ));
    let result = try_run(ctx, placement, n).map_err(|e| format!("{e:#}"));
    if let Err(e) = &result {
        progress(&format!("  broker failover failed: {e}"));
    }
    let all = result.as_ref().map_err(Clone::clone).and_then(|o| {
        let f = &o.failover;
        if f.callable == f.agents {
            Ok(f.secs_all)
        } else {
            Err(format!(
                "{} of {} agents answered within {} s; first error: {}",
                f.callable,
                f.agents,
                LIMIT.as_secs(),
                f.first_error.as_deref().unwrap_or("none")
            ))
        }
    });
    let mut r = Row::new(
        W,
        TRANSPORT,
        placement.as_str(),
        &format!("kill -9 the manager's broker node, {n} agents: all callable again"),
        "s",
        Better::Lower,
        all,
    )
    .target(Some(Target::AtMost(30.0)));
    if let Ok(o) = &result {
        let f = &o.failover;
        r = r.note(&format!(
            "half at {:.2} s, 90 % at {:.2} s; calls that failed and were retried: {}; \
             first connect of all agents {:.1} s; node {} killed; sessions held {:.0} s \
             before the kill{}",
            f.secs_p50,
            f.secs_p90,
            f.failed_calls,
            o.connect_secs,
            o.killed,
            o.held,
            cluster::held_note(o.held)
        ));
    }
    vec![r]
}
