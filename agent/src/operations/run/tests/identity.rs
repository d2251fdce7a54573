//! The child's environment, user and groups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    list.iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn the_agents_secrets_are_scrubbed() {
    let agent = vars(&[
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/root"),
        ("REDPEPPER_AGENT_SECRET", "s3cret"),
        ("REDPEPPER_WEBSOCKET__URL", "wss://m.example"),
        ("redpepper_x", "lower case too"),
        ("http_proxy", "http://proxy:3128"),
        ("https_proxy", "http://u:p@proxy:3128"),
        ("HTTPS_PROXY", "http://user@proxy:3128"),
        ("all_proxy", "u:p@proxy:1080"),
        ("NO_PROXY", "localhost"),
        ("DATABASE_URL", "postgres://app:pw@db/app"),
        ("NOTE", "mirror at https://u:p@mirror.example/x and more"),
        ("SITE", "https://example.com/a@b"),
        ("REPO", "git@github.com:org/repo"),
        ("WHO", "https://user@host/"),
    ]);
    let kept: Vec<String> = env::scrubbed(agent)
        .into_iter()
        .map(|(k, _)| k.into_string().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "PATH",
            "HOME",
            "http_proxy",
            "NO_PROXY",
            "SITE",
            "REPO",
            "WHO"
        ]
    );
}

#[test]
fn a_login_environment_has_the_users_variables_and_the_agents_locale() {
    let agent = vars(&[
        ("PATH", "/opt/agent/bin"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("LC_TIME", "de_DE.UTF-8"),
        ("LC_X", "https://u:p@h/"),
        ("TZ", "Europe/Berlin"),
        ("TERM", "xterm"),
        ("SECRET", "x"),
        ("REDPEPPER_AGENT_SECRET", "s3cret"),
    ]);
    let user = env::LoginUser {
        name: "alice",
        root: false,
        home: Path::new("/home/alice"),
        shell: Path::new(""),
    };
    assert_eq!(
        env::login(&user, agent.clone()),
        vars(&[
            ("HOME", "/home/alice"),
            ("USER", "alice"),
            ("LOGNAME", "alice"),
            ("SHELL", "/bin/sh"),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("LANG", "C.UTF-8"),
            ("LC_TIME", "de_DE.UTF-8"),
            ("TZ", "Europe/Berlin"),
            ("TERM", "xterm"),
        ])
    );
    let root = env::LoginUser {
        name: "root",
        root: true,
        home: Path::new("/root"),
        shell: Path::new("/bin/bash"),
    };
    let env = env::login(&root, vec![]);
    assert_eq!(env[3], ("SHELL".into(), "/bin/bash".into()));
    assert_eq!(
        env[4],
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        )
    );
}

#[tokio::test]
async fn the_operators_env_wins_over_scrubbing() {
    let env = Value::Map(vec![
        (Value::from("REDPEPPER_TOKEN"), Value::from("explicit")),
        (Value::from("DB"), Value::from("postgres://a:b@db/x")),
    ]);
    let r = ran(&[
        ("command", Value::from("echo $REDPEPPER_TOKEN $DB")),
        ("env", env),
    ])
    .await;
    assert_eq!(r.output, "explicit postgres://a:b@db/x\n");
}

/// Whether this test may switch users; under CI it must (the containers run as root).
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v != "true" && v != "1"),
        "{test} must run as root under CI"
    );
    eprintln!("{test}: skipped, not root");
    false
}

/// A user other than root listed as a member in /etc/group, with that group.
fn member_of_a_group() -> Option<(User, Gid)> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let gid = fields.get(2)?.parse().ok()?;
        fields.get(3)?.split(',').find_map(|name| {
            let user = User::from_name(name).ok()??;
            (!user.uid.is_root()).then_some((user, Gid::from_raw(gid)))
        })
    })
}

fn gid_set(text: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = text
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[tokio::test]
async fn a_user_gets_a_login_environment_and_its_groups() {
    if !root_or_skip("a_user_gets_a_login_environment_and_its_groups") {
        return;
    }
    let (user, member_gid) = match member_of_a_group() {
        Some((user, gid)) => (user, Some(gid)),
        None => (User::from_name("nobody").unwrap().unwrap(), None),
    };
    let r = ran(&[
        ("command", Value::from("id -u; id -g; id -G; env")),
        ("user", Value::from(user.name.as_str())),
        (
            "env",
            Value::Map(vec![(Value::from("EXTRA"), Value::from(1))]),
        ),
    ])
    .await;
    assert!(r.succeeded, "{r}");
    let lines: Vec<&str> = r.output.lines().collect();
    assert_eq!(lines[0], user.uid.to_string());
    assert_eq!(lines[1], user.gid.to_string());
    let mut want: Vec<u32> = group_list(&user, user.gid)
        .unwrap()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(gid_set(lines[2]), want, "{r}");
    if let Some(gid) = member_gid {
        assert!(gid_set(lines[2]).contains(&gid.as_raw()), "{r}");
    }
    // Never the agent's (root's) groups.
    assert!(!gid_set(lines[2]).contains(&0), "{r}");
    let env: Vec<(&str, &str)> = lines[3..]
        .iter()
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |k: &str| env.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(get("HOME"), user.dir.to_str());
    assert_eq!(get("USER"), Some(user.name.as_str()));
    assert_eq!(get("LOGNAME"), Some(user.name.as_str()));
    assert_eq!(get("PATH"), Some("/usr/local/bin:/usr/bin:/bin"));
    assert_eq!(get("EXTRA"), Some("1"));
    let allowed = |k: &str| {
        matches!(
            k,
            "HOME"
                | "USER"
                | "LOGNAME"
                | "SHELL"
                | "PATH"
                | "LANG"
                | "TZ"
                | "TERM"
                | "EXTRA"
                | "PWD"
                | "OLDPWD"
                | "SHLVL"
                | "_"
        ) || k.starts_with("LC_")
    };
    for (k, _) in &env {
        assert!(allowed(k), "{k} leaked into the login environment: {r}");
    }
}

#[tokio::test]
async fn a_group_replaces_the_primary_group_and_keeps_the_users_others() {
    if !root_or_skip("a_group_replaces_the_primary_group_and_keeps_the_users_others") {
        return;
    }
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .or(nix::unistd::Group::from_name("nobody").unwrap())
        .expect("a nogroup or nobody group");
    let (user, member_gid) = match member_of_a_group() {
        Some((user, gid)) => (user, Some(gid)),
        None => (User::from_name("nobody").unwrap().unwrap(), None),
    };
    let r = ran(&[
        ("command", Value::from("id -g; id -G")),
        ("user", Value::from(user.name.as_str())),
        ("group", Value::from(nogroup.name.as_str())),
    ])
    .await;
    let lines: Vec<&str> = r.output.lines().collect();
    assert_eq!(lines[0], nogroup.gid.to_string(), "{r}");
    if let Some(gid) = member_gid {
        assert!(gid_set(lines[1]).contains(&gid.as_raw()), "{r}");
    }
    // A group alone: that primary group, the agent's own user.
    let r = ran(&[
        ("command", Value::from("id -u; id -g")),
        ("group", Value::from(nogroup.name.as_str())),
    ])
    .await;
    assert_eq!(r.output, format!("0\n{}\n", nogroup.gid));
}
