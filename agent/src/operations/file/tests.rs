//! `file.*` and `data.Show` in a state, against a fake manager serving one data file
//! (`etc/motd.txt`, `hello world\n`, mtime 1704164645.5) as Python's manager serves it;
//! outputs and request sequences as recorded from Python RedPepper 0.3.4 (spec §4.7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use base64::Engine;
use redpepper_core::Value;
use serde_json::json;

use crate::operations::test_support::{run_command, v, Answer};

const MOTD: &[u8] = b"hello world\n";
const MTIME: f64 = 1704164645.5;

fn kwarg<'a>(kwargs: &'a [(String, Value)], name: &str) -> &'a Value {
    &kwargs.iter().find(|(k, _)| k == name).unwrap().1
}

/// The manager: `state`, one data item (`greeting`) and one data file.
fn manager(state: serde_json::Value) -> Answer {
    let state = v(state);
    Box::new(move |args, kwargs| {
        let file = |key: &str| {
            let name = kwarg(kwargs, key).as_str().unwrap().to_owned();
            if name == "etc/motd.txt" {
                Ok(())
            } else {
                Err(format!("File not found: {name}"))
            }
        };
        match args[0].as_str().unwrap() {
            "stateDefinition" => Ok(state.clone()),
            "data" => Ok(Value::from("hello")),
            "dataFileStat" => {
                file("path")?;
                Ok(v(json!({"mtime": MTIME, "size": MOTD.len()})))
            }
            "dataFileHash" => {
                file("path")?;
                Ok(Value::from(
                    "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447",
                ))
            }
            "dataFileContents" => {
                file("filename")?;
                let offset = kwarg(kwargs, "offset").as_u64().unwrap() as usize;
                let length = kwarg(kwargs, "length").as_u64().unwrap() as usize;
                let part = MOTD.get(offset..).unwrap_or_default();
                let part = &part[..length.min(part.len())];
                Ok(Value::from(
                    base64::engine::general_purpose::STANDARD.encode(part),
                ))
            }
            other => Err(format!("request module not found: {other}")),
        }
    })
}

#[tokio::test]
async fn files_are_installed_linked_and_made_as_redpepper_does() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (motd, c, s, d, link, missing) = (
        at("motd"),
        at("c.txt"),
        at("s.txt"),
        at("dir"),
        at("link"),
        at("m"),
    );
    // What this process's umask gives a new file and a new directory.
    std::fs::write(at("probe"), "").unwrap();
    std::fs::create_dir(at("probedir")).unwrap();
    let mode_of = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (file_mode, dir_mode) = (mode_of(&at("probe")), mode_of(&at("probedir")));
    let installed = |p: &str| json!({"type": "file.Installed", "path": p, "source": "etc/motd.txt", "mode": "0640"});
    let state = json!([
        {"f1": installed(&motd)},
        {"f1again": installed(&motd)},
        {"f2": {"type": "file.Installed", "path": c, "source": "literal\n", "method": "content"}},
        {"f3": {"type": "file.Installed", "path": s, "source": "etc/motd.txt", "method": "stat"}},
        {"f3again": {"type": "file.Installed", "path": s, "source": "etc/motd.txt", "method": "stat"}},
        {"d": {"type": "file.Dir", "path": d, "mode": 0o750}},
        {"dagain": {"type": "file.Dir", "path": d, "mode": 0o750}},
        {"l": {"type": "file.Symlinked", "path": link, "target": motd}},
        {"lagain": {"type": "file.Symlinked", "path": link, "target": motd}},
        {"show": {"type": "data.Show", "name": "greeting"}},
        {"missing": {"type": "file.Installed", "path": missing, "source": "nope.txt"}},
        {"never": {"type": "noop.Noop"}}
    ]);
    let sent = run_command("state", json!(["files"]), json!({}), manager(state)).await;
    let want = format!(
        "Operation files failed (changed):\n\
         \nRunning state f1:\n\
         Operation file.Installed(\"{motd}\" from \"etc/motd.txt\") succeeded (changed):\n\
         Changed mode from 0{file_mode:o} to 0640.\nWrote 12 bytes to {motd}.\n\
         \nRunning state f1again:\n\
         Operation file.Installed(\"{motd}\" from \"etc/motd.txt\") succeeded:\n\
         File \"{motd}\" is already in the specified state.\n\
         \nRunning state f2:\n\
         Operation file.Installed(\"{c}\" from content) succeeded (changed):\nWrote 8 bytes to {c}.\n\
         \nRunning state f3:\n\
         Operation file.Installed(\"{s}\" from \"etc/motd.txt\") succeeded (changed):\nWrote 12 bytes to {s}.\n\
         \nRunning state f3again:\n\
         Operation file.Installed(\"{s}\" from \"etc/motd.txt\") succeeded:\n\
         File \"{s}\" is already in the specified state.\n\
         \nRunning state d:\n\
         Operation file.DirExists(\"{d}\") succeeded (changed):\n\
         Created directory {d}.\nChanged mode from 0{dir_mode:o} to 0750.\n\
         \nRunning state dagain:\nOperation file.DirExists(\"{d}\") succeeded:\nNo changes needed.\n\
         \nRunning state l:\n\
         Operation file.Symlinked(\"{link}\" to \"{motd}\") succeeded (changed):\n\
         Symlinked {link} to {motd}.\n\
         \nRunning state lagain:\n\
         Operation file.Symlinked(\"{link}\" to \"{motd}\") succeeded:\n\
         The symlink is already in the specified state.\n\
         \nRunning state show:\nOperation data.Show(greeting) succeeded:\nhello\n\
         \nRunning state missing:\n\
         Operation file.Installed(\"{missing}\" from \"nope.txt\") failed:\n\
         redpepper.common.rpc.RPCError: File not found: nope.txt"
    );
    assert_eq!(sent.output, want);
    assert!(!sent.success && sent.changed);

    assert_eq!(std::fs::read(&motd).unwrap(), MOTD);
    assert_eq!(mode_of(&motd), 0o640);
    assert_eq!(std::fs::read(&c).unwrap(), b"literal\n");
    let meta = std::fs::metadata(&s).unwrap();
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1704164645, 500_000_000));
    assert_eq!(mode_of(&d), 0o750);
    assert_eq!(
        std::fs::read_link(&link).unwrap().to_str(),
        Some(motd.as_str())
    );
    // As in RedPepper, the file is created before the source turns out to be missing.
    assert_eq!(std::fs::read(&missing).unwrap(), b"");

    // The requests, in order: the stat first even for `hash`; the content fetched in
    // 32 KiB chunks until an empty one; nothing fetched when it already matches.
    let requests: Vec<String> = sent
        .calls
        .iter()
        .map(|(args, kwargs)| {
            let kw: Vec<String> = kwargs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}({})", args[0].as_str().unwrap(), kw.join(", "))
        })
        .collect();
    let contents = |offset: usize| {
        format!("dataFileContents(filename=\"etc/motd.txt\", offset={offset}, length=32768)")
    };
    let stat = "dataFileStat(path=\"etc/motd.txt\")".to_owned();
    let hash = "dataFileHash(path=\"etc/motd.txt\")".to_owned();
    assert_eq!(
        requests,
        vec![
            "stateDefinition(state_name=\"files\")".to_owned(),
            stat.clone(),
            hash.clone(),
            contents(0),
            contents(12),
            stat.clone(),
            hash,
            stat.clone(),
            contents(0),
            contents(12),
            stat,
            "data(name=\"greeting\")".to_owned(),
            "dataFileStat(path=\"nope.txt\")".to_owned(),
        ]
    );
}

#[tokio::test]
async fn bad_file_arguments_fail_the_task_with_pythons_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x").to_str().unwrap().to_owned();
    for (task, error) in [
        (
            json!({"type": "file.Installed", "path": p, "source": "s", "method": "rsync"}),
            "ValueError: Unknown method: rsync",
        ),
        (
            json!({"type": "file.Installed", "path": p, "source": "s", "mode": "9"}),
            "ValueError: invalid literal for int() with base 8: '9'",
        ),
        (
            json!({"type": "file.Dir", "path": p, "user": "no-such-user-redpepper"}),
            "KeyError: \"getpwnam(): name not found: 'no-such-user-redpepper'\"",
        ),
        (
            json!({"type": "file.Symlinked", "path": p}),
            "TypeError: Symlinked.__init__() missing 1 required positional argument: 'target'",
        ),
        (
            json!({"type": "data.Show", "name": "n"}),
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
        ),
    ] {
        let state = json!([{"t": task}]);
        let answer: Answer = Box::new(move |args, _| match args[0].as_str() {
            Some("stateDefinition") => Ok(v(state.clone())),
            _ => Ok(Value::from(5)),
        });
        let sent = run_command("state", json!(["x"]), json!({}), answer).await;
        assert_eq!(
            sent.output,
            format!("Operation x failed:\n\nRunning state t:\nOperation t failed:\nFailed to execute state t:\n{error}")
        );
    }
}
