//! The main corpus of the differential test: the spec's example data directory
//! grown with overrides, wildcards, nested states, escapes, YAML 1.1 scalars, files
//! in several groups and hostile names, and the questions asked about it.

use std::path::Path;

use redpepper_tests::serde_json::{json, Value as Json};

use super::{put, q, set_mtime, stricter, symlink, Question, MTIME};

/// Writes the main data directory into `base`.
pub(super) fn main_dir(base: &Path) {
    put(
        base,
        "groups.yml",
        r#"
web1: [base, web]
"web*": [web, extra]
"db?": [db]
"y[0-9]*": [ygroup]
prod-*: [base, prod]
strgrp: abc
badlist: [ok, "no way", 5, base, base]
"#,
    );
    put(
        base,
        "agents.yml",
        r#"
web1:
  secret_hash: "00"
  allowed_ips: ["127.0.0.1"]
  data:
    site:
      name: override-site
    answer: yes
y5:
  data: not-a-mapping
prod-1:
  data:
    site: {port: 9000}
"#,
    );
    put(
        base,
        "data/base.yml",
        r#"
motd: "Welcome to ${<agent_id>}"
site:
  name: base-site
  port: 8080
pkgs: [curl, vim]
only_base: from base
"#,
    );
    put(
        base,
        "data/web.yml",
        r#"
site:
  name: web-site
  port: 80
  tags: [a, b]
greeting: hello
flag: true
num: 1.5
yaml11: {y: yes, o: on, f: off, oct: 0755, sexa: 1:30, exp: 1e5, expf: 1.5e+3, tilde: ~, quoted: 'yes', hex: 0x1f, under: 1_000, one: 1.0, big: 18446744073709551615, neg: -12, empty: , n: NULL, inf: .inf, dot: 1., bin: 0b101, octf: 0o17}
anchors: {base: &b {x: 1, y: 2}, merged: {<<: *b, y: 9}, alias: *b}
dup: {a: 1, b: 2, a: 3}
intkeys: {1: one, true: yes, null: nothing}
"": empty key
quotes: "it's \"quoted\""
unicode: "é\u00a0\t"
"#,
    );
    put(
        base,
        "data/extra.yml",
        "only_extra: 1\nsite: {extra: true}\n",
    );
    put(base, "data/prod.yml", "site: {name: prod-site}\n");
    put(
        base,
        "state/base.yml",
        r#"
- common:
    - hello:
        type: echo.Echo
        message: "hi ${<agent_id>}"
    - motd:
        type: echo.Echo
        message: ${motd}
- pkgs:
    type: echo.Echo
    message: x
"#,
    );
    put(
        base,
        "state/web.yml",
        r#"
- common:
    - hello:
        type: echo.Echo
        message: "overridden ${greeting} port ${site.port} tags ${site.tags} flag ${flag} num ${num} esc ${{site.port}"
    - extra:
        type: noop.Noop
- pkgs:
    type: echo.Echo
    message: ${site}
- web:
    type: echo.Echo
    message: "groups ${<groups>}"
- escapes:
    type: echo.Echo
    message: "a $${greeting} b ${{greeting} c ${{greeting}} d $${{x} e ${k"
- whole: {type: echo.Echo, message: "${site.tags}", keep: "${yaml11}"}
- multi: {type: x, message: "${greeting}${greeting} ${flag} ${num} ${yaml11.tilde} ${anchors.merged} ${quotes} ${unicode} ${yaml11.one} ${yaml11.big}"}
- keys: {"${greeting}": "${greeting}", items: ["${greeting}", "${<groups>}", 5, null]}
"#,
    );
    put(
        base,
        "state/extra.yml",
        "- common:\n    - hello: {type: noop.Noop}\n    - new: {type: x}\n- tail: {type: x}\n",
    );
    put(
        base,
        "state/prod.yml",
        "- p: {type: x, m: \"${site.port} ${site.name}\"}\n",
    );
    put(
        base,
        "state/web/deploy.yml",
        "- deploy: {type: command.Run, command: \"echo deploying ${site.name}\"}\n",
    );
    put(
        base,
        "state/base/deploy.yml",
        "- pre: {type: x}\n- deploy: {type: x}\n",
    );
    put(
        base,
        "state/base/bad.yml",
        "- x:\n    type: echo.Echo\n    message: ${nope.missing}\n",
    );
    put(
        base,
        "state/web/quote.yml",
        "- q: {m: \"${it's \\\"x\\\"}\"}\n",
    );
    put(
        base,
        "state/web/nl.yml",
        "- a: {m: \"${greeting}\\n\"}\n- b: {m: \"x${greeting}\\n\"}\n",
    );
    put(base, "state/web/notlist.yml", "a: 1\n");
    put(base, "state/web/badmerge.yml", "- [1]\n");
    put(base, "state/web/twokeys.yml", "- {a: 1, b: 2}\n");
    put(base, "state/base/nested.yml", "- a: [1, 2]\n");
    put(base, "state/web/nested.yml", "- a: [{b: 1}]\n");
    put(base, "state/base/strlist.yml", "- a: [b]\n");
    put(base, "state/web/strlist.yml", "- a: [{b: 1}]\n");
    put(
        base,
        "state/web/dupes.yml",
        "- a: [x: 1]\n- a: [y: 2]\n- a: [x: 9]\n",
    );
    put(base, "data/web/etc/motd.txt", "hello world\n");
    set_mtime(&base.join("data/web/etc/motd.txt"));
    put(base, "data/base/etc/motd.txt", "base motd\n");
    put(base, "data/base/etc_only_base.txt", "base copy\n");
    set_mtime(&base.join("data/base/etc_only_base.txt"));
    put(base, "data/web/.hidden", "secret\n");
    put(base, "data/web/dir/inner.txt", "inner\n");
    put(
        base,
        "data/web/big.bin",
        &"0123456789abcdef".repeat(6 * 1024),
    );
    symlink(&base.join("agents.yml"), &base.join("data/web/leak"));
    symlink(Path::new("etc/motd.txt"), &base.join("data/web/inlink"));
    symlink(&base.join("data/base"), &base.join("data/web/basedir"));
    put(
        base,
        "operations/myop.py",
        "from redpepper.operations import Operation\n\nclass Hi(Operation):\n    pass\n",
    );
    set_mtime(&base.join("operations/myop.py"));
    put(base, "operations/exact.py", &"#".repeat(32 * 1024));
    put(base, "operations/big.py", &"#".repeat(32 * 1024 + 1));
    std::fs::create_dir_all(base.join("operations/pkgdir.py"))
        .unwrap_or_else(|e| panic!("mkdir: {e}"));
    put(
        base,
        "requests/web/myreq.py",
        "async def call(conn, a=1):\n    return {\"a\": a, \"agent\": conn.agent_id}\n",
    );
}

/// The questions about the main data directory.
pub(super) fn main_questions() -> Vec<Question> {
    let mut v = Vec::new();
    // State definitions.
    for agent in [
        "web1", "webX", "web", "db1", "stranger", "y5", "prod-1", "strgrp", "badlist",
    ] {
        v.push(q(agent, json!(["stateDefinition"]), json!({})));
        v.push(q(agent, json!(["data"]), json!({"name": "<groups>"})));
    }
    for name in [
        json!(""),
        json!(null),
        json!("deploy"),
        json!("nosuch"),
        json!("../x"),
        json!("bad"),
        json!(5),
        json!(0),
        json!(false),
        json!([]),
        json!(["x"]),
        json!({"a": 1}),
        json!(true),
        json!("quote"),
        json!("nl"),
        json!("notlist"),
        json!("badmerge"),
        json!("twokeys"),
        json!("nested"),
        json!("strlist"),
        json!("dupes"),
        json!("deploy\n"),
        json!("a b"),
        json!(1.5),
    ] {
        v.push(q(
            "web1",
            json!(["stateDefinition"]),
            json!({ "state_name": name }),
        ));
    }
    v.push(q("web1", json!(["stateDefinition", "deploy"]), json!({})));
    v.push(q("prod-1", json!(["stateDefinition", "deploy"]), json!({})));
    // Data.
    for name in [
        "site.port",
        "site",
        "site.name",
        "pkgs",
        "<agent_id>",
        "<groups>",
        "nope",
        "site.port.x",
        "motd",
        "answer",
        "only_base",
        "only_extra",
        "site.extra",
        "yaml11",
        "anchors",
        "dup",
        "intkeys",
        "",
        ".",
        "site.",
        "pkgs.0",
        "quotes",
        "unicode",
        "yaml11.n",
        "flag",
    ] {
        v.push(q("web1", json!(["data"]), json!({ "name": name })));
    }
    for agent in ["stranger", "y5", "prod-1", "webX"] {
        for name in ["site", "site.port", "site.name", "<agent_id>"] {
            v.push(q(agent, json!(["data"]), json!({ "name": name })));
        }
    }
    v.push(q("web1", json!(["data", "site.port"]), json!({})));
    v.push(q("web1", json!(["data"]), json!({"name": 5})));
    v.push(q("web1", json!(["data"]), json!({"bogus": 1})));
    v.push(q("web1", json!(["data"]), json!({})));
    v.push(q("web1", json!(["data", "a", "b"]), json!({})));
    v.push(q("web1", json!(["data", "a"]), json!({"name": "a"})));
    v.push(q(
        "web1",
        json!(["data"]),
        json!({"name": "site", "conn": 1}),
    ));
    // Data files.
    let contents = |f: Json, o: Json, l: Json| json!({"filename": f, "offset": o, "length": l});
    for (f, o, l) in [
        (json!("etc/motd.txt"), json!(0), json!(32768)),
        (json!("etc/motd.txt"), json!(6), json!(3)),
        (json!("etc/motd.txt"), json!(100), json!(3)),
        (json!("//etc//motd.txt/"), json!(0), json!(5)),
        (json!("/etc/motd.txt"), json!(0), json!(5)),
        (json!("etc/motd.txt"), json!(0), json!(-1)),
        (json!("etc/motd.txt"), json!(0), json!(null)),
        (json!("etc/motd.txt"), json!(true), json!(2)),
        (json!("etc/motd.txt"), json!(-1), json!(3)),
        (json!("etc/motd.txt"), json!("x"), json!(3)),
        (json!("etc/motd.txt"), json!(1.5), json!(3)),
        (json!("etc/motd.txt"), json!(null), json!(3)),
        (json!("etc/motd.txt"), json!(0), json!("x")),
        (json!("etc/motd.txt"), json!(0), json!(2.0)),
        (json!("etc/motd.txt"), json!(0), json!(0)),
        (json!(""), json!(0), json!(1)),
        (json!("../../groups.yml"), json!(0), json!(10)),
        (json!("missing.txt"), json!("x"), json!(1)),
        (json!(5), json!(0), json!(1)),
        (json!("big.bin"), json!(0), json!(32768)),
        (json!("big.bin"), json!(98000), json!(32768)),
        (json!("inlink"), json!(0), json!(100)),
    ] {
        v.push(q("web1", json!(["dataFileContents"]), contents(f, o, l)));
    }
    v.push(stricter(
        "web1",
        json!(["dataFileContents"]),
        contents(json!("big.bin"), json!(0), json!(-1)),
        "do not fit in one message",
    ));
    v.push(stricter(
        "web1",
        json!(["dataFileContents"]),
        contents(json!("leak"), json!(0), json!(100)),
        "leads outside data/web/",
    ));
    // A link to another group's directory leads outside data/web/ too.
    v.push(stricter(
        "web1",
        json!(["dataFileContents"]),
        contents(json!("basedir/etc_only_base.txt"), json!(0), json!(100)),
        "leads outside data/web/",
    ));
    v.push(stricter(
        "web1",
        json!(["dataFileHash"]),
        json!({"path": "basedir/etc/motd.txt"}),
        "leads outside data/web/",
    ));
    v.push(stricter(
        "web1",
        json!(["dataFileHash"]),
        json!({"path": "leak"}),
        "leads outside data/web/",
    ));
    v.push(stricter(
        "web1",
        json!(["dataFileStat"]),
        json!({"path": "leak"}),
        "leads outside data/web/",
    ));
    v.push(q(
        "web1",
        json!(["dataFileContents"]),
        json!({"filename": "etc/motd.txt", "offset": 0}),
    ));
    v.push(q(
        "web1",
        json!(["dataFileContents", "etc/motd.txt", "0"]),
        json!({"length": 2}),
    ));
    for path in [
        "etc/motd.txt",
        "etc_only_base.txt",
        "../agents.yml",
        ".hidden",
        "a\\b",
        "missing.txt",
        "etc",
        "dir",
        "dir/inner.txt",
        "inlink",
        "",
        "/",
        "a/./b",
        "it's",
        "x\u{0}y",
    ] {
        for request in ["dataFileHash", "dataFileStat"] {
            v.push(q("web1", json!([request]), json!({ "path": path })));
        }
    }
    v.push(q(
        "db1",
        json!(["dataFileStat"]),
        json!({"path": "etc/motd.txt"}),
    ));
    v.push(q("web1", json!(["dataFileHash"]), json!({"path": 5})));
    v.push(q("web1", json!(["dataFileStat"]), json!({"path": null})));
    // Operation modules.
    let op =
        |n: Json, m: Json, s: Json| json!({"name": n, "existing_mtime": m, "existing_size": s});
    let myop_size = json!(
        "from redpepper.operations import Operation\n\nclass Hi(Operation):\n    pass\n".len()
    );
    for (n, m, s) in [
        (json!("myop"), json!(null), json!(null)),
        (json!("myop"), json!(MTIME), myop_size.clone()),
        (json!("myop"), json!(MTIME), json!(1)),
        (json!("myop"), json!("x"), myop_size.clone()),
        (json!("nosuch"), json!(null), json!(null)),
        (json!("../x"), json!(null), json!(null)),
        (json!("a-b"), json!(null), json!(null)),
        (json!(""), json!(null), json!(null)),
        (json!("é"), json!(null), json!(null)),
        (json!(5), json!(null), json!(null)),
        (json!("exact"), json!(null), json!(null)),
        (json!("big"), json!(null), json!(null)),
        (json!("pkgdir"), json!(null), json!(null)),
    ] {
        v.push(q("web1", json!(["operationModule"]), op(n, m, s)));
    }
    v.push(q(
        "web1",
        json!(["operationModule"]),
        json!({"name": "myop"}),
    ));
    // Names, arguments, no-op, modules.
    for args in [
        json!(["noop"]),
        json!(["noop", "x"]),
        json!(["nosuchreq"]),
        json!(["bad-name"]),
        json!([""]),
        json!(["__init__"]),
        json!(["__pycache__"]),
        json!([]),
        json!(["data.x"]),
        json!(["RequestError"]),
    ] {
        v.push(q("web1", args, json!({})));
    }
    v.push(q("web1", json!(["noop"]), json!({"anything": 1})));
    v.push(q("db1", json!(["myreq"]), json!({})));
    v.push(stricter(
        "web1",
        json!(["myreq"]),
        json!({"a": 7}),
        "request module myreq is not supported by this manager",
    ));
    v
}
