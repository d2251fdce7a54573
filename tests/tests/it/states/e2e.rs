//! RedPepper's state flow end to end, with real processes: our `redpepper-manager`
//! serving `custom` requests from a RedPepper data directory, the real Python 0.3.4
//! agent and our `redpepper-agent` applying states, the Python manager serving the same
//! directory to our agent, and hostile requests from an agent.
//!
//! Every test asserts on what the agent did (files written, files not written) and on
//! the `command_result` it sent. The data directories and the reports expected for
//! them are in `e2e/fixtures.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use base64::Engine as _;
use redpepper_tests::fleet::{secret_of, write_tree, Fleet};
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::*;

use crate::support::admin::ctl;

mod fixtures;

use fixtures::{
    our_agent_data, our_agent_output, python_agent_data, python_agent_output, CONF, MOTD,
};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `out/` of `fleet`, created.
fn out_dir(fleet: &Fleet) -> std::path::PathBuf {
    let out = fleet.path("out");
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// Our manager program with its admin API, knowing agents `ids`, serving the data
/// directory `data` makes for `out/`.
fn our_manager(ids: &[&str], data: fn(&Path) -> Vec<(&'static str, String)>) -> Fleet {
    let mut fleet = Fleet::builder().agents(ids).admin().build();
    let out = out_dir(&fleet);
    write_tree(&fleet.data_dir(), &data(&out));
    fleet.spawn_manager();
    fleet
}

/// The TLS port of `fleet`'s manager.
fn port(fleet: &Fleet) -> u16 {
    fleet.manager().tls_addr.expect("TLS listener").port()
}

/// A Python agent `id` connected to `fleet`'s manager.
fn python_agent(fleet: &Fleet, id: &str) -> PyAgent {
    let config = fleet.py_agent_config(&format!("py-agent-{id}"), port(fleet), id, &secret_of(id));
    let agent = PyAgent::start(&config);
    agent.wait_connected(TIMEOUT).unwrap();
    fleet.manager().connected(id, 0);
    agent
}

/// The progress lines `redpepper-ctl run` prints (not on a terminal) for the
/// default state of `tasks` on `agent`, all succeeding.
fn default_state_progress(agent: &str, tasks: &[&str]) -> Vec<String> {
    let n = tasks.len();
    let mut lines = vec![format!("{agent}: [0/{n}] Starting ...")];
    for (i, task) in tasks.iter().enumerate() {
        lines.push(format!("{agent}: [{i}/{n}] Running {task}"));
        lines.push(format!("{agent}: [{}/{n}] {task} done", i + 1));
    }
    lines
}

/// The progress lines of `agent` in `redpepper-ctl run`'s output (`AGENT: [i/N] ...`).
fn progress_lines(agent: &str, stdout: &[String]) -> Vec<String> {
    let prefix = format!("{agent}: [");
    stdout
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .cloned()
        .collect()
}

/// The command output of `agent` in `redpepper-ctl run`'s output (`AGENT> ...` lines).
fn output_of(agent: &str, stdout: &[String]) -> String {
    let prefix = format!("{agent}> ");
    let lines: Vec<&str> = stdout
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    lines.join("\n")
}

/// The one result of a plain `POST /v1/runs`.
fn api_run(fleet: &Fleet, body: &Value) -> Value {
    let answer = fleet.manager().post("/v1/runs", body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let v = answer.json();
    assert_eq!(v["summary"]["total"], 1, "{v}");
    v["results"][0].clone()
}

/// The Python agent runs the default state its groups merge, as our manager serves
/// it: interpolated data, a file fetched with `dataFileContents`, a file with
/// interpolated content, a skipped and a run condition, a custom operation module
/// from `operations/`; then a named state through the admin API.
#[test]
fn python_agent_applies_states_from_our_manager() {
    let id = "py1";
    let fleet = our_manager(&[id], python_agent_data);
    let _agent = python_agent(&fleet, id);
    let out = fleet.path("out");
    let o = out.display();

    let run = ctl(&fleet, &["run", id, "state"]);
    assert_eq!(run.code, 0, "{run}");
    let tasks = [
        "greet",
        "files:motd",
        "files:site",
        "skipped",
        "ran",
        "custom",
    ];
    assert_eq!(
        progress_lines(id, &run.stdout),
        default_state_progress("py1", &tasks),
        "{run}"
    );
    assert!(
        run.stdout
            .contains(&"py1: succeeded (changed: yes)".to_owned()),
        "{run}"
    );
    assert_eq!(
        output_of(id, &run.stdout),
        python_agent_output(&out),
        "{run}"
    );
    assert_eq!(read(&out.join("motd.txt")), MOTD);
    assert_eq!(
        read(&out.join("site.conf")),
        "name=Pepper Site\nport=8080\n"
    );
    assert!(!out.join("skipped").exists(), "the condition did not skip");
    assert_eq!(read(&out.join("ran")), "py1\n");
    assert_eq!(read(&out.join("hi.txt")), "hi Pepper Site\n");

    // A named state, through the admin API as RedPepper's manager sends it.
    let r = api_run(
        &fleet,
        &json!({"target": "py1", "operation": "state", "args": ["deploy"]}),
    );
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        r["output"],
        format!(
            "Operation deploy succeeded (changed):\n\nRunning state deploy:\n\
             Operation Run(\"echo deploying Pepper Site > {o}/deploy.txt\") succeeded (changed):"
        )
    );
    assert_eq!(read(&out.join("deploy.txt")), "deploying Pepper Site\n");
}

/// Our agent applies the same default state from our manager (through
/// `redpepper-ctl`) and from the Python manager, with the same output; an operation
/// it does not run fails its task and stops the state.
#[test]
fn our_agent_applies_a_state_from_our_manager_and_from_the_python_manager() {
    let id = "rs1";
    let fleet = our_manager(&[id], our_agent_data);
    let out = fleet.path("out");
    let agent = fleet.spawn_agent(id);
    fleet.manager().connected(id, 0);

    let run = ctl(&fleet, &["run", id, "state"]);
    assert_eq!(run.code, 0, "{run}");
    let tasks = [
        "greet",
        "show",
        "files:conf",
        "write",
        "skipped",
        "after",
        "nothing",
    ];
    assert_eq!(
        progress_lines(id, &run.stdout),
        default_state_progress(id, &tasks),
        "{run}"
    );
    let ours = output_of(id, &run.stdout);
    assert_eq!(ours, our_agent_output(&out), "{run}");
    assert_eq!(read(&out.join("conf.txt")), CONF);
    assert_eq!(read(&out.join("site.txt")), "Rust Site\n");
    assert!(out.join("after").exists());
    assert!(!out.join("skipped").exists(), "the condition did not skip");

    // A Python operation module: that task fails, the state stops there.
    let r = api_run(
        &fleet,
        &json!({"target": id, "operation": "state", "args": ["custom"]}),
    );
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(
        r["output"],
        "Operation custom failed:\n\nRunning state first:\nOperation echo.Echo(\"first\") succeeded:\nfirst\n\n\
         Running state custom:\nOperation custom failed:\nFailed to execute state custom:\n\
         operation myop.Hi is not available in this agent"
    );
    assert!(!out.join("hi.txt").exists() && !out.join("never").exists());
    drop(agent);

    // The same data directory served by the Python manager, to our agent.
    for f in ["conf.txt", "site.txt", "after"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let config = fleet.py_manager_config();
    write_tree(&config.data_dir, &our_agent_data(&out));
    let manager = PyManager::start(&config);
    let agent_yml = fleet
        .py_agent_config("rs-agent", manager.port(), id, &secret_of(id))
        .write();
    let _agent = fleet.spawn_agent_from("rs1-on-python", &agent_yml, &[]);
    manager.wait_agent(id, TIMEOUT).unwrap();
    let theirs = manager.command(id, "state", json!({}), TIMEOUT).unwrap();
    assert_eq!(theirs["success"], true, "{theirs}");
    assert_eq!(theirs["changed"], true, "{theirs}");
    assert_eq!(theirs["output"], ours.as_str());
    assert_eq!(read(&out.join("conf.txt")), CONF);
    assert_eq!(read(&out.join("site.txt")), "Rust Site\n");
    assert!(out.join("after").exists() && !out.join("skipped").exists());
}

/// An agent asking for files outside its group's data directory (`..`, absolute
/// paths, backslashes, a symlink leading out) gets error answers that carry nothing
/// of them; the same session still gets a legitimate file; a Python agent's state
/// sourcing such a file fails and writes nothing of it.
#[test]
fn path_traversal_gets_an_error_and_reads_nothing() {
    const SECRET: &str = "TOP-SECRET manager file\n";
    // `py-raw` (a wire-level peer) asks; `py9` (a Python agent) runs a state.
    let fleet = our_manager(&["py9", "py-raw"], python_agent_data);
    let _agent = python_agent(&fleet, "py9");
    std::fs::write(fleet.path("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(
        fleet.path("secret.txt"),
        fleet.data_dir().join("data/py/escape"),
    )
    .unwrap();
    let contents = |name: &str| json!({"filename": name, "offset": 0, "length": 4096});
    let asks: Vec<(&str, Value)> = vec![
        ("dataFileContents", contents("../../secret.txt")),
        (
            "dataFileContents",
            contents("../../../../../../../../etc/passwd"),
        ),
        ("dataFileContents", contents("/etc/passwd")),
        ("dataFileContents", contents("..\\..\\secret.txt")),
        ("dataFileContents", contents("escape")),
        ("dataFileHash", json!({"path": "escape"})),
        ("dataFileStat", json!({"path": "../agents.yml"})),
        (
            "operationModule",
            json!({"name": "../../secret", "existing_mtime": null, "existing_size": null}),
        ),
        ("stateDefinition", json!({"state_name": "../../secret"})),
        ("dataFileContents", contents("etc/motd.txt")),
    ];
    let mut args = vec![
        "--id".to_owned(),
        "py-raw".to_owned(),
        "--secret".to_owned(),
        secret_of("py-raw"),
        "--recv".to_owned(),
        (asks.len() + 1).to_string(),
    ];
    for (i, (name, kwargs)) in asks.iter().enumerate() {
        let request = json!({"t": 20, "id": format!("r{i}"), "method": "custom", "args": [name], "kwargs": kwargs});
        args.extend(["--send".to_owned(), request.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let peer = raw_peer(port(&fleet), &fleet.certs.ca_cert, &args);
    peer.wait_for_json(|v| v["event"] == "exit", TIMEOUT)
        .unwrap();
    let answers: Vec<Value> = peer
        .stdout_lines()
        .iter()
        .filter_map(|l| redpepper_tests::serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "received" && v["message"]["t"] == 21)
        .map(|v| v["message"].clone())
        .collect();
    assert_eq!(answers.len(), asks.len(), "{}", peer.tail(40));
    let answer = |i: usize| -> &Value {
        answers
            .iter()
            .find(|a| a["id"] == format!("r{i}"))
            .unwrap_or_else(|| panic!("no answer r{i}: {answers:?}"))
    };
    let secret_b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let secret_hash = sha256_hex(SECRET);
    for (i, ask) in asks.iter().enumerate().take(asks.len() - 1) {
        let a = answer(i);
        assert_eq!(a["success"], false, "{ask:?}: {a}");
        let text = a["data"].as_str().unwrap_or_else(|| panic!("{a}"));
        for leak in [
            SECRET.trim_end(),
            &secret_b64[..16],
            secret_hash.as_str(),
            "root:",
        ] {
            assert!(!text.contains(leak), "{ask:?}: {a}");
        }
    }
    assert_eq!(
        answer(0)["data"],
        "Unacceptable file name: '../../secret.txt'"
    );
    assert_eq!(answer(7)["data"], "Invalid module name: '../../secret'");
    assert_eq!(answer(8)["data"], "Invalid state name: '../../secret'");
    for i in [1, 3, 4, 5, 6] {
        let text = answer(i)["data"].as_str().unwrap();
        assert!(
            text.starts_with("Unacceptable file name: "),
            "{:?}: {text}",
            asks[i]
        );
    }
    // `/etc/passwd` is `etc/passwd` in the group directory, as in RedPepper.
    assert_eq!(answer(2)["data"], "File not found: /etc/passwd");
    let motd = answer(asks.len() - 1);
    assert_eq!(motd["success"], true, "{motd}");
    assert_eq!(
        motd["data"],
        base64::engine::general_purpose::STANDARD.encode(MOTD)
    );

    // A real agent's state sourcing a file outside: the task fails, nothing is copied.
    let r = api_run(
        &fleet,
        &json!({"target": "py9", "operation": "state", "args": ["steal"]}),
    );
    assert_eq!(r["success"], false, "{r}");
    let output = r["output"].as_str().unwrap();
    assert!(
        output.ends_with("RPCError: Unacceptable file name: '../../secret.txt'"),
        "{output}"
    );
    let stolen = fleet.path("out").join("stolen");
    assert_eq!(
        read(&stolen),
        "",
        "RedPepper's agent creates the file first, empty"
    );
}
