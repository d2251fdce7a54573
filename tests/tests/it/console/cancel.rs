//! Cancel from the page: a `command.Run` held running (a shell waiting for a file that
//! never comes), the Cancel button, then the run ends cancelled on the page and in the
//! manager's job log, and the agent has stopped the command.

use redpepper_tests::serde_json::json;
use redpepper_tests::{wait_reaped, TIMEOUT};

use super::browser::{run, Browser};
use super::{fleet_of_one, open, start_run, token_login};
use crate::faults::HeldCommand;

#[test]
fn cancel_in_the_page_ends_the_run_cancelled_and_stops_the_command() {
    let (f, _agent) = fleet_of_one("slow-1");
    let m = f.manager();
    let held = HeldCommand::new(f.dir.path(), "console-cancel");
    run(async {
        let b = Browser::start().await;
        open(&b, m).await;
        token_login(&b, 1).await;
        let kwargs = json!({ "command": held.command }).to_string();
        start_run(&b, "slow-1", "command.Run", &kwargs).await;
        let pid = held.pid();
        b.until(
            "the Cancel button enabled",
            "!document.getElementById('run-cancel').disabled",
        )
        .await;
        let runs = m.get("/v1/runs").json();
        let listed = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == "slow-1")
            .unwrap_or_else(|| panic!("the run is not in progress: {runs}"));
        assert_eq!(listed["pending"], json!(["slow-1"]), "{runs}");
        let run_id = listed["run_id"].as_str().unwrap().to_owned();

        b.click("#run-cancel").await;
        b.until(
            "the run's summary",
            "document.getElementById('run-summary').textContent.startsWith('1 agent(s): 0 succeeded, 1 failed (1 cancelled)')",
        )
        .await;
        let row = b.text("#run-table tr[data-agent='slow-1']").await;
        assert!(
            row.contains("cancelled")
                && row.contains("run cancelled; the agent stopped the command"),
            "{row}"
        );
        assert_ne!(
            b.eval("document.getElementById('run-start').disabled")
                .await,
            true,
            "the page is ready for another run"
        );
        b.screenshot("run-cancelled").await;
        b.client.close().await.unwrap();

        // The manager: no longer in progress; its job log says cancelled.
        let runs = m.get("/v1/runs").json();
        assert!(
            !runs["runs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["run_id"] == run_id.as_str()),
            "{runs}"
        );
        let job = m.get(&format!("/v1/jobs/{run_id}")).json();
        let result = &job["results"][0];
        assert_eq!(result["agent"], "slow-1", "{job}");
        assert_eq!(result["success"], false, "{job}");
        assert_eq!(result["code"], "cancelled", "{job}");
        // The agent stopped the command: its shell is gone.
        wait_reaped(pid, TIMEOUT).unwrap();
        assert!(
            m.proc
                .find_line(|l| l.contains("console action")
                    && l.contains("DELETE")
                    && l.contains(&run_id))
                .is_some(),
            "no audit line for the cancel"
        );
    });
}
