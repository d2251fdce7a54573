//! The results: rows, their comparison with a baseline and a target, and their two
//! renderings (a markdown table for people, JSON for tools).
//!
//! **Ratio** is how many times better ours is than the baseline, whatever the metric:
//! `ours / baseline` for rates (higher is better), `baseline / ours` for times and
//! sizes (lower is better). Above 1 ours is better; "within 1.5x of raw" is a ratio
//! of at least 0.67.

use std::fmt::Write as _;

use serde::Serialize;

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Rates: calls/s, MB/s.
    Higher,
    /// Times and sizes: µs, s, KiB.
    Lower,
}

/// A goal from the issue; reported, never asserted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// The ratio against this row's baseline is at least this.
    RatioAtLeast(f64),
    /// Our figure is at most this (in the row's unit).
    AtMost(f64),
    /// Our figure is at least this (in the row's unit).
    AtLeast(f64),
}

impl Target {
    fn text(self, unit: &str) -> String {
        match self {
            Target::RatioAtLeast(r) => format!("ratio ≥ {}", fmt_num(r)),
            Target::AtMost(v) => format!("≤ {} {unit}", fmt_num(v)),
            Target::AtLeast(v) => format!("≥ {} {unit}", fmt_num(v)),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Workload, e.g. `1 sequential RTT`.
    pub workload: String,
    /// Transport (`tls`, `websocket`, `amqp`) or `-`.
    pub transport: String,
    /// `same-core`, `cross-core` or `-`.
    pub placement: String,
    /// What is measured, e.g. `manager→agent p50`.
    pub metric: String,
    /// Unit of `ours` and `baseline_value`.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// Our figure; `None` when not measured (see `note`).
    pub ours: Option<f64>,
    /// Name of the baseline.
    pub baseline: Option<String>,
    /// The baseline's figure, measured in the same run.
    pub baseline_value: Option<f64>,
    /// How many times better ours is (see the module docs).
    pub ratio: Option<f64>,
    /// The goal, if the issue sets one for this row.
    pub target: Option<Target>,
    /// The goal in words.
    pub target_text: Option<String>,
    /// Whether the goal was met (`None`: no goal, or not measured).
    pub met: Option<bool>,
    /// Why something is missing, or what to know.
    pub note: Option<String>,
}

impl Row {
    /// A row with our figure (`Err(reason)` when it could not be measured).
    pub fn new(
        workload: &str,
        transport: &str,
        placement: &str,
        metric: &str,
        unit: &str,
        better: Better,
        ours: Result<f64, String>,
    ) -> Row {
        let (ours, note) = match ours {
            Ok(v) => (Some(v), None),
            Err(reason) => (None, Some(format!("not measured: {}", short(&reason)))),
        };
        Row {
            workload: workload.to_owned(),
            transport: transport.to_owned(),
            placement: placement.to_owned(),
            metric: metric.to_owned(),
            unit: unit.to_owned(),
            better,
            ours,
            baseline: None,
            baseline_value: None,
            ratio: None,
            target: None,
            target_text: None,
            met: None,
            note,
        }
    }

    /// Compare with baseline `name` (`Err(reason)` when it could not be measured).
    pub fn against(mut self, name: &str, value: Result<f64, String>) -> Row {
        self.baseline = Some(name.to_owned());
        match value {
            Ok(v) => {
                self.baseline_value = Some(v);
                self.ratio = match (self.ours, self.better) {
                    (Some(o), _) if o <= 0.0 || v <= 0.0 => None,
                    (Some(o), Better::Higher) => Some(o / v),
                    (Some(o), Better::Lower) => Some(v / o),
                    (None, _) => None,
                };
            }
            Err(reason) => self.add_note(&format!("baseline not measured: {}", short(&reason))),
        }
        self.judge();
        self
    }

    /// Set the goal (`None`: none for this row).
    pub fn target(mut self, target: Option<Target>) -> Row {
        self.target = target;
        self.target_text = target.map(|t| t.text(&self.unit));
        self.judge();
        self
    }

    /// Add a remark.
    pub fn note(mut self, note: &str) -> Row {
        self.add_note(note);
        self
    }

    fn add_note(&mut self, note: &str) {
        self.note = Some(match self.note.take() {
            Some(n) => format!("{n}; {note}"),
            None => note.to_owned(),
        });
    }

    fn judge(&mut self) {
        self.met = match (self.target, self.ours, self.ratio) {
            (Some(Target::RatioAtLeast(r)), _, Some(ratio)) => Some(ratio >= r),
            (Some(Target::AtMost(v)), Some(ours), _) => Some(ours <= v),
            (Some(Target::AtLeast(v)), Some(ours), _) => Some(ours >= v),
            _ => None,
        };
    }
}

/// A failure reason fit for a table cell: without the child's stderr (printed with
/// the progress lines), at most 300 characters.
fn short(reason: &str) -> String {
    let head = reason
        .split("; its stderr ends with")
        .next()
        .unwrap_or(reason);
    match head.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &head[..i]),
        None => head.to_owned(),
    }
}

/// Facts about the run printed above the table and stored in the JSON.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Meta {
    /// UTC time the run started (RFC 3339).
    pub date: String,
    /// The command line.
    pub command: String,
    /// CPU model.
    pub cpu: String,
    /// CPUs the run may use.
    pub cpus: Vec<usize>,
    /// `/proc/loadavg` at the start.
    pub load_before: String,
    /// `/proc/loadavg` at the end.
    pub load_after: String,
    /// `git describe` of the work tree, if any.
    pub git: Option<String>,
    /// Quick mode (figures not meaningful).
    pub quick: bool,
    /// Measured seconds per task.
    pub secs_per_task: f64,
    /// The Python interpreter of the RedPepper 0.3.4 baseline, if used.
    pub python: Option<String>,
    /// The broker of the amqp rows (or why there was none), when amqp was asked for.
    pub amqp_broker: Option<String>,
    /// How things were run.
    pub notes: Vec<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Facts about the run.
    pub meta: Meta,
    /// The rows, in workload order.
    pub rows: Vec<Row>,
}

/// A number for people: thousands separated, 3 significant digits below 1000.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), fmt_num)
}

impl Report {
    /// The markdown rendering: a header with the run's facts, then one table.
    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Run of {}{}",
            m.date,
            if m.quick {
                " (QUICK MODE: figures not meaningful)"
            } else {
                ""
            }
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "- command: `{}`", m.command);
        let _ = writeln!(
            out,
            "- machine: {} ({} CPUs allowed: {:?})",
            m.cpu,
            m.cpus.len(),
            m.cpus
        );
        let _ = writeln!(
            out,
            "- load average before: {}; after: {}",
            m.load_before, m.load_after
        );
        if let Some(git) = &m.git {
            let _ = writeln!(out, "- source: {git}");
        }
        let _ = writeln!(out, "- measured seconds per task: {}", m.secs_per_task);
        if let Some(p) = &m.python {
            let _ = writeln!(out, "- RedPepper 0.3.4 baseline: {p}");
        }
        if let Some(b) = &m.amqp_broker {
            let _ = writeln!(out, "- AMQP broker: {b}");
        }
        for n in &m.notes {
            let _ = writeln!(out, "- {n}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Ratio: how many times better ours is (baseline/ours for times and sizes, ours/baseline for rates).");
        let _ = writeln!(out);
        let _ = writeln!(out, "| workload | transport | placement | metric | ours | baseline | baseline value | ratio | target | met | note |");
        let _ = writeln!(out, "|---|---|---|---|---:|---|---:|---:|---|---|---|");
        for r in &self.rows {
            let ours = match r.ours {
                Some(v) => format!("{} {}", fmt_num(v), r.unit),
                None => "–".to_owned(),
            };
            let base = match r.baseline_value {
                Some(v) => format!("{} {}", fmt_num(v), r.unit),
                None => "–".to_owned(),
            };
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**NO**",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.workload,
                r.transport,
                r.placement,
                r.metric,
                ours,
                r.baseline.as_deref().unwrap_or(""),
                base,
                r.ratio
                    .map_or_else(String::new, |x| format!("{}x", cell(Some(x)))),
                r.target_text.as_deref().unwrap_or(""),
                met,
                r.note
                    .as_deref()
                    .unwrap_or("")
                    .replace('|', "/")
                    .replace('\n', " "),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_better_than_baseline_either_way() {
        let t = Row::new(
            "w",
            "tls",
            "same-core",
            "p50",
            "µs",
            Better::Lower,
            Ok(10.0),
        )
        .against("raw", Ok(8.0))
        .target(Some(Target::RatioAtLeast(1.0 / 1.5)));
        assert_eq!(t.ratio, Some(0.8));
        assert_eq!(t.met, Some(true));
        let r = Row::new(
            "w",
            "tls",
            "same-core",
            "calls/s",
            "calls/s",
            Better::Higher,
            Ok(100.0),
        )
        .against("py", Ok(10.0))
        .target(Some(Target::RatioAtLeast(40.0)));
        assert_eq!(r.ratio, Some(10.0));
        assert_eq!(r.met, Some(false));
        let m = Row::new("w", "tls", "-", "x", "s", Better::Lower, Err("no".into()))
            .against("b", Ok(1.0))
            .target(Some(Target::AtMost(1.0)));
        assert_eq!(m.met, None);
        assert!(m
            .note
            .as_deref()
            .is_some_and(|n| n.contains("not measured")));
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(fmt_num(948_123.4), "948,123");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(0.1234), "0.123");
    }
}
