//! A real headless Chromium driven over WebDriver: chromedriver started on a free loopback
//! port, a fresh profile per browser, every wait bounded.
//! `scripts/install-test-deps.sh` (run by ./test.sh) installs Debian's chromium and chromium-driver.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;

/// chromedriver and one browser session; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn find(name: &str, fallback: &str) -> String {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
        .unwrap_or_default();
    match on_path {
        Some(p) => p.to_string_lossy().into_owned(),
        None if std::path::Path::new(fallback).is_file() => fallback.to_string(),
        None => {
            panic!("{name} not found: run scripts/install-test-deps.sh (Debian chromium and chromium-driver)")
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a new empty profile.
    pub async fn start() -> Browser {
        let driver_bin = find("chromedriver", "/usr/bin/chromedriver");
        let chromium = find("chromium", "/usr/bin/chromium");
        let port = free_port();
        // Its own process group, so a failing test can end the browser it started too.
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--window-size=1400,1500".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": chromium, "args": args }));
        let url = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new()).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < end, "chromedriver/chromium did not start in 30 s: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// Signs in through the login form.
    pub async fn sign_in(&self, base: &str, name: &str, password: &str) {
        let c = &self.client;
        c.goto(&format!("{base}login")).await.expect("open /login");
        c.find(Locator::Css("input[name=name]"))
            .await
            .expect("name field")
            .send_keys(name)
            .await
            .expect("type");
        c.find(Locator::Css("input[name=password]"))
            .await
            .expect("password")
            .send_keys(password)
            .await
            .expect("type");
        c.find(Locator::Css("form.login button")).await.expect("button").click().await.expect("submit");
    }

    /// Signs out with the header's form.
    pub async fn sign_out(&self) {
        let c = &self.client;
        c.find(Locator::Css("form.logout button"))
            .await
            .expect("sign-out button")
            .click()
            .await
            .expect("sign out");
        self.wait_css("form.login", Duration::from_secs(5)).await;
    }

    /// The text of the first element matching `css`, if any.
    pub async fn text(&self, css: &str) -> Option<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        }
    }

    /// Whether an element matches `css` now.
    pub async fn has(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.map(|v| v.is_empty()).unwrap_or(true)
    }

    /// Waits until an element matches `css`; returns how long it took. Fails after `limit`.
    pub async fn wait_css(&self, css: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        while !self.has(css).await {
            if start.elapsed() >= limit {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                panic!("`{css}` did not appear within {limit:?} on {url}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }

    /// The HTTP status of a GET from the page (same cookies), via fetch().
    pub async fn status_of(&self, path: &str) -> u64 {
        let script = "return fetch(arguments[0], {redirect: 'manual'}).then(r => r.status);";
        let v = self.client.execute(script, vec![path.into()]).await.expect("fetch in page");
        v.as_u64().unwrap_or(0)
    }

    /// The page source.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Ends the session, then chromedriver and its browser (on drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Ends chromedriver and every browser process it started (its process group), also
    /// when a test fails before [`Browser::close`].
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
