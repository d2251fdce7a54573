//! A headless chromium driven through WebDriver (Debian's `chromium` and
//! `chromium-driver`; missing: the test fails, it is never skipped).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{free_port, system_program, wait_for_listen, Proc, TIMEOUT};

/// chromedriver and one headless chromium session.
pub struct Browser {
    pub client: Client,
    driver: Proc,
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_bin = system_program("chromedriver");
        let chromium = system_program("chromium");
        let port = free_port();
        let mut cmd = Command::new(driver_bin);
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", cmd);
        wait_for_listen(port, TIMEOUT).unwrap();
        let mut caps = redpepper_tests::serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // Exact `performance.memory` figures and `window.gc()`, for the
                // measurements.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         "--enable-precise-memory-info", "--js-flags=--expose-gc"],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        Browser { client, driver }
    }

    /// Evaluate `expr` (JavaScript) in the page.
    pub async fn eval(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap()
    }

    /// Wait until `expr` is true in the page (at most [`TIMEOUT`]).
    pub async fn until(&self, what: &str, expr: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if self.eval(expr).await == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({expr})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the element of id `id` is shown (not `hidden`).
    pub async fn until_shown(&self, id: &str) {
        let expr = format!("!document.getElementById({}).hidden", json!(id));
        self.until(&format!("#{id} shown"), &expr).await;
    }

    /// Wait until the text of the element of id `id` is `text`.
    pub async fn until_text(&self, id: &str, text: &str) {
        let expr = format!(
            "document.getElementById({}).textContent === {}",
            json!(id),
            json!(text)
        );
        self.until(&format!("#{id} to read {text:?}"), &expr).await;
    }

    /// The element `css` (there must be one).
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Choose the option labelled `label` of the `<select>` `css`.
    pub async fn select(&self, css: &str, label: &str) {
        self.find(css).await.select_by_label(label).await.unwrap();
    }

    /// The text of `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// CPU seconds used so far by this browser: every process below chromedriver
    /// (chromium's browser, renderer, GPU (software raster) and network processes).
    pub fn chromium_cpu_secs(&self) -> f64 {
        let mut parent = HashMap::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // `pid (comm) state ppid ...`: the comm may hold spaces and parentheses.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent.insert(pid, ppid);
            }
        }
        let below_driver = |mut pid: u32| {
            while let Some(&p) = parent.get(&pid) {
                if p == self.driver.pid() {
                    return true;
                }
                pid = p;
            }
            false
        };
        parent
            .keys()
            .filter(|&&pid| below_driver(pid))
            .filter_map(|&pid| redpepper_tests::cpu_secs(pid).ok())
            .sum()
    }

    /// A PNG of the page, written as `target/tmp/console/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// Run `f` on a fresh multi-threaded runtime (the fleet helpers block).
pub fn run<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}
