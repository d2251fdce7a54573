//! Workload 2: pipelined throughput on one session, manager→agent, with 1, 16, 64
//! and 256 calls in flight: calls/s and p99, against the raw echo with the same
//! number of frames in flight and against RedPepper 0.3.4.

use super::pair::{Driver, Impl, PairResults, RunKey};
use super::{calls, raw_name, Ctx, REDPEPPER};
use crate::placement::Placement;
use crate::report::{Better, Row, Target};
use crate::setup::Transport;
use crate::tasks::Task;

const WORKLOAD: &str = "2 pipelined";
/// Calls in flight.
pub const DEPTHS: [usize; 4] = [1, 16, 64, 256];

fn label(depth: usize) -> String {
    format!("pipe-{depth}")
}

/// Manager→agent for ours and RedPepper; the raw echo client.
pub fn tasks(ctx: &Ctx, imp: Impl, driver: Driver) -> Vec<Task> {
    let wanted = match driver {
        Driver::Manager => true,
        Driver::Agent => imp == Impl::Raw,
    };
    if !wanted {
        return vec![];
    }
    DEPTHS
        .iter()
        .map(|&depth| calls(ctx, label(depth), depth, 0))
        .collect()
}

/// Rows of one transport and placement.
pub fn rows(res: &PairResults, transport: Transport, placement: Placement) -> Vec<Row> {
    let key = RunKey::of(transport, placement);
    let ours_key = key(Impl::Ours, Driver::Manager);
    let raw_key = key(Impl::Raw, Driver::Agent);
    let py_key = key(Impl::Python, Driver::Manager);
    let mut rows = Vec::new();
    for depth in DEPTHS {
        let l = label(depth);
        let rate = |k| res.metric(k, &l, |r| r.rate());
        let p99 = |k| res.metric(k, &l, |r| r.p99_us);
        let row = |metric: &str, unit, better, ours: Result<f64, String>| {
            Row::new(
                WORKLOAD,
                transport.as_str(),
                placement.as_str(),
                metric,
                unit,
                better,
                ours,
            )
        };
        let calls = format!("{depth} in flight");
        let top = depth == 64;
        let raw_target = match transport {
            Transport::Tls if top => Some(Target::RatioAtLeast(0.4)),
            _ => None,
        };
        rows.push(
            row(&calls, "calls/s", Better::Higher, rate(ours_key))
                .against(&raw_name(transport), rate(raw_key))
                .target(raw_target),
        );
        match transport {
            Transport::Tls => {
                if res.python {
                    let target = top.then_some(Target::RatioAtLeast(40.0));
                    rows.push(
                        row(&calls, "calls/s", Better::Higher, rate(ours_key))
                            .against(REDPEPPER, rate(py_key))
                            .target(target),
                    );
                }
                if top && placement == Placement::CrossCore {
                    rows.push(
                        row(&calls, "calls/s", Better::Higher, rate(ours_key))
                            .target(Some(Target::AtLeast(300_000.0))),
                    );
                }
            }
            Transport::Websocket | Transport::WebsocketNginx => {
                let tls = RunKey::of(Transport::Tls, placement)(Impl::Ours, Driver::Manager);
                let goal = if transport == Transport::Websocket {
                    0.8
                } else {
                    0.5
                };
                rows.push(
                    row(&calls, "calls/s", Better::Higher, rate(ours_key))
                        .against("ours over tls", rate(tls))
                        .target(top.then_some(Target::RatioAtLeast(goal))),
                );
            }
            Transport::Amqp => {
                if top {
                    rows.push(
                        row(&calls, "calls/s", Better::Higher, rate(ours_key))
                            .target(Some(Target::AtLeast(20_000.0))),
                    );
                }
            }
        }
        rows.push(
            row(&format!("{calls} p99"), "µs", Better::Lower, p99(ours_key))
                .against(&raw_name(transport), p99(raw_key)),
        );
    }
    rows
}
