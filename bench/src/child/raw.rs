//! The raw baselines: for tls, the transport the factory builds (TCP, rustls, the
//! 4-byte length framing of `redpepper_transports::tls`); for websocket, a plain
//! tokio-tungstenite connection ([`super::raw_ws`]); for amqp, lapin publishing and
//! consuming through the broker as our transport does ([`super::raw_amqp`]); in every
//! case no session layer on top: no hello, no ids, no MessagePack, no tasks, no
//! channels.
//!
//! The server is a minimal echo: it reads every frame already received, answers each,
//! and flushes once. Frames are tagged by their first byte: `E` is echoed, `N` is
//! counted and not answered (the one-way baseline), `Q` is answered with the count
//! as 8 big-endian bytes. The client keeps `in_flight` frames outstanding, the sizes
//! of our encoded Requests, in one task.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use redpepper_core::transport::{BoxReader, BoxWriter};
use redpepper_core::Transport as _;

use super::{
    emit, notification_len, raw_amqp, raw_ws, request_len, stdin_lines, tagged_frame, PairArgs,
};
use crate::setup::{Transport, PAIR_AGENT};
use crate::stats::Samples;
use crate::tasks::{Task, TaskResult};

/// Echo server: for tls on the factory's listener for the manager configuration,
/// for websocket on tokio-tungstenite directly, for amqp on a queue of its own (named
/// in its `ready` line).
pub async fn server(args: &PairArgs) -> anyhow::Result<()> {
    let world = args.common.world();
    let transport = args.common.transport()?;
    let config = world.manager_config(transport, &args.common.amqp_url)?;
    let mut commands = stdin_lines();
    let (reader, writer) = match transport {
        Transport::Tls => {
            let mut listeners = redpepper_transports::listeners(&config).await?;
            let mut listener = listeners.pop().context("the factory built no listener")?;
            let port = listener.local_addr().map_or(0, |a| a.port());
            emit("ready", serde_json::json!({ "port": port }));
            tokio::select! {
                c = listener.accept() => c?.await?.split(),
                _ = commands.recv() => bail!("stopped before the client connected"),
            }
        }
        Transport::Websocket | Transport::WebsocketNginx => {
            let (listener, port) = raw_ws::bind().await?;
            emit("ready", serde_json::json!({ "port": port }));
            let tls = transport == Transport::Websocket;
            tokio::select! {
                halves = raw_ws::accept(listener, &config, tls) => halves?,
                _ = commands.recv() => bail!("stopped before the client connected"),
            }
        }
        Transport::Amqp => {
            let tls = raw_amqp::broker_tls(&args.common.amqp_url, &config.tls)?;
            let (queue, reader, writer) = raw_amqp::bind(&args.common.amqp_url, tls).await?;
            emit("ready", serde_json::json!({ "port": 0, "queue": queue }));
            (reader, writer)
        }
    };
    tokio::select! {
        r = echo(reader, writer) => r,
        _ = commands.recv() => Ok(()),
    }
}

async fn echo(mut reader: BoxReader, mut writer: BoxWriter) -> anyhow::Result<()> {
    let mut count = 0u64;
    while let Some(frame) = reader.next().await {
        answer(&mut writer, frame?, &mut count).await?;
        while let Some(Some(frame)) = reader.next().now_or_never() {
            answer(&mut writer, frame?, &mut count).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

async fn answer(writer: &mut BoxWriter, frame: Bytes, count: &mut u64) -> anyhow::Result<()> {
    match frame.first() {
        Some(b'N') => *count += 1,
        Some(b'Q') => {
            writer
                .feed(Bytes::copy_from_slice(&count.to_be_bytes()))
                .await?
        }
        _ => writer.feed(frame).await?,
    }
    Ok(())
}

/// Client: dial with the factory's dialer for the agent configuration, run the tasks.
pub async fn client(args: &PairArgs) -> anyhow::Result<()> {
    let tasks = args.tasks()?.context("the raw client needs --drive")?;
    let world = args.common.world();
    let transport = args.common.transport()?;
    let config = world.agent_config(transport, args.port, PAIR_AGENT, &args.common.amqp_url)?;
    let (mut reader, mut writer) = match transport {
        Transport::Tls => redpepper_transports::dialer(&config)?.dial().await?.split(),
        Transport::Websocket | Transport::WebsocketNginx => {
            raw_ws::connect(args.port, &config).await?
        }
        Transport::Amqp => {
            let queue = args
                .amqp_queue
                .as_deref()
                .context("the raw amqp client needs --amqp-queue")?;
            let tls = raw_amqp::broker_tls(&args.common.amqp_url, &config.tls)?;
            raw_amqp::dial(&args.common.amqp_url, tls, queue).await?
        }
    };
    let _stdin = stdin_lines();
    for task in &tasks {
        let result = match task {
            Task::Calls(c) => {
                let frame = tagged_frame(b'E', request_len(c.payload));
                let (measure_from, stop) = c.window();
                let window = Window { measure_from, stop };
                let mut r = calls(&mut reader, &mut writer, frame, c.in_flight, window).await?;
                r.label.clone_from(&c.label);
                r.payload = c.payload;
                r
            }
            Task::Notify { label, secs } => notify(&mut reader, &mut writer, label, *secs).await?,
        };
        emit("result", result);
    }
    emit("done", true);
    Ok(())
}

#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    stop: Instant,
}

async fn next_frame(reader: &mut BoxReader) -> anyhow::Result<Bytes> {
    match reader.next().await {
        Some(frame) => Ok(frame?),
        None => bail!("the echo server closed the connection"),
    }
}

/// The client's closed loop: send times wait in a queue (echoes come back in order).
struct EchoLoop {
    frame: Bytes,
    window: Window,
    sent: VecDeque<Instant>,
    samples: Samples,
    ok: u64,
    last: Instant,
}

impl EchoLoop {
    /// Account for one echo; send the next frame while the window is open.
    async fn on_echo(&mut self, writer: &mut BoxWriter) -> anyhow::Result<bool> {
        let now = Instant::now();
        let t0 = self.sent.pop_front().context("an echo nobody asked for")?;
        if t0 >= self.window.measure_from {
            self.samples.push(now - t0);
            self.ok += 1;
            self.last = now;
        }
        if now >= self.window.stop {
            return Ok(false);
        }
        self.sent.push_back(Instant::now());
        writer.feed(self.frame.clone()).await?;
        Ok(true)
    }
}

/// Keep `in_flight` echoes outstanding: answer every echo already received with a
/// new frame, then flush once.
async fn calls(
    reader: &mut BoxReader,
    writer: &mut BoxWriter,
    frame: Bytes,
    in_flight: usize,
    window: Window,
) -> anyhow::Result<TaskResult> {
    let mut state = EchoLoop {
        frame,
        window,
        sent: VecDeque::with_capacity(in_flight),
        samples: Samples::with_capacity(1 << 16),
        ok: 0,
        last: window.measure_from,
    };
    for _ in 0..in_flight.max(1) {
        state.sent.push_back(Instant::now());
        writer.feed(state.frame.clone()).await?;
    }
    writer.flush().await?;
    while !state.sent.is_empty() {
        next_frame(reader).await?;
        let mut fed = state.on_echo(writer).await?;
        while let Some(Some(echo)) = reader.next().now_or_never() {
            echo?;
            fed |= state.on_echo(writer).await?;
        }
        if fed {
            writer.flush().await?;
        }
    }
    let secs = state
        .last
        .saturating_duration_since(window.measure_from)
        .as_secs_f64();
    Ok(TaskResult::new("", state.ok, secs, 0, &mut state.samples))
}

async fn query(reader: &mut BoxReader, writer: &mut BoxWriter) -> anyhow::Result<u64> {
    writer.send(Bytes::from_static(b"Q")).await?;
    let answer = next_frame(reader).await?;
    let bytes: [u8; 8] = answer[..]
        .try_into()
        .map_err(|_| anyhow::anyhow!("count answer of {} bytes", answer.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// One-way frames the size of our encoded notification, flushed every 256, then a
/// count query.
async fn notify(
    reader: &mut BoxReader,
    writer: &mut BoxWriter,
    label: &str,
    secs: f64,
) -> anyhow::Result<TaskResult> {
    let frame = tagged_frame(b'N', notification_len());
    let before = query(reader, writer).await?;
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < stop {
        for _ in 0..256 {
            writer.feed(frame.clone()).await?;
            sent += 1;
        }
        writer.flush().await?;
    }
    let got = query(reader, writer).await?.saturating_sub(before);
    if got != sent {
        bail!("the echo server counted {got} of {sent} frames");
    }
    Ok(TaskResult::one_way(
        label,
        sent,
        start.elapsed().as_secs_f64(),
    ))
}
