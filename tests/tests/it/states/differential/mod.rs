//! The differential test of the manager's `custom` method: for a corpus of data
//! directories and questions, our [`DataManager`] must answer exactly as the real
//! Python RedPepper 0.3.4 manager does (`tests/python/data_oracle.py` runs its
//! request path in-process), value for value and error text for error text.
//!
//! The exceptions are deliberate: each question marked [`Expect::Stricter`] is one
//! where our manager refuses what the Python manager answers (or answers nothing),
//! and the test checks both that Python still differs and what we answer instead:
//!
//! - a data file reached through a symbolic link that leads outside `data/{group}/`
//!   (to anywhere, another group's directory included);
//! - a `dataFileContents` answer larger than `max_message_size`;
//! - a YAML file that is not valid YAML (Python: silently absent; ours: an error
//!   naming the file and line);
//! - an answer holding a YAML timestamp (Python cannot encode it and never answers);
//! - a Python request module in `requests/{group}/` (Python runs it; we cannot).

mod corpus;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use redpepper_core::{Kwargs, Value};
use redpepper_manager::{CustomError, DataManager};
use redpepper_tests::serde_json::{self, json, Value as Json};
use redpepper_tests::{python_command, python_script, TempDir};

/// The mtime given to the files whose mtime a question names (2024-01-02 03:04:05.5 UTC).
const MTIME: f64 = 1_704_164_645.5;

/// The `max_message_size` our manager answers with (so that one question can exceed it).
const MAX_MESSAGE: usize = 64 * 1024;

/// What our answer must be.
enum Expect {
    /// Python's answer.
    Same,
    /// An error containing this text, where Python answers otherwise (see the module docs).
    Stricter(&'static str),
}

struct Question {
    agent: &'static str,
    args: Json,
    kwargs: Json,
    expect: Expect,
}

fn q(agent: &'static str, args: Json, kwargs: Json) -> Question {
    Question {
        agent,
        args,
        kwargs,
        expect: Expect::Same,
    }
}

fn stricter(agent: &'static str, args: Json, kwargs: Json, ours: &'static str) -> Question {
    Question {
        agent,
        args,
        kwargs,
        expect: Expect::Stricter(ours),
    }
}

/// Write `text` to `base/rel`, creating directories.
/// One file of a data directory (the harness's one writer, `fleet::write_tree`).
fn put(base: &Path, rel: &str, text: &str) {
    redpepper_tests::fleet::write_tree(base, &[(rel, text)]);
}

fn set_mtime(path: &Path) {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(MTIME);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", link.display(), target.display()));
}

/// JSON (as the questions are written) to a MessagePack value.
fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (_, _, f) => Value::F64(f.unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_value(v)))
                .collect(),
        ),
    }
}

/// A value in the oracle's canonical JSON form.
fn canon(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => json!(n),
            (None, Some(n)) => json!(n),
            _ => json!({ "python": i.to_string() }),
        },
        Value::F32(f) => json!({ "float_bits": f64::from(*f).to_bits() }),
        Value::F64(f) => json!({ "float_bits": f.to_bits() }),
        Value::String(s) => match s.as_str() {
            Some(s) => json!(s),
            None => json!({ "bytes_hex": hex(s.as_bytes()) }),
        },
        Value::Binary(b) => json!({ "bytes_hex": hex(b) }),
        Value::Array(items) => Json::Array(items.iter().map(canon).collect()),
        Value::Map(entries) => {
            json!({ "map": entries.iter().map(|(k, v)| json!([canon(k), canon(v)])).collect::<Vec<_>>() })
        }
        Value::Ext(code, data) => json!({ "ext": code, "hex": hex(data) }),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The Python manager's answers, one per question.
fn oracle(dir: &Path, questions: &[Question]) -> Vec<Json> {
    let input: Vec<Json> = questions
        .iter()
        .map(|q| json!({"agent": q.agent, "args": q.args, "kwargs": q.kwargs}))
        .collect();
    let mut child = python_command()
        .arg(python_script("data_oracle.py"))
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start data_oracle.py: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(Json::Array(input).to_string().as_bytes())
            .unwrap_or_else(|e| panic!("write questions: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("data_oracle.py: {e}"));
    assert!(
        out.status.success(),
        "data_oracle.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("oracle line {l:?}: {e}")))
        .collect();
    assert_eq!(answers.len(), questions.len(), "one answer per question");
    answers
}

/// Ask Python and us every question about `dir`; panic listing every difference.
fn compare(dir: &Path, questions: &[Question]) {
    let python = oracle(dir, questions);
    let ours = DataManager::new(dir).with_max_message_size(MAX_MESSAGE);
    let mut failures = Vec::new();
    for (q, py) in questions.iter().zip(&python) {
        let args: Vec<Value> = q
            .args
            .as_array()
            .map(|a| a.iter().map(to_value).collect())
            .unwrap_or_default();
        let kwargs: Kwargs = q
            .kwargs
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
            .unwrap_or_default();
        let answer = ours.custom_blocking(q.agent, &args, &kwargs);
        let ours_json = match &answer {
            Ok(v) => json!({ "ok": canon(v) }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let ask = format!("[{}] custom {} {}", q.agent, q.args, q.kwargs);
        match q.expect {
            Expect::Same if ours_json != *py => {
                failures.push(format!("{ask}\n  python: {py}\n  ours:   {ours_json}"));
            }
            Expect::Same => {}
            Expect::Stricter(text) => {
                let refused = matches!(&answer, Err(e) if e.to_string().contains(text) && !matches!(e, CustomError::Hidden(_)));
                if !refused || ours_json == *py {
                    failures.push(format!(
                        "{ask}: expected a stricter answer containing {text:?}\n  python: {py}\n  ours:   {ours_json}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers differ:\n{}",
        failures.len(),
        questions.len(),
        failures.join("\n")
    );
}

/// Odd `groups.yml` entries and values the Python manager can only partly send.
fn odd_dir(base: &Path) {
    put(
        base,
        "groups.yml",
        "nulllist:\n\"w*\": [w]\nintlist: 5\nmaplist: {m1: x, m2: y}\n",
    );
    put(base, "data/w.yml", "when: 2024-01-01\nport: 80\nstamp: 2001-12-14t21:59:43.10-05:00\nbin: !!binary aGk=\nlist: [a, 2024-01-01]\n");
    put(
        base,
        "state/w.yml",
        "- a: [x: 1]\n- a: [y: 2]\n- a: [x: 9]\n",
    );
    put(base, "state/w/ts.yml", "- t: {m: \"at ${when}\"}\n");
    put(base, "state/w/tsw.yml", "- t: {m: \"${when}\"}\n");
    put(base, "state/w/bin.yml", "- t: {m: \"${bin}\"}\n");
    put(base, "data/m1.yml", "k: from-m1\n");
}

fn odd_questions() -> Vec<Question> {
    let mut v = vec![
        q("nulllist", json!(["data"]), json!({"name": "<groups>"})),
        q("nulllist", json!(["stateDefinition"]), json!({})),
        q("intlist", json!(["data"]), json!({"name": "x"})),
        q("maplist", json!(["data"]), json!({"name": "<groups>"})),
        q("maplist", json!(["data"]), json!({"name": "k"})),
        q("w1", json!(["stateDefinition"]), json!({})),
        q(
            "w1",
            json!(["stateDefinition"]),
            json!({"state_name": "ts"}),
        ),
        q(
            "w1",
            json!(["stateDefinition"]),
            json!({"state_name": "bin"}),
        ),
        q("w1", json!(["data"]), json!({"name": "port"})),
        q("w1", json!(["data"]), json!({"name": "bin"})),
    ];
    for (args, kwargs) in [
        (json!(["data"]), json!({"name": "when"})),
        (json!(["data"]), json!({"name": "stamp"})),
        (json!(["data"]), json!({"name": "list"})),
        (json!(["stateDefinition"]), json!({"state_name": "tsw"})),
    ] {
        v.push(stricter("w1", args, kwargs, "YAML timestamp"));
    }
    v
}

/// Files that are not valid YAML: Python treats them as absent, we answer an error.
fn broken_dir(base: &Path) {
    put(base, "groups.yml", "\"w*\": [w]\nbad-*: [bad]\n");
    put(base, "data/w.yml", "a: 1\nb: [1, 2\nc: 3\n");
    put(base, "state/w.yml", "- s: {m: \"${a}\"}\n");
    put(base, "state/bad.yml", "- s: {m: x}\n  - oops\n");
}

fn broken_questions() -> Vec<Question> {
    vec![
        q("w1", json!(["data"]), json!({"name": "<agent_id>"})),
        q("w1", json!(["data"]), json!({"name": "<groups>"})),
        stricter(
            "w1",
            json!(["data"]),
            json!({"name": "a"}),
            "invalid YAML in data/w.yml at line",
        ),
        stricter(
            "w1",
            json!(["stateDefinition"]),
            json!({}),
            "invalid YAML in data/w.yml at line",
        ),
        stricter(
            "bad-1",
            json!(["stateDefinition"]),
            json!({}),
            "invalid YAML in state/bad.yml at line",
        ),
    ]
}

#[test]
fn custom_answers_equal_the_python_managers() {
    let main = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    corpus::main_dir(main.path());
    compare(main.path(), &corpus::main_questions());
}

#[test]
fn odd_groups_and_unsendable_values_as_the_python_manager_or_stricter() {
    let odd = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    odd_dir(odd.path());
    compare(odd.path(), &odd_questions());
}

#[test]
fn invalid_yaml_is_an_error_naming_file_and_line() {
    let broken = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    broken_dir(broken.path());
    compare(broken.path(), &broken_questions());
    let bad_groups = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    put(bad_groups.path(), "groups.yml", "a: [b\n");
    compare(
        bad_groups.path(),
        &[stricter(
            "a",
            json!(["data"]),
            json!({"name": "x"}),
            "invalid YAML in groups.yml at line",
        )],
    );
}
