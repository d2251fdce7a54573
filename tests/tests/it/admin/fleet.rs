//! `redpepper-ctl` for a fleet (issue 16): a manager whose agents.yml knows an agent
//! that never connects. The down agent is listed, a run on a target including it exits
//! 1 naming it; targets by agents.yml `data` and by regex; `--batch` waves; `--out
//! yaml`; `jobs` / `job ID` after the client that started the run exited; `agents add
//! --write` making an agent that then connects. Its own manager and agents.

use super::*;

/// agents.yml `data` of each agent: `role: web` for `web-*`, `role: db` otherwise.
fn with_roles(agents_yml: &str) -> String {
    let mut out = String::new();
    let mut current = String::new();
    for line in agents_yml.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = line
                .trim_end_matches(':')
                .trim_matches(['"', '\''])
                .to_owned();
        }
        if line == "  data: {}" {
            let role = if current.starts_with("web-") {
                "web"
            } else {
                "db"
            };
            out.push_str(&format!("  data: {{role: {role}, site: {{name: par1}}}}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn started_with_one_down() -> (Fleet, Vec<Proc>) {
    let up: Vec<String> = ["web-1", "web-2", "web-3", "db-1"]
        .map(str::to_owned)
        .to_vec();
    let mut known = up.clone();
    known.push("gone-1".to_owned());
    let mut f = Fleet::builder()
        .agents(&known)
        .admin()
        .ping_interval(1)
        .build();
    let file = f.data_dir().join("agents.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    let roles = with_roles(&text);
    assert_eq!(roles.matches("role: web").count(), 3, "{text}");
    std::fs::write(&file, roles).unwrap();
    f.spawn_manager();
    let agents = up.iter().map(|id| f.spawn_agent(id)).collect();
    wait_connected(&f, &up);
    (f, agents)
}

#[test]
fn a_fleet_with_a_down_agent_through_ctl() {
    let (f, _agents) = started_with_one_down();

    // Listed as down, never seen; the others connected.
    let r = ctl(&f, &["agents"]);
    assert_eq!(r.code, 0, "{r}");
    let gone = r.stdout.iter().find(|l| l.starts_with("gone-1 ")).unwrap();
    assert!(gone.contains("down (never seen)"), "{r}");
    let web = r.stdout.iter().find(|l| l.starts_with("web-2 ")).unwrap();
    assert!(web.contains("connected"), "{r}");
    assert!(
        r.stderr.iter().any(|l| l == "4 agent(s) connected, 1 down"),
        "{r}"
    );
    // --out yaml: the same document as YAML.
    let y = ctl(&f, &["agents", "--out", "yaml"]);
    assert_eq!(y.code, 0, "{y}");
    let text = y.stdout.join("\n");
    assert!(
        text.contains("id: gone-1") && text.contains("state: down"),
        "{text}"
    );
    assert!(!text.trim_start().starts_with('{'), "{text}");

    // A run including the down agent fails naming it; the others ran.
    let r = ctl(
        &f,
        &["run", "web-*,gone-1", "echo.Echo", "-k", "message=hi"],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stdout
            .iter()
            .any(|l| l.starts_with("gone-1: FAILED (not_connected)")),
        "{r}"
    );
    assert!(
        r.stderr
            .iter()
            .any(|l| l.contains("did not return (not connected): gone-1")),
        "{r}"
    );
    assert!(r.stdout.iter().any(|l| l == "web-3> hi"), "{r}");
    // A glob matches agents.yml too: `gone*` selects the down agent.
    let r = ctl(&f, &["run", "gone*", "noop.Noop"]);
    assert_eq!(r.code, 1, "{r}");

    // By agents.yml data, and by regex.
    let r = ctl(
        &f,
        &[
            "run",
            "-L",
            "role=web",
            "echo.Echo",
            "-k",
            "message=L",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    let results: Vec<Value> = r
        .json_lines()
        .into_iter()
        .filter(|v| v["event"] == "result")
        .collect();
    let mut agents: Vec<&str> = results
        .iter()
        .map(|v| v["agent"].as_str().unwrap())
        .collect();
    agents.sort_unstable();
    assert_eq!(agents, ["web-1", "web-2", "web-3"], "{r}");
    // Nested keys and globs; the down db agent is selected too (and fails).
    let r = ctl(
        &f,
        &[
            "run",
            "-L",
            "site.name=par*,role=db",
            "noop.Noop",
            "--out",
            "yaml",
        ],
    );
    assert_eq!(r.code, 1, "{r}");
    let text = r.stdout.join("\n");
    assert!(
        text.contains("- agent: db-1\n  changed: false\n  command_id:"),
        "{text}"
    );
    assert!(text.contains("not_connected:\n  - gone-1"), "{text}");
    let r = ctl(&f, &["run", "-E", r"^(web|db)-1$", "noop.Noop", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let summary: Value = serde_json::from_str(r.stdout.last().unwrap()).unwrap();
    assert_eq!(summary["total"], 2, "{r}");

    // --batch 1: one agent at a time, each result before the next start.
    let r = ctl(
        &f,
        &[
            "run",
            "web-*",
            "echo.Echo",
            "-k",
            "message=b",
            "--batch",
            "1",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    let events: Vec<(String, String)> = r
        .json_lines()
        .iter()
        .filter(|v| v["event"] == "started" || v["event"] == "result")
        .map(|v| (show(&v["event"]), show(&v["agent"])))
        .collect();
    assert_eq!(events.len(), 6, "{r}");
    for pair in events.chunks(2) {
        assert_eq!(pair[0].0, "started", "{events:?}");
        assert_eq!(
            (pair[1].0.as_str(), &pair[1].1),
            ("result", &pair[0].1),
            "{events:?}"
        );
    }
    let bad = ctl(&f, &["run", "web-*", "noop.Noop", "--batch", "0"]);
    assert_eq!(bad.code, 2, "{bad}");

    // jobs / job ID: the run with the down agent, its client long gone.
    let jobs = ctl(&f, &["jobs", "--out", "json"]).json();
    let failed = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["target"] == "web-*,gone-1")
        .unwrap_or_else(|| panic!("{jobs}"))
        .clone();
    assert_eq!(
        failed["summary"]["not_connected"],
        json!(["gone-1"]),
        "{failed}"
    );
    let id = failed["run_id"].as_str().unwrap();
    let r = ctl(&f, &["job", id]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stdout
            .iter()
            .any(|l| l.starts_with("gone-1: FAILED (not_connected)")),
        "{r}"
    );
    assert!(r.stdout.iter().any(|l| l == "web-1> hi"), "{r}");
    let table = ctl(&f, &["jobs"]);
    assert!(table.stdout.iter().any(|l| l.starts_with(id)), "{table}");
    let log = std::fs::read_to_string(f.data_dir().join("commands.jsonl")).unwrap();
    assert!(log.contains(id), "the job log is in the data directory");
}

#[test]
fn agents_add_write_makes_an_agent_that_connects() {
    let mut f = Fleet::builder().agents(&["web-1"]).admin().build();
    f.spawn_manager();
    let file = f.data_dir().join("agents.yml");
    let add = |id: &str| {
        let mut cmd = ctl_cmd(
            &f,
            &[
                "agents",
                "add",
                id,
                "--write",
                "--allowed-ips",
                "127.0.0.1/32",
            ],
        );
        cmd.arg("--agents-file").arg(&file).args(["-d", "role=web"]);
        finish(cmd)
    };
    let r = add("new-1");
    assert_eq!(r.code, 0, "{r}");
    let secret = r
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("agent_secret: "))
        .map(|s| s.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(secret.len(), 64, "{r}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("new-1:") && !text.contains(&secret), "{text}");
    // A second add of the same id is refused, the file unchanged.
    let again = add("new-1");
    assert_eq!(again.code, 2, "{again}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // The new agent authenticates with the printed secret, and -L finds it.
    let yml = f.write_agent_yml("new-1", &f.agent_yml("new-1", &secret, ""));
    let _agent = f.spawn_agent_from("new-1", &yml, &[]);
    f.manager().connected("new-1", 0);
    let r = ctl(&f, &["run", "-L", "role=web", "noop.Noop"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.iter().any(|l| l.starts_with("new-1: succeeded")),
        "{r}"
    );
}

fn show(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
