//! Runs in progress through `redpepper-ctl`: `runs` lists them, Ctrl-C during `run`
//! cancels the run (its agents get `cancel`, their results say `cancelled`), `cancel`
//! of a run that is over is an error. The agents are our `redpepper-agent` on the shared
//! fleet; whether one stops its command is the agent's business (the result line says
//! what it answered), the run ends either way.

use super::*;

#[test]
fn ctrl_c_cancels_a_run_and_runs_lists_it_meanwhile() {
    let f = shared();
    let run = Proc::spawn(
        "ctl-run",
        ctl_cmd(
            f,
            &[
                "run",
                "cancel-00",
                "command.Run",
                "-k",
                "command=sleep 45",
                "--timeout",
                "600",
            ],
        ),
    );
    run.wait_for_line(|l| l.starts_with("cancel-00: started"), TIMEOUT)
        .unwrap();

    let listed = ctl(f, &["runs", "--json"]).json();
    let mine = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation"] == "command.Run" && r["target"] == "cancel-00")
        .unwrap_or_else(|| panic!("not listed: {listed}"))
        .clone();
    assert_eq!(mine["pending"], json!(["cancel-00"]), "{listed}");
    let run_id = mine["run_id"].as_str().unwrap().to_owned();
    let table = ctl(f, &["runs"]);
    assert!(
        table
            .stdout
            .iter()
            .any(|l| l.starts_with(&run_id) && l.contains("cancel-00")),
        "{table}"
    );

    run.signal(Signal::SIGINT).unwrap();
    run.wait_for_line(
        |l| l.contains(&format!("redpepper-ctl: cancelling run {run_id}")),
        TIMEOUT,
    )
    .unwrap();
    let status = run.wait_exit(TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(1), "{}", run.tail(20));
    assert!(
        run.find_line(|l| l.starts_with("cancel-00: FAILED (cancelled): run cancelled; "))
            .is_some(),
        "{}",
        run.tail(20)
    );

    // Over: no longer listed, and cancelling it again says so.
    let listed = ctl(f, &["runs", "--json"]).json();
    assert!(
        !listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["run_id"] == run_id.as_str()),
        "{listed}"
    );
    let again = ctl(f, &["cancel", &run_id]);
    assert_eq!(again.code, 2, "{again}");
    assert!(
        again.stderr.iter().any(|l| l.contains("not_found")),
        "{again}"
    );
}
