//! The console's figures against 1,000 agents (docs/CONSOLE.md, Figures), run by hand:
//!
//! ```sh
//! cargo test -p redpepper-tests --test it console::measure -- --ignored --nocapture
//! ```
//!
//! A real manager process (TLS TCP, admin API); 1,000 agent sessions from this test
//! process through the agent library (`Agent::connect`, the agent program's
//! handshake); headless chromium. It prints one JSON line per figure: the time from
//! navigation to the fleet table listing every agent (three page loads), then the
//! page's backlog while the agents send 100 notifications a second for 10 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redpepper_agent::Agent;
use redpepper_config::{AgentConfig, ConfigFile, Secret};
use redpepper_core::Value;
use redpepper_tests::fleet::{secret_of, Fleet, ADMIN_TOKEN};
use redpepper_tests::serde_json::json;
use redpepper_tests::TIMEOUT;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::base;
use super::browser::{run, Browser};

const AGENTS: usize = 1000;
/// Notifications per second, and for how long.
const RATE: u64 = 100;
const SECONDS: u64 = 10;

#[test]
#[ignore = "measurement: 1,000 agents and a browser, run by hand (docs/CONSOLE.md, Figures)"]
fn a_fleet_of_1000_renders_and_the_page_keeps_up_with_100_events_per_second() {
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
        // 1,000 sessions, at most 32 handshakes at once.
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(32));
        let mut connecting = JoinSet::new();
        for id in &ids {
            let mut c = config.clone();
            c.agent_id = id.clone();
            c.agent_secret = Secret::new(secret_of(id));
            let agent = Agent::new(c).unwrap();
            let permits = Arc::clone(&permits);
            connecting.spawn(async move {
                let _p = permits.acquire_owned().await.unwrap();
                // A handshake that timed out on a busy machine is tried again.
                let mut session = agent.connect().await;
                for _ in 0..4 {
                    if session.is_ok() {
                        break;
                    }
                    session = agent.connect().await;
                }
                (agent, session)
            });
        }
        let mut agents = Vec::with_capacity(AGENTS);
        while let Some(joined) = connecting.join_next().await {
            let (agent, session) = joined.unwrap();
            agents.push((agent, session.unwrap()));
        }
        let status = m.get("/v1/status").json();
        assert_eq!(status["agents"], AGENTS, "{status}");
        println!(
            "{}",
            json!({"agents_connected": AGENTS, "secs": started.elapsed().as_secs_f64()})
        );

        let b = Browser::start().await;
        b.client.goto(&base(m)).await.unwrap();
        b.until("the login form", "!document.getElementById('login').hidden")
            .await;
        b.fill("#token", ADMIN_TOKEN).await;
        b.click("#token-form button").await;
        let listed =
            format!("document.querySelectorAll('#fleet-table tbody tr').length === {AGENTS}");
        b.until("every agent listed", &listed).await;

        // Time to first render: fresh page loads with the session cookie.
        for load in 0..3 {
            b.client.refresh().await.unwrap();
            b.until("every agent listed after a reload", &listed).await;
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
        b.until(
            "the stream live",
            "document.getElementById('fleet-live').textContent === 'live'",
        )
        .await;

        // 100 notifications a second for 10 s, round-robin over the agents.
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
        assert!(drained < TIMEOUT);
        b.screenshot("fleet-1000").await;
        b.client.close().await.unwrap();
        drop(agents);
    });
}
