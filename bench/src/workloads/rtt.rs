//! Workload 1: sequential call round trip, one call in flight, manager→agent and
//! agent→manager: p50, p99, p99.9 against the raw echo and RedPepper 0.3.4.

use super::pair::{Driver, Impl, PairResults, RunKey};
use super::{calls, raw_name, Ctx, REDPEPPER};
use crate::placement::Placement;
use crate::report::{Better, Row, Target};
use crate::setup::Transport;
use crate::tasks::{Task, TaskResult};

const LABEL: &str = "rtt";
const WORKLOAD: &str = "1 sequential RTT";

/// The task of every run (the raw echo has one direction).
pub fn tasks(ctx: &Ctx, _imp: Impl, _driver: Driver) -> Vec<Task> {
    vec![calls(ctx, LABEL.to_owned(), 1, 0)]
}

type Quantile = fn(&TaskResult) -> Option<f64>;

const QUANTILES: [(&str, Quantile); 3] = [
    ("p50", |r| r.p50_us),
    ("p99", |r| r.p99_us),
    ("p99.9", |r| r.p999_us),
];

/// Rows of one transport and placement.
pub fn rows(res: &PairResults, transport: Transport, placement: Placement) -> Vec<Row> {
    let key = RunKey::of(transport, placement);
    let mut rows = Vec::new();
    for driver in [Driver::Manager, Driver::Agent] {
        for (q, f) in QUANTILES {
            let metric = format!("{} {q}", driver.direction());
            let ours = res.metric(key(Impl::Ours, driver), LABEL, f);
            let raw_target = match (q, transport) {
                ("p50", Transport::Tls) => Some(Target::RatioAtLeast(1.0 / 1.5)),
                ("p50", Transport::Amqp) => Some(Target::RatioAtLeast(1.0 / 1.3)),
                _ => None,
            };
            let row = |baseline: &str, value| {
                Row::new(
                    WORKLOAD,
                    transport.as_str(),
                    placement.as_str(),
                    &metric,
                    "µs",
                    Better::Lower,
                    ours.clone(),
                )
                .against(baseline, value)
            };
            let raw = res.metric(key(Impl::Raw, Driver::Agent), LABEL, f);
            rows.push(row(&raw_name(transport), raw).target(raw_target));
            if transport == Transport::Tls && res.python {
                let py = res.metric(key(Impl::Python, driver), LABEL, f);
                let target = (q == "p50").then_some(Target::RatioAtLeast(8.0));
                rows.push(row(REDPEPPER, py).target(target));
            }
        }
    }
    rows
}
