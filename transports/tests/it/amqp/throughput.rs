//! Measurements, not checks (ignored by default; they print numbers and assert nothing
//! about time): raw lapin round trips as the baseline, and sessions over the AMQP
//! transport with and without publisher confirms, sequential and pipelined.
//!
//! ```text
//! cargo test --release -p redpepper-transports --test it amqp::throughput -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::amqp as amqp_support;

use std::time::{Duration, Instant};

use amqp_support::*;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use redpepper_core::{Session, Value};
use redpepper_tests::rabbitmq::RabbitNode;
use redpepper_transports::amqp::{AmqpListener, AmqpOptions};

const SEQUENTIAL: usize = 2000;
const PIPELINED: usize = 40_000;
const IN_FLIGHT: usize = 1000;

/// Publish `body` to `queue` through the default exchange (no confirms).
async fn publish(ch: &Channel, queue: &ShortString, body: &[u8]) {
    ch.basic_publish(
        ShortString::default(),
        queue.clone(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

/// One raw lapin round trip: publish to the echoer's queue, it publishes back.
async fn raw_round_trips(env: &Env) -> Duration {
    let url = env
        .node
        .amqp_url("manager", &password("manager"), &env.vhost);
    let (a, b) = (
        Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap(),
        Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap(),
    );
    let (ca, cb) = (
        a.create_channel().await.unwrap(),
        b.create_channel().await.unwrap(),
    );
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    let qa = ShortString::from("redpepper.manager.raw-a");
    let qb = ShortString::from("redpepper.manager.raw-b");
    ca.queue_declare(qa.clone(), opts, FieldTable::default())
        .await
        .unwrap();
    cb.queue_declare(qb.clone(), opts, FieldTable::default())
        .await
        .unwrap();
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let mut at_a = ca
        .basic_consume(qa.clone(), "a".into(), no_ack, FieldTable::default())
        .await
        .unwrap();
    let mut at_b = cb
        .basic_consume(qb.clone(), "b".into(), no_ack, FieldTable::default())
        .await
        .unwrap();
    let echo = tokio::spawn(async move {
        while let Some(Ok(d)) = at_b.next().await {
            publish(&cb, &qa, &d.data).await;
        }
    });
    let body = vec![0u8; 64];
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        publish(&ca, &qb, &body).await;
        at_a.next().await.unwrap().unwrap();
    }
    let per = started.elapsed() / SEQUENTIAL as u32;
    // Pipelined: keep IN_FLIGHT messages going around.
    let started = Instant::now();
    let sender = tokio::spawn({
        let ca = ca.clone();
        let qb = qb.clone();
        async move {
            let body = vec![0u8; 64];
            for _ in 0..PIPELINED {
                publish(&ca, &qb, &body).await;
            }
        }
    });
    for _ in 0..PIPELINED {
        at_a.next().await.unwrap().unwrap();
    }
    sender.await.unwrap();
    let rate = PIPELINED as f64 / started.elapsed().as_secs_f64();
    println!("raw lapin pipelined    {rate:>8.0} round trips/s (no acks, no confirms)");
    echo.abort();
    per
}

async fn sessions(env: &Env, confirms: bool) -> (TestManager, Session, Session) {
    let options = AmqpOptions {
        publisher_confirms: confirms,
        ..options()
    };
    let listener = AmqpListener::bind(env.url("manager"), QUEUE, None, 1 << 20, options.clone())
        .await
        .unwrap();
    let mut manager = TestManager::serve(listener, config());
    let dialer = env.dialer("a1").with_options(options);
    let (agent_side, _) = agent(&dialer, "a1", "good", config()).await;
    let manager_side = manager.next().await.unwrap();
    (manager, manager_side, agent_side.unwrap())
}

async fn measure(label: &str, env: &Env, confirms: bool, raw: Duration) {
    let (server, manager, agent) = sessions(env, confirms).await;
    for _ in 0..200 {
        manager.call("echo", vec![], vec![]).await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        manager
            .call("echo", vec![Value::from("x")], vec![])
            .await
            .unwrap();
    }
    let rtt = started.elapsed() / SEQUENTIAL as u32;
    let started = Instant::now();
    futures::stream::iter(0..PIPELINED)
        .for_each_concurrent(IN_FLIGHT, |i| {
            let m = manager.clone();
            async move {
                m.call("echo", vec![Value::from(i)], vec![]).await.unwrap();
            }
        })
        .await;
    let rate = PIPELINED as f64 / started.elapsed().as_secs_f64();
    println!(
        "{label:<22} sequential RTT {:>7.1} us ({:.2}x raw lapin)   pipelined {rate:>8.0} calls/s",
        rtt.as_secs_f64() * 1e6,
        rtt.as_secs_f64() / raw.as_secs_f64()
    );
    agent.close("done").await;
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: run with --ignored --nocapture, preferably --release"]
async fn publisher_confirms_on_and_off() {
    let node = RabbitNode::shared();
    let raw = raw_round_trips(&Env::new(node, "measure-raw", &["a1"])).await;
    println!("raw lapin round trip   {:>7.1} us", raw.as_secs_f64() * 1e6);
    for round in 1..=3 {
        println!("round {round}");
        let on = Env::new(node, &format!("measure-on-{round}"), &["a1"]);
        measure("confirms on", &on, true, raw).await;
        let off = Env::new(node, &format!("measure-off-{round}"), &["a1"]);
        measure("confirms off", &off, false, raw).await;
    }
}
