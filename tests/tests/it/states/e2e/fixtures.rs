//! The data directories of the state end-to-end tests, and what the agents report for
//! them: both reports are what the Python 0.3.4 agent reports for the same directory
//! served by the Python manager (checked when they were written).

use std::path::Path;

/// A custom operation module, run by the Python agent only: writes `hi WHO` to `path`.
const MYOP: &str = r#"from redpepper.operations import Operation, Result


class Hi(Operation):
    def __init__(self, who, path):
        self.who = who
        self.path = path

    def __str__(self):
        return f"myop.Hi({self.who})"

    async def run(self, agent):
        with open(self.path, "w") as f:
            f.write("hi " + self.who + "\n")
        r = Result(self)
        r += "hi " + self.who
        r.changed = True
        return r
"#;

/// The data file the Python agent fetches with `dataFileContents`.
pub const MOTD: &str = "Welcome to the fleet\n";

/// A data directory for agents `py*` (groups `base`, `py`) writing into `out`: a
/// default state merged from both groups (interpolation, a data file, content, a
/// condition that skips a task, one that runs it, a custom operation module), a named
/// state `deploy`, and `steal` (a file from outside the data directory).
pub fn python_agent_data(out: &Path) -> Vec<(&'static str, String)> {
    let out = out.display();
    vec![
        ("groups.yml", "\"py*\": [base, py]\n".into()),
        (
            "data/base.yml",
            format!("site:\n  name: Base Site\n  port: 8080\nout: {out}\n"),
        ),
        // No deep merge: site.name comes from py, site.port from base.
        ("data/py.yml", "site:\n  name: Pepper Site\n".into()),
        ("data/py/etc/motd.txt", MOTD.into()),
        ("operations/myop.py", MYOP.into()),
        (
            "state/base.yml",
            r#"- greet:
    type: noop.Noop
- files:
    - motd:
        type: file.Installed
        path: "${out}/motd.txt"
        source: etc/motd.txt
"#
            .into(),
        ),
        (
            "state/py.yml",
            r#"- greet:
    type: echo.Echo
    message: "hello ${site.name} port ${site.port} on ${<agent_id>}"
- files:
    - site:
        type: file.Installed
        path: "${out}/site.conf"
        method: content
        source: "name=${site.name}\nport=${site.port}\n"
- skipped:
    type: command.Run
    command: "touch ${out}/skipped"
    if:
      changed: greet
- ran:
    type: command.Run
    command: "echo ${<agent_id>} > ${out}/ran"
    if:
      changed: files
- custom:
    type: myop.Hi
    who: "${site.name}"
    path: "${out}/hi.txt"
"#
            .into(),
        ),
        (
            "state/py/deploy.yml",
            "- deploy:\n    type: command.Run\n    command: \"echo deploying ${site.name} > ${out}/deploy.txt\"\n".into(),
        ),
        (
            "state/py/steal.yml",
            "- steal:\n    type: file.Installed\n    path: \"${out}/stolen\"\n    source: ../../secret.txt\n".into(),
        ),
    ]
}

/// The data file our agent fetches with `dataFileContents`.
pub const CONF: &str = "listen = 8443\nworkers = 4\n";

/// A data directory for agents `rs*` (group `rs`) writing into `out`, with only the
/// operations our agent runs (the default state: interpolation, a data value, a data
/// file, conditions), and a named state `custom` whose second task is a Python
/// operation module.
pub fn our_agent_data(out: &Path) -> Vec<(&'static str, String)> {
    let out = out.display();
    vec![
        ("groups.yml", "\"rs*\": [rs]\n".into()),
        (
            "data/rs.yml",
            format!("site:\n  name: Rust Site\nout: {out}\n"),
        ),
        ("data/rs/etc/conf.txt", CONF.into()),
        ("operations/myop.py", MYOP.into()),
        (
            "state/rs.yml",
            r#"- greet:
    type: echo.Echo
    message: "hello ${site.name} on ${<agent_id>}"
- show:
    type: data.Show
    name: site.name
- files:
    - conf:
        type: file.Installed
        path: "${out}/conf.txt"
        source: etc/conf.txt
- write:
    type: command.Run
    command: "echo ${site.name} > ${out}/site.txt"
- skipped:
    type: command.Run
    command: "touch ${out}/skipped"
    if:
      changed: greet
- after:
    type: command.Run
    command: "touch ${out}/after"
    if:
      changed: write
- nothing:
    type: noop.Noop
"#
            .into(),
        ),
        (
            "state/rs/custom.yml",
            r#"- first:
    type: echo.Echo
    message: first
- custom:
    type: myop.Hi
    who: x
    path: "${out}/hi.txt"
- never:
    type: command.Run
    command: "touch ${out}/never"
"#
            .into(),
        ),
    ]
}

/// What the Python agent `py1` reports for the default state of
/// [`python_agent_data`] writing into `out`, the first time (as it reports it to the
/// Python manager).
pub fn python_agent_output(out: &Path) -> String {
    let o = out.display();
    format!(
        "Operation  succeeded (changed):\n\
         \n\
         Running state greet:\n\
         Operation echo.Echo(\"hello Pepper Site port 8080 on py1\") succeeded:\n\
         hello Pepper Site port 8080 on py1\n\
         \n\
         Running state files:motd:\n\
         Operation file.Installed(\"{o}/motd.txt\" from \"etc/motd.txt\") succeeded (changed):\n\
         Wrote 21 bytes to {o}/motd.txt.\n\
         \n\
         Running state files:site:\n\
         Operation file.Installed(\"{o}/site.conf\" from content) succeeded (changed):\n\
         Wrote 27 bytes to {o}/site.conf.\n\
         \n\
         Running state skipped:\n\
         Operation command.Run succeeded:\n\
         Condition not met\n\
         \n\
         Running state ran:\n\
         Operation Run(\"echo py1 > {o}/ran\") succeeded (changed):\n\
         \n\
         \n\
         Running state custom:\n\
         Operation myop.Hi(Pepper Site) succeeded (changed):\n\
         hi Pepper Site"
    )
}

/// What our agent `rs1` reports for the default state of [`our_agent_data`] writing
/// into `out`, the first time.
pub fn our_agent_output(out: &Path) -> String {
    let o = out.display();
    format!(
        "Operation  succeeded (changed):\n\
             \n\
             Running state greet:\n\
             Operation echo.Echo(\"hello Rust Site on rs1\") succeeded:\n\
             hello Rust Site on rs1\n\
             \n\
             Running state show:\n\
             Operation data.Show(site.name) succeeded:\n\
             Rust Site\n\
             \n\
             Running state files:conf:\n\
             Operation file.Installed(\"{o}/conf.txt\" from \"etc/conf.txt\") succeeded (changed):\n\
             Wrote 26 bytes to {o}/conf.txt.\n\
             \n\
             Running state write:\n\
             Operation Run(\"echo Rust Site > {o}/site.txt\") succeeded (changed):\n\
             \n\
             \n\
             Running state skipped:\n\
             Operation command.Run succeeded:\n\
             Condition not met\n\
             \n\
             Running state after:\n\
             Operation Run(\"touch {o}/after\") succeeded (changed):\n\
             \n\
             \n\
             Running state nothing:\n\
             Operation no-op succeeded:"
    )
}
