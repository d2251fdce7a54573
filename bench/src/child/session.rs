//! Our two sides of a two-process measurement: the session layer
//! ([`Session::accept`] / [`Session::connect`]) over the listener and dialer the
//! transports factory builds from a manager / agent configuration, authenticated by
//! the manager's [`RegistryAuthenticator`] against `agents.yml`, with the session
//! settings the manager and agent programs use.
//!
//! Both sides serve `echo` (the answer [`echo_reply`] builds, as the manager and the
//! agent do), `count` (notifications received so far) and count notifications.
//! The driving side runs its tasks and reports; the other serves until stdin closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redpepper_config::CachedRegistry;
use redpepper_core::{echo_reply, Kwargs, Router, Session, Value};
use redpepper_manager::RegistryAuthenticator;
use tokio::task::JoinSet;

use super::{call_args, emit, notification, stdin_lines, PairArgs};
use crate::setup::{hello_queue, Transport, PAIR_AGENT};
use crate::stats::Samples;
use crate::tasks::{Calls, Task, TaskResult};

/// The handler both sides serve.
fn router(received: Arc<AtomicU64>) -> Router {
    let counted = Arc::clone(&received);
    Router::new()
        .method(
            "echo",
            |ctx| async move { Ok(echo_reply(ctx.args, ctx.kwargs)) },
        )
        .method("count", move |_ctx| {
            let n = counted.load(Ordering::Relaxed);
            async move { Ok(Value::from(n)) }
        })
        .on_notification(move |_, _| {
            received.fetch_add(1, Ordering::Relaxed);
        })
}

/// Manager side: listen, accept one agent, serve or drive.
pub async fn server(args: &PairArgs) -> anyhow::Result<()> {
    let tasks = args.tasks()?;
    let world = args.common.world();
    let transport = args.common.transport()?;
    let mut config = world.manager_config(transport, &args.common.amqp_url)?;
    if transport == Transport::Amqp {
        config.amqp.queue = hello_queue();
    }
    let mut listeners = redpepper_transports::listeners(&config).await?;
    let mut listener = listeners.pop().context("the factory built no listener")?;
    let port = listener.local_addr().map_or(0, |a| a.port());
    let mut ready = serde_json::json!({ "port": port });
    if transport == Transport::Amqp {
        ready["queue"] = config.amqp.queue.clone().into();
    }
    emit("ready", ready);
    let mut commands = stdin_lines();
    let transport = tokio::select! {
        c = listener.accept() => c?.await?,
        _ = commands.recv() => bail!("stopped before the agent connected"),
    };
    let auth = RegistryAuthenticator::new(CachedRegistry::open(config.agents_file())?);
    let handler = Arc::new(router(Arc::new(AtomicU64::new(0))));
    let session = Session::accept(
        transport,
        redpepper_manager::session_config(&config),
        &auth,
        handler,
    )
    .await?;
    serve_or_drive(session, tasks).await
}

/// Agent side: dial, hello, serve or drive.
pub async fn client(args: &PairArgs) -> anyhow::Result<()> {
    let tasks = args.tasks()?;
    let world = args.common.world();
    let mut config = world.agent_config(
        args.common.transport()?,
        args.port,
        PAIR_AGENT,
        &args.common.amqp_url,
    )?;
    if let Some(queue) = &args.amqp_queue {
        config.amqp.queue.clone_from(queue);
    }
    let dialer = redpepper_transports::dialer(&config)?;
    let transport = dialer.dial().await?;
    let handler = Arc::new(router(Arc::new(AtomicU64::new(0))));
    let session = Session::connect(
        transport,
        &config.agent_id,
        config.agent_secret.expose(),
        config.session.session_config(),
        handler,
    )
    .await?;
    serve_or_drive(session, tasks).await
}

async fn serve_or_drive(session: Session, tasks: Option<Vec<Task>>) -> anyhow::Result<()> {
    let Some(tasks) = tasks else {
        let mut commands = stdin_lines();
        tokio::select! {
            _ = session.closed() => {}
            _ = commands.recv() => {}
        }
        return Ok(());
    };
    let _stdin = stdin_lines();
    sanity(&session).await?;
    for task in &tasks {
        let result = match task {
            Task::Calls(c) => calls(&session, c).await,
            Task::Notify { label, secs } => notify(&session, label, *secs).await?,
        };
        emit("result", result);
    }
    emit("done", true);
    session.close("benchmark done").await;
    Ok(())
}

/// One echo call must come back as RedPepper's echo shape before anything is timed.
async fn sanity(session: &Session) -> anyhow::Result<()> {
    let (args, kwargs) = call_args(0);
    let answer = session.call("echo", args, kwargs).await?;
    match answer {
        Value::Map(entries) if entries.iter().any(|(k, _)| k.as_str() == Some("args")) => Ok(()),
        other => bail!("echo answered {other}"),
    }
}

struct Worker {
    samples: Samples,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    last: Instant,
}

/// What a closed loop of calls calls: an `echo` on a session, or through a manager's
/// API (the cluster workloads). Generic, so the session's loop stays as it was.
pub(crate) trait Caller: Clone + Send + Sync + 'static {
    /// One `echo` call with these arguments.
    fn echo(
        &self,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> impl std::future::Future<Output = Result<Value, String>> + Send;

    /// Whether calling again is pointless (the session ended).
    fn gone(&self) -> bool;
}

impl Caller for Session {
    async fn echo(&self, args: Vec<Value>, kwargs: Kwargs) -> Result<Value, String> {
        self.call("echo", args, kwargs)
            .await
            .map_err(|e| e.to_string())
    }

    fn gone(&self) -> bool {
        self.is_closed()
    }
}

/// A closed loop of `in_flight` concurrent callers, each calling again as soon as its
/// answer arrives.
pub(crate) async fn calls<C: Caller>(caller: &C, c: &Calls) -> TaskResult {
    let Calls {
        label,
        in_flight,
        payload,
        ..
    } = c;
    let (in_flight, payload) = (*in_flight, *payload);
    let (args, kwargs) = call_args(payload);
    let (measure_from, stop) = c.window();
    let mut set = JoinSet::new();
    for _ in 0..in_flight.max(1) {
        let caller = caller.clone();
        let (args, kwargs) = (args.clone(), kwargs.clone());
        set.spawn(async move {
            let mut w = Worker {
                samples: Samples::with_capacity(4096),
                ok: 0,
                errors: 0,
                first_error: None,
                last: measure_from,
            };
            loop {
                let t0 = Instant::now();
                if t0 >= stop {
                    break;
                }
                let result = caller.echo(args.clone(), kwargs.clone()).await;
                let t1 = Instant::now();
                match result {
                    Ok(_) if t0 >= measure_from => {
                        w.samples.push(t1 - t0);
                        w.ok += 1;
                        w.last = t1;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        w.errors += 1;
                        w.first_error.get_or_insert(e);
                        if caller.gone() {
                            break;
                        }
                    }
                }
            }
            w
        });
    }
    let mut samples = Samples::default();
    let (mut ok, mut errors, mut first_error, mut last) = (0, 0, None, measure_from);
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(w) => {
                samples.extend(w.samples);
                ok += w.ok;
                errors += w.errors;
                first_error = first_error.or(w.first_error);
                last = last.max(w.last);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let window = last.saturating_duration_since(measure_from).as_secs_f64();
    let mut result = TaskResult::new(label, ok, window, payload, &mut samples);
    result.errors = errors;
    result.first_error = first_error;
    result
}

async fn received(session: &Session) -> anyhow::Result<u64> {
    let n = session.call("count", vec![], vec![]).await?;
    n.as_u64().with_context(|| format!("count answered {n}"))
}

/// Notifications as fast as the session takes them, then a `count` call: the peer
/// reads in order, so its answer covers every notification sent before it.
async fn notify(session: &Session, label: &str, secs: f64) -> anyhow::Result<TaskResult> {
    let before = received(session).await?;
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < stop {
        for _ in 0..256 {
            let n = notification(sent);
            session.notify(&n.r#type, n.data).await?;
            sent += 1;
        }
    }
    loop {
        let got = received(session).await?.saturating_sub(before);
        if got >= sent {
            break;
        }
        if start.elapsed() > Duration::from_secs_f64(secs + 60.0) {
            bail!("the peer received {got} of {sent} notifications");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(TaskResult::one_way(
        label,
        sent,
        start.elapsed().as_secs_f64(),
    ))
}
