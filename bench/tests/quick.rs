//! Keeps the benchmark tool working: runs `redpepper-bench --quick` (no Python, one
//! placement) over TLS, over AMQP with the private RabbitMQ node the run starts, and
//! the cluster workloads (two clustered managers through that node), the transport
//! fallback (a relay cut in front of the manager's TLS port), and checks that it exits cleanly and writes a JSON report with a measured figure
//! in every workload. No figure is judged: these are benchmarks, and CI machines are
//! shared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

/// The two-process and fleet workloads (the codec's does not depend on a transport).
const TRANSPORT_WORKLOADS: [&str; 7] = [
    "1 sequential RTT",
    "2 pipelined",
    "3 notifications",
    "4 payload",
    "5 connect storm",
    "6 fan-out",
    "7 memory",
];

/// Run `redpepper-bench --quick --no-python --placement same-core ARGS --json ...`;
/// the report and the run's stderr.
fn quick_run(args: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_redpepper-bench"))
        .args(["--quick", "--no-python", "--placement", "same-core"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running redpepper-bench");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "redpepper-bench failed: {}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        output.status
    );
    assert!(
        stdout.contains("| workload |"),
        "no table on stdout:\n{stdout}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["meta"]["quick"], true);
    (report, stderr)
}

/// Every row of each of `workloads` has our figure (and there is at least one).
fn assert_measured(report: &Value, workloads: &[&str], stderr: &str) {
    let rows = report["rows"].as_array().expect("rows");
    for &workload in workloads {
        let of_workload: Vec<&Value> = rows.iter().filter(|r| r["workload"] == workload).collect();
        assert!(!of_workload.is_empty(), "no rows for {workload}");
        for row in of_workload {
            // A handful of handshakes may cost less than /proc's 10 ms CPU tick.
            if row["metric"]
                .as_str()
                .is_some_and(|m| m.contains("CPU per handshake"))
            {
                continue;
            }
            assert!(
                row["ours"].is_number(),
                "{workload}: not measured: {row}\nstderr:\n{stderr}"
            );
        }
    }
}

/// Every row of `workload` against baseline `raw` has the baseline's figure.
fn assert_raw_measured(report: &Value, workload: &str, raw: &str, stderr: &str) {
    let rows = report["rows"].as_array().expect("rows");
    let against: Vec<&Value> = rows
        .iter()
        .filter(|r| r["workload"] == workload && r["baseline"] == raw)
        .collect();
    assert!(!against.is_empty(), "{workload}: no rows against {raw}");
    for row in against {
        assert!(
            row["baseline_value"].is_number(),
            "{workload}: {raw} not measured: {row}\nstderr:\n{stderr}"
        );
    }
}

/// Every workload but the cluster's (which need a broker: their own test below).
const TLS_WORKLOADS: &str = "rtt,pipeline,notify,payload,storm,fanout,memory,codec,storm-at-once";

/// The cluster workloads' rows (10-13).
const CLUSTER_WORKLOADS: [&str; 4] = [
    "10 cluster calls",
    "11 cluster fan-out",
    "12 cluster failover",
    "13 cluster memory",
];

/// Whether a test that needs RabbitMQ runs here: always under CI=true (scripts/test
/// installs it), else only when it is installed.
fn rabbitmq_or_skip(what: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !ci && !redpepper_tests::rabbitmq::installed() {
        eprintln!("skipping {what}: RabbitMQ is not installed (scripts/test installs it)");
        return false;
    }
    true
}

#[test]
fn quick_mode_measures_every_workload_over_tls() {
    let (report, stderr) = quick_run(&["--transports", "tls", "--workloads", TLS_WORKLOADS]);
    let mut workloads = TRANSPORT_WORKLOADS.to_vec();
    workloads.extend(["8 codec", "9 storm at once"]);
    assert_measured(&report, &workloads, &stderr);
    // The raw baseline runs in the same run.
    let rows = report["rows"].as_array().expect("rows");
    assert!(rows.iter().any(|r| r["workload"] == "1 sequential RTT"
        && r["baseline"] == "raw framed TLS echo"
        && r["baseline_value"].is_number()
        && r["ratio"].is_number()));
    // The all-at-once storm ran with both keys and, in quick mode too, the restart.
    for key in ["ECDSA P-256", "RSA-2048"] {
        let restart = format!("{key}, 20 after a manager restart: all connected");
        assert!(
            rows.iter().any(|r| r["metric"] == restart.as_str()),
            "no row {restart:?}"
        );
    }
}

/// About 20 s, most of it the private RabbitMQ node starting and stopping. Without
/// RabbitMQ it is skipped with a message, except under CI=true (scripts/test installs
/// it), where the run's "not measured" rows fail it.
#[test]
fn quick_mode_measures_every_workload_over_amqp() {
    if !rabbitmq_or_skip("the amqp quick run") {
        return;
    }
    let workloads = "rtt,pipeline,notify,payload,storm,fanout,memory";
    let (report, stderr) = quick_run(&["--transports", "amqp", "--workloads", workloads]);
    assert!(
        report["meta"]["amqp_broker"].is_string(),
        "no broker in the run's header: {}",
        report["meta"]
    );
    assert_measured(&report, &TRANSPORT_WORKLOADS, &stderr);
    for workload in &TRANSPORT_WORKLOADS[..4] {
        assert_raw_measured(&report, workload, "raw lapin round trip", &stderr);
    }
}

/// Two clustered managers as processes through the private RabbitMQ node: every
/// cluster workload has its figures, and the cross-node calls have their raw lapin
/// baseline. Skipped like the amqp run without RabbitMQ.
#[test]
fn quick_mode_measures_the_cluster_workloads() {
    if !rabbitmq_or_skip("the cluster quick run") {
        return;
    }
    let workloads = "cluster-calls,cluster-fanout,cluster-failover,cluster-memory";
    let (report, stderr) = quick_run(&["--transports", "tls", "--workloads", workloads]);
    assert_measured(&report, &CLUSTER_WORKLOADS, &stderr);
    assert_raw_measured(&report, "10 cluster calls", "raw lapin round trip", &stderr);
    let rows = report["rows"].as_array().expect("rows");
    assert!(
        rows.iter().any(|r| r["workload"] == "10 cluster calls"
            && r["baseline"] == "local call on node A"
            && r["baseline_value"].is_number()),
        "no local-call baseline\nstderr:\n{stderr}"
    );
}

/// `[tls, websocket]` agents whose TLS path (a relay) is cut, then restored: the three
/// rows of workload 15 have their figures (about 3 s; no broker).
#[test]
fn quick_mode_measures_the_transport_fallback() {
    let workload = "15 transport fallback";
    let (report, stderr) = quick_run(&["--workloads", "transport-fallback"]);
    assert_measured(&report, &[workload], &stderr);
    let rows = report["rows"].as_array().expect("rows");
    let metrics: Vec<&str> = rows
        .iter()
        .filter(|r| r["workload"] == workload)
        .filter_map(|r| r["metric"].as_str())
        .collect();
    assert_eq!(
        metrics,
        [
            "TLS path cut under 20 agents: all answer over WebSocket",
            "TLS path back: all 20 agents on TLS again",
            "calls that failed during the move back",
        ],
        "stderr:\n{stderr}"
    );
    // The cut is judged against the agent's dial limit plus its first delay.
    assert!(
        rows.iter()
            .any(|r| r["workload"] == workload && r["target"]["kind"] == "at_most"),
        "no target on the cut"
    );
}
