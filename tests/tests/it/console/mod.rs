//! The web console (docs/CONSOLE.md) in a real browser: a manager process with agents
//! over TLS TCP and WebSocket, headless chromium driven through WebDriver.
//!
//! - this file: logins, the fleet live, a run, cross-site refusal; the login steps
//!   the tests share.
//! - `browser`: chromedriver + chromium, waiting on page conditions, screenshots
//!   (written under `target/tmp/console/`; docs/console/*.png are copies).
//! - `cancel`: a run cancelled from the page.
//! - `measure`: the figures of docs/CONSOLE.md (ignored; run by hand).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod cancel;
mod measure;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use redpepper_tests::fleet::{secret_of, Fleet, ManagerProc, ADMIN_TOKEN};
use redpepper_tests::Signal;

use browser::{run, Browser};

/// `alice-pw-1`, hashed by argon2-cffi 23 (`argon2.PasswordHasher().hash(...)`).
const ALICE_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$xJVy4VK8dCBF58NUzIvi4A$TJxj7XX2zDb0nPYXzRoDzd8hH0m0ICDBB2JOroqj7iA";
/// `bob-pw-2`, likewise.
const BOB_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$Q4oryU1QMbK2MnsM/p7Ygg$HDujkwguFBlsRYsNSYqheALOhEq7omip3dDmZs7jJ2Y";
/// Bob's TOTP secret (base32 of `12345678901234567890`, RFC 6238's test key).
const BOB_TOTP: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// A manager serving tls and websocket with the admin API and two accounts.
fn fleet(ids: &[&str]) -> Fleet {
    let logins = format!(
        "api_logins:\n  - username: alice\n    password_hash: \"{ALICE_HASH}\"\n  - username: bob\n    password_hash: \"{BOB_HASH}\"\n    totp_secret: {BOB_TOTP}\n"
    );
    let mut f = Fleet::builder()
        .agents(ids)
        .transports(&["tls", "websocket"])
        .websocket("  tls: true\n")
        .admin()
        .extra(&logins)
        .build();
    f.spawn_manager();
    f
}

/// [`fleet`] of agent `id` alone, running and connected.
fn fleet_of_one(id: &str) -> (Fleet, redpepper_tests::Proc) {
    let f = fleet(&[id]);
    let agent = f.spawn_agent(id);
    f.manager().connected(id, 0);
    (f, agent)
}

fn spawn_ws_agent(f: &Fleet, id: &str) -> redpepper_tests::Proc {
    let yaml = format!(
        "transport: websocket\nwebsocket:\n  url: {}\n",
        f.manager().ws_url(true)
    );
    let text = f.agent_yml(id, &secret_of(id), &yaml);
    let config = f.write_agent_yml(id, &text);
    f.spawn_agent_from(id, &config, &[])
}

fn base(m: &ManagerProc) -> String {
    format!("http://{}", m.admin())
}

/// Open the console of `m`: the login form.
async fn open(b: &Browser, m: &ManagerProc) {
    b.client.goto(&base(m)).await.unwrap();
    b.until_shown("login").await;
}

/// JavaScript: the fleet table has `n` rows.
fn listed(n: usize) -> String {
    format!("document.querySelectorAll('#fleet-table tbody tr').length === {n}")
}

/// Wait until the fleet table has `n` rows.
async fn until_listed(b: &Browser, n: usize) {
    b.until(&format!("{n} agents listed"), &listed(n)).await;
}

/// Log in with the admin token; wait until the fleet lists `agents` rows.
async fn token_login(b: &Browser, agents: usize) {
    b.fill("#token", ADMIN_TOKEN).await;
    b.click("#token-form button").await;
    until_listed(b, agents).await;
}

/// Start a run from the Run view: `operation` on `target` with `kwargs` (JSON).
async fn start_run(b: &Browser, target: &str, operation: &str, kwargs: &str) {
    b.click("nav a[data-view='run']").await;
    b.fill("#run-target", target).await;
    b.fill("#run-op", operation).await;
    b.fill("#run-kwargs", kwargs).await;
    b.click("#run-start").await;
}

/// Submit the login form of `button`: refused.
async fn refused(b: &Browser, button: &str) {
    b.click(button).await;
    b.until_text("login-error", "Login refused.").await;
    assert!(b
        .eval("document.getElementById('nav').hidden")
        .await
        .as_bool()
        .unwrap());
}

/// Submit the account form: logged in as `user`.
async fn logged_in(b: &Browser, user: &str) {
    b.click("#account-form button").await;
    b.until_text("user", &format!("Logged in as {user}")).await;
}

/// Log out: the login form again.
async fn log_out(b: &Browser) {
    b.click("#logout").await;
    b.until_shown("login").await;
}

/// A raw HTTP/1.1 request with a cookie and an Origin; the status code.
fn raw_status(addr: SocketAddr, method: &str, path: &str, cookie: &str, origin: &str) -> u16 {
    let body = r#"{"target":"nobody-*","operation":"noop.Noop"}"#;
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nOrigin: {origin}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer}"))
}

#[test]
fn token_login_fleet_live_run_and_cross_site_refusal() {
    // gone-1: in agents.yml, no agent running: listed as down.
    let f = fleet(&["web-1", "web-2", "ws-1", "gone-1"]);
    let m = f.manager();
    let _web1 = f.spawn_agent("web-1");
    let web2 = f.spawn_agent("web-2");
    let _ws1 = spawn_ws_agent(&f, "ws-1");
    for id in ["web-1", "web-2", "ws-1"] {
        m.connected(id, 0);
    }
    run(async {
        let b = Browser::start().await;
        open(&b, m).await;
        b.screenshot("login").await;
        // A wrong token is refused.
        b.fill("#token", "not-the-token").await;
        refused(&b, "#token-form button").await;

        // Three agents and a down one.
        token_login(&b, 4).await;
        b.until_text("fleet-live", "live").await;
        let counts = b.text("#fleet-counts").await;
        assert!(
            counts.contains("tls 2") && counts.contains("websocket 1"),
            "{counts}"
        );
        let row = b.text("#fleet-table tr[data-agent='ws-1']").await;
        assert!(
            row.contains("websocket") && row.contains("connected"),
            "{row}"
        );
        let row = b.text("#fleet-table tr[data-agent='gone-1']").await;
        assert!(row.contains("down") && row.contains("never seen"), "{row}");
        assert!(counts.contains("3 connected, 1 down"), "{counts}");
        // The token is nowhere in the URL.
        assert!(!b
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains(ADMIN_TOKEN));
        b.screenshot("fleet").await;

        // An agent that goes away changes state on the open page, no reload.
        b.eval("(window.__marker = 1)").await;
        web2.signal(Signal::SIGKILL).unwrap();
        b.until(
            "web-2 shown disconnected",
            "document.querySelector(\"#fleet-table tr[data-agent='web-2'] td:nth-child(2)\").textContent === 'disconnected'",
        )
        .await;
        assert_eq!(b.eval("window.__marker").await, 1, "the page was reloaded");

        // Filtered on `connected`, rows leave and join the table with their agent, in
        // order of id.
        b.select("#fleet-state", "connected").await;
        let order = "[...document.querySelectorAll('#fleet-table tbody tr')].map((tr) => tr.dataset.agent).join()";
        b.until(
            "web-2 gone from the filtered table",
            &format!("{order} === 'web-1,ws-1'"),
        )
        .await;
        let _gone1 = f.spawn_agent("gone-1");
        b.until(
            "gone-1 in the filtered table, first",
            &format!("{order} === 'gone-1,web-1,ws-1'"),
        )
        .await;
        b.select("#fleet-state", "all").await;
        b.until(
            "every row again",
            &format!("{order} === 'gone-1,web-1,web-2,ws-1'"),
        )
        .await;

        // A run of echo.Echo on a glob shows every agent's result.
        start_run(
            &b,
            "web-1,ws-*",
            "echo.Echo",
            r#"{"message": "hello console"}"#,
        )
        .await;
        b.until("the run's summary", "document.getElementById('run-summary').textContent.startsWith('2 agent(s): 2 succeeded')").await;
        for id in ["web-1", "ws-1"] {
            let row = b.text(&format!("#run-table tr[data-agent='{id}']")).await;
            assert!(
                row.contains("succeeded") && row.contains("hello console"),
                "{row}"
            );
        }
        b.screenshot("run").await;

        b.click("nav a[data-view='events']").await;
        b.until("events listed", "document.querySelectorAll('#events-list li[data-type=\"command_result\"]').length >= 2").await;
        b.screenshot("events").await;
        b.click("nav a[data-view='charts']").await;
        b.until(
            "two metric samples",
            "document.getElementById('charts-legend').textContent.includes('calls/s')",
        )
        .await;
        b.screenshot("charts").await;

        // The cookie: HttpOnly, SameSite=Strict, not readable by the page.
        let cookie = b
            .client
            .get_named_cookie("redpepper_console")
            .await
            .unwrap();
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
        assert_eq!(b.eval("document.cookie").await, "");
        let pair = format!("redpepper_console={}", cookie.value());
        // The API refuses a state-changing request with the cookie from another origin,
        // and takes it from the console's own.
        let admin = m.admin();
        assert_eq!(
            raw_status(admin, "POST", "/v1/runs", &pair, "https://evil.example"),
            403
        );
        assert_eq!(
            raw_status(admin, "POST", "/v1/runs", &pair, &base(m)),
            404,
            "no_match expected from our origin"
        );
        assert!(m
            .proc
            .find_line(|l| l.contains("console action") && l.contains("token"))
            .is_some());

        // Logout ends the session: the cookie no longer opens the API.
        log_out(&b).await;
        assert_eq!(raw_status(admin, "POST", "/v1/runs", &pair, &base(m)), 401);
        b.client.close().await.unwrap();
    });
}

#[test]
fn accounts_log_in_with_and_without_totp_and_wrong_secrets_are_refused() {
    let (f, _a1) = fleet_of_one("a1");
    let m = f.manager();
    run(async {
        let b = Browser::start().await;
        open(&b, m).await;
        // Wrong password.
        b.fill("#username", "alice").await;
        b.fill("#password", "wrong").await;
        refused(&b, "#account-form button").await;
        // Alice, no second factor.
        b.fill("#password", "alice-pw-1").await;
        logged_in(&b, "alice").await;
        log_out(&b).await;

        // Bob: the password, then the code is asked for; a wrong code is refused.
        b.fill("#username", "bob").await;
        b.fill("#password", "bob-pw-2").await;
        b.click("#account-form button").await;
        b.until_shown("code-row").await;
        b.screenshot("login-totp").await;
        let key = redpepper_config::base32_decode(BOB_TOTP).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let good = totp(&key, now);
        let wrong = format!(
            "{:06}",
            (good.parse::<u32>().unwrap() + 500_000) % 1_000_000
        );
        b.fill("#code", &wrong).await;
        refused(&b, "#account-form button").await;
        b.fill("#code", &totp(&key, now)).await;
        logged_in(&b, "bob").await;
        until_listed(&b, 1).await;
        b.client.close().await.unwrap();
    });
    assert!(m
        .proc
        .find_line(|l| l.contains("console login") && l.contains("bob"))
        .is_some());
    assert!(m
        .proc
        .find_line(|l| l.contains("console login refused"))
        .is_some());
}

/// RFC 6238 code (HMAC-SHA1, 30 s, 6 digits), computed here independently of the
/// manager's.
fn totp(key: &[u8], unix: u64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    mac.update(&(unix / 30).to_be_bytes());
    let d = mac.finalize().into_bytes();
    let o = usize::from(d[19] & 15);
    let n = u32::from_be_bytes([d[o] & 0x7f, d[o + 1], d[o + 2], d[o + 3]]);
    format!("{:06}", n % 1_000_000)
}
