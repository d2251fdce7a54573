//! The web console (docs/CONSOLE.md) in a real browser: a manager process with agents
//! over TLS TCP and WebSocket, headless chromium driven through WebDriver.
//!
//! - `browser`: chromedriver + chromium, waiting on page conditions, screenshots
//!   (written under `target/tmp/console/`; docs/console/*.png are copies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
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
        b.client.goto(&base(m)).await.unwrap();
        b.until("the login form", "!document.getElementById('login').hidden")
            .await;
        b.screenshot("login").await;
        // The page is strict: CSP on the page itself.
        // A wrong token is refused.
        b.fill("#token", "not-the-token").await;
        b.click("#token-form button").await;
        b.until(
            "the refusal",
            "document.getElementById('login-error').textContent === 'Login refused.'",
        )
        .await;
        assert!(b
            .eval("document.getElementById('nav').hidden")
            .await
            .as_bool()
            .unwrap());

        b.fill("#token", ADMIN_TOKEN).await;
        b.click("#token-form button").await;
        b.until(
            "three agents and a down one listed",
            "document.querySelectorAll('#fleet-table tbody tr').length === 4",
        )
        .await;
        b.until(
            "the stream live",
            "document.getElementById('fleet-live').textContent === 'live'",
        )
        .await;
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

        // A run of echo.Echo on a glob shows every agent's result.
        b.click("nav a[data-view='run']").await;
        b.fill("#run-target", "web-1,ws-*").await;
        b.fill("#run-op", "echo.Echo").await;
        b.fill("#run-kwargs", r#"{"message": "hello console"}"#)
            .await;
        b.click("#run-start").await;
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
        b.click("#logout").await;
        b.until(
            "the login form again",
            "!document.getElementById('login').hidden",
        )
        .await;
        assert_eq!(raw_status(admin, "POST", "/v1/runs", &pair, &base(m)), 401);
        b.client.close().await.unwrap();
    });
}

#[test]
fn accounts_log_in_with_and_without_totp_and_wrong_secrets_are_refused() {
    let f = fleet(&["a1"]);
    let m = f.manager();
    let _a1 = f.spawn_agent("a1");
    m.connected("a1", 0);
    run(async {
        let b = Browser::start().await;
        b.client.goto(&base(m)).await.unwrap();
        b.until("the login form", "!document.getElementById('login').hidden")
            .await;
        // Wrong password.
        b.fill("#username", "alice").await;
        b.fill("#password", "wrong").await;
        b.click("#account-form button").await;
        b.until(
            "the refusal",
            "document.getElementById('login-error').textContent === 'Login refused.'",
        )
        .await;
        // Alice, no second factor.
        b.fill("#password", "alice-pw-1").await;
        b.click("#account-form button").await;
        b.until(
            "alice logged in",
            "document.getElementById('user').textContent === 'Logged in as alice'",
        )
        .await;
        b.click("#logout").await;
        b.until(
            "the login form again",
            "!document.getElementById('login').hidden",
        )
        .await;

        // Bob: the password, then the code is asked for; a wrong code is refused.
        b.fill("#username", "bob").await;
        b.fill("#password", "bob-pw-2").await;
        b.click("#account-form button").await;
        b.until(
            "the code field",
            "!document.getElementById('code-row').hidden",
        )
        .await;
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
        b.click("#account-form button").await;
        b.until(
            "the refusal",
            "document.getElementById('login-error').textContent === 'Login refused.'",
        )
        .await;
        assert!(b
            .eval("document.getElementById('nav').hidden")
            .await
            .as_bool()
            .unwrap());
        b.fill("#code", &totp(&key, now)).await;
        b.click("#account-form button").await;
        b.until(
            "bob logged in",
            "document.getElementById('user').textContent === 'Logged in as bob'",
        )
        .await;
        b.until(
            "the agent listed",
            "document.querySelectorAll('#fleet-table tbody tr').length === 1",
        )
        .await;
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
