//! Keeps the benchmark tool working: runs `redpepper-bench --quick` over TLS (no
//! Python, one placement) and checks that it exits cleanly and writes a JSON report
//! with a measured figure in every workload. No figure is judged: these are
//! benchmarks, and CI machines are shared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_mode_measures_every_workload_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_redpepper-bench"))
        .args(["--quick", "--no-python", "--transports", "tls"])
        .args(["--placement", "same-core", "--json"])
        .arg(&json)
        .output()
        .expect("running redpepper-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
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
    let rows = report["rows"].as_array().expect("rows");
    for workload in [
        "1 sequential RTT",
        "2 pipelined",
        "3 notifications",
        "4 payload",
        "5 connect storm",
        "6 fan-out",
        "7 memory",
        "8 codec",
    ] {
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
    // The raw baseline runs in the same run.
    assert!(rows.iter().any(|r| r["workload"] == "1 sequential RTT"
        && r["baseline"] == "raw framed TLS echo"
        && r["baseline_value"].is_number()
        && r["ratio"].is_number()));
}
