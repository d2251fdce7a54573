//! The console's figures against 1,000 agents (docs/CONSOLE.md, Figures), run by hand:
//!
//! ```sh
//! cargo test -p redpepper-tests --test it console::measure -- --ignored --nocapture
//! ```
//!
//! A real manager process (TLS TCP, admin API); 1,000 agent sessions from this test
//! process through the agent library (`Agent::connect`, the agent program's
//! handshake); headless chromium. It prints one JSON line per figure: the time from
//! navigation to the fleet table listing every agent (three page loads), the page's
//! backlog while the agents send 100 notifications a second for 10 s, then the same
//! and the page's own cost (main thread, chromium's CPU, JS heap) while 100 agents a
//! second disconnect and connect again for 10 s, and that the table is right after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redpepper_agent::Agent;
use redpepper_config::{AgentConfig, ConfigFile, Secret};
use redpepper_core::{Session, Value};
use redpepper_tests::fleet::{secret_of, Fleet, ManagerProc};
use redpepper_tests::serde_json::{json, Value as Json};
use redpepper_tests::TIMEOUT;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::browser::{run, Browser};
use super::{listed, open, token_login, until_listed};

const AGENTS: usize = 1000;
/// Notifications, and agents that leave and come back, per second; for how long.
const RATE: u64 = 100;
const SECONDS: u64 = 10;
/// The agents that leave for good at the end of the churn.
const LEAVING: usize = 10;

#[test]
#[ignore = "measurement: 1,000 agents and a browser, run by hand (docs/CONSOLE.md, Figures)"]
fn a_fleet_of_1000_renders_and_the_page_keeps_up_with_notifications_and_churn() {
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("m-{i:04}")).collect();
    let mut f = Fleet::builder()
        .agents(&ids)
        .transports(&["tls"])
        .admin()
        .build();
    f.spawn_manager();
    let m = f.manager();
    let yml = f.write_agent_yml("m", &f.agent_yml(&ids[0], &secret_of(&ids[0]), ""));
    let config = AgentConfig::load(Some(&yml), &[]).unwrap();
    run(async {
        let agents = connect_all(&config, &ids).await;
        manager_counts(m, AGENTS).await;

        let b = Browser::start().await;
        open(&b, m).await;
        token_login(&b, AGENTS).await;
        first_render(&b).await;
        b.until_text("fleet-live", "live").await;
        notifications(&b, &agents).await;
        let agents = churn(&b, m, agents).await;
        b.screenshot("fleet-1000").await;
        b.client.close().await.unwrap();
        drop(agents);
    });
}

/// Wait until the manager counts `n` connected agents (an agent's handshake ends
/// before the manager has it in its table).
async fn manager_counts(m: &ManagerProc, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let status = m.get("/v1/status").json();
        if status["agents"] == n {
            return;
        }
        assert!(Instant::now() < deadline, "not {n} agents: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A session for `agent`; a handshake that timed out on a busy machine is tried again.
async fn connect(agent: &Agent) -> (Session, u64) {
    let mut retries = 0;
    loop {
        match agent.connect().await {
            Ok(session) => return (session, retries),
            Err(e) if retries < 4 => {
                retries += 1;
                eprintln!("connect again after: {e}");
            }
            Err(e) => panic!("cannot connect: {e}"),
        }
    }
}

/// 1,000 sessions, at most 32 handshakes at once; in the order of `ids`.
async fn connect_all(config: &AgentConfig, ids: &[String]) -> Vec<(Agent, Session)> {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(32));
    let mut connecting = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let mut c = config.clone();
        c.agent_id = id.clone();
        c.agent_secret = Secret::new(secret_of(id));
        let agent = Agent::new(c).unwrap();
        let permits = Arc::clone(&permits);
        connecting.spawn(async move {
            let _p = permits.acquire_owned().await.unwrap();
            let (session, _) = connect(&agent).await;
            (i, agent, session)
        });
    }
    let agents = in_order(connecting).await;
    println!(
        "{}",
        json!({"agents_connected": agents.len(), "secs": started.elapsed().as_secs_f64()})
    );
    agents
}

/// What the tasks of `set` return, by the index each returns.
async fn in_order(mut set: JoinSet<(usize, Agent, Session)>) -> Vec<(Agent, Session)> {
    let mut slots: Vec<Option<(Agent, Session)>> = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, agent, session) = joined.unwrap();
        if slots.len() <= i {
            slots.resize_with(i + 1, || None);
        }
        slots[i] = Some((agent, session));
    }
    slots.into_iter().map(Option::unwrap).collect()
}

/// Time to first render: fresh page loads with the session cookie.
async fn first_render(b: &Browser) {
    for load in 0..3 {
        b.client.refresh().await.unwrap();
        until_listed(b, AGENTS).await;
        let t = b
            .eval(
                "(() => { const t = performance.timing, n = t.navigationStart;
                  const r = performance.getEntriesByType('resource').find((e) => e.name.includes('/v1/agents'));
                  return { fleet_rendered_ms: window.rpConsole.fleetRenderedAt,
                           dom_content_loaded_ms: t.domContentLoadedEventEnd - n,
                           load_ms: t.loadEventEnd - n,
                           agents_fetch_ms: r ? r.duration : null,
                           agents_json_bytes: r ? r.decodedBodySize : null,
                           rows: document.querySelectorAll('#fleet-table tbody tr').length }; })()",
            )
            .await;
        println!("{}", json!({"first_render": load, "page": t}));
        assert_eq!(t["rows"], AGENTS, "{t}");
    }
}

/// 100 notifications a second for 10 s, round-robin over the agents.
async fn notifications(b: &Browser, agents: &[(Agent, Session)]) {
    let seen0 = b
        .eval("window.rpConsole.eventsSeen")
        .await
        .as_u64()
        .unwrap();
    let sessions: Vec<_> = agents.iter().map(|(_, s)| s.clone()).collect();
    let total = RATE * SECONDS;
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
        for i in 0..total {
            tick.tick().await;
            let s = &sessions[usize::try_from(i).unwrap() % sessions.len()];
            s.notify("measure", Value::from(i)).await.unwrap();
        }
        Instant::now()
    });
    let mut worst_backlog = 0i64;
    let t0 = Instant::now();
    while !sender.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let seen = b
            .eval("window.rpConsole.eventsSeen")
            .await
            .as_u64()
            .unwrap()
            - seen0;
        // What was sent by now, at the nominal rate.
        let sent = (t0.elapsed().as_millis() as u64 * RATE / 1000).min(total);
        worst_backlog = worst_backlog.max(sent as i64 - seen as i64);
    }
    let last_sent = sender.await.unwrap();
    let all = format!("window.rpConsole.eventsSeen - {seen0} >= {total}");
    b.until("every notification seen by the page", &all).await;
    let drained = last_sent.elapsed();
    let end = b
        .eval("({ seen: window.rpConsole.eventsSeen, lagged: window.rpConsole.lagged, renders: window.rpConsole.renders })")
        .await;
    println!(
        "{}",
        json!({"events": total, "rate_per_s": RATE, "secs": SECONDS,
               "worst_backlog_sampled": worst_backlog,
               "all_seen_after_last_sent_ms": drained.as_secs_f64() * 1000.0,
               "page": end})
    );
    assert_eq!(
        end["lagged"], 0,
        "the manager dropped events for the page: {end}"
    );
}

/// What the page did so far: events by kind, the longest an event waited for the
/// page, fleet draws and their script time, what [`OBSERVE`] counted, the JS heap.
const PAGE: &str = "(() => { const s = window.rpConsole, o = window.__observed || {};
    return { disconnected: s.kinds.disconnected || 0, authenticated: s.kinds.authenticated || 0,
             lagged: s.lagged, max_lag_ms: s.maxLagMs, renders: s.renders, render_ms: s.renderMs,
             long_tasks: o.long || 0, long_task_ms: o.longMs || 0, layout_ms: o.layoutMs || 0,
             frames: o.frames || 0, heap_bytes: performance.memory.usedJSHeapSize }; })()";

/// Installed in the page by the test: long tasks (over 50 ms on the main thread), the
/// style and layout time of long animation frames (over 50 ms), animation frames.
const OBSERVE: &str = "(() => { const o = window.__observed = { long: 0, longMs: 0, layoutMs: 0, frames: 0 };
    new PerformanceObserver((l) => { for (const e of l.getEntries()) { o.long++; o.longMs += e.duration; } })
      .observe({ type: 'longtask' });
    new PerformanceObserver((l) => { for (const e of l.getEntries()) {
        if (e.styleAndLayoutStart) o.layoutMs += e.startTime + e.duration - e.styleAndLayoutStart; } })
      .observe({ type: 'long-animation-frame' });
    const frame = () => { o.frames++; requestAnimationFrame(frame); };
    requestAnimationFrame(frame);
    return true; })()";

/// The page's figures after a full garbage collection.
async fn page_after_gc(b: &Browser) -> Json {
    b.eval("(window.gc(), true)").await;
    b.eval(PAGE).await
}

fn n(v: &Json, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// Churn: for 10 s, 100 agents a second (each agent once, in the order of ids) close
/// their session and connect again: 100 `disconnected` and 100 `authenticated` events
/// a second. Then the first [`LEAVING`] agents leave for good, and the page's table
/// must say so.
async fn churn(
    b: &Browser,
    m: &ManagerProc,
    agents: Vec<(Agent, Session)>,
) -> Vec<(Agent, Session)> {
    b.eval(OBSERVE).await;
    b.eval("(window.rpConsole.maxLagMs = 0)").await;
    let before = page_after_gc(b).await;
    let cpu0 = b.chromium_cpu_secs();
    let closed = Arc::new(AtomicU64::new(0));
    let back = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let cycles = {
        let (closed, back, retries) = (closed.clone(), back.clone(), retries.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
            let mut cycles = JoinSet::new();
            for (i, (agent, session)) in agents.into_iter().enumerate() {
                tick.tick().await;
                let (closed, back, retries) = (closed.clone(), back.clone(), retries.clone());
                cycles.spawn(async move {
                    session.close("churn").await;
                    closed.fetch_add(1, Ordering::SeqCst);
                    let (session, again) = connect(&agent).await;
                    retries.fetch_add(again, Ordering::SeqCst);
                    back.fetch_add(1, Ordering::SeqCst);
                    (i, agent, session)
                });
            }
            (in_order(cycles).await, Instant::now())
        })
    };
    // Sampled twice a second: what the test did against what the page saw, and how
    // long the page took to answer the sample (a busy main thread answers late).
    let (mut worst_backlog, mut slowest_eval) = (0i64, Duration::ZERO);
    let mut samples = Vec::new();
    while !cycles.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = closed.load(Ordering::SeqCst) + back.load(Ordering::SeqCst);
        let asked = Instant::now();
        let p = b.eval(PAGE).await;
        slowest_eval = slowest_eval.max(asked.elapsed());
        let seen = n(&p, "disconnected") + n(&p, "authenticated")
            - n(&before, "disconnected")
            - n(&before, "authenticated");
        let backlog = done as i64 - seen as i64;
        worst_backlog = worst_backlog.max(backlog);
        samples.push(backlog);
    }
    let (agents, last_done) = cycles.await.unwrap();
    let churn_secs = t0.elapsed().as_secs_f64();
    let (closed, back) = (closed.load(Ordering::SeqCst), back.load(Ordering::SeqCst));
    let all = format!(
        "window.rpConsole.kinds.disconnected - {} >= {closed} && window.rpConsole.kinds.authenticated - {} >= {back}",
        before["disconnected"], before["authenticated"]
    );
    b.until("every disconnect and connect seen by the page", &all)
        .await;
    let drained = last_done.elapsed();
    // The window: from the first cycle until the page had seen every event.
    let window = t0.elapsed().as_secs_f64();
    let cpu = b.chromium_cpu_secs() - cpu0;
    let during = b.eval(PAGE).await;
    let connected = format!(
        "document.querySelectorAll('#fleet-table tbody td.state-connected').length === {AGENTS}"
    );
    b.until("every row connected", &connected).await;

    // The first ten leave: exactly their rows change (to disconnected, or down once
    // the list is fetched again), and the manager agrees.
    for (_, session) in &agents[..LEAVING] {
        session.close("leaving").await;
    }
    let gone: Vec<String> = (0..LEAVING).map(|i| format!("m-{i:04}")).collect();
    let expect = format!(
        "[...document.querySelectorAll('#fleet-table tbody tr')].filter((tr) => tr.children[1].textContent !== 'connected').map((tr) => tr.dataset.agent).join() === '{}' && {}",
        gone.join(","),
        listed(AGENTS)
    );
    b.until("exactly the agents that left shown so", &expect)
        .await;
    manager_counts(m, AGENTS - LEAVING).await;
    let after = page_after_gc(b).await;

    let frames = n(&during, "frames") - n(&before, "frames");
    println!(
        "{}",
        json!({"churn_per_s": RATE, "secs": SECONDS, "took_secs": churn_secs,
               "disconnects": closed, "reconnects": back, "retries": retries.load(Ordering::SeqCst),
               "backlog_samples": samples, "worst_backlog_sampled": worst_backlog,
               "all_seen_after_last_cycle_ms": drained.as_secs_f64() * 1000.0,
               "slowest_page_answer_ms": slowest_eval.as_secs_f64() * 1000.0,
               "max_event_lag_ms": during["max_lag_ms"],
               "fleet_renders": n(&during, "renders") - n(&before, "renders"),
               "fleet_render_ms": n(&during, "render_ms") - n(&before, "render_ms"),
               "long_tasks": n(&during, "long_tasks") - n(&before, "long_tasks"),
               "long_task_ms": n(&during, "long_task_ms") - n(&before, "long_task_ms"),
               "long_frames_layout_ms": n(&during, "layout_ms") - n(&before, "layout_ms"),
               "window_secs": window, "frames_per_s": frames / window,
               "chromium_cpu_secs": cpu, "chromium_cpu_share": cpu / window,
               "heap_bytes_before": before["heap_bytes"], "heap_bytes_after": after["heap_bytes"],
               "lagged": after["lagged"]})
    );
    assert_eq!(
        after["lagged"], 0,
        "the manager dropped events for the page"
    );
    agents
}
