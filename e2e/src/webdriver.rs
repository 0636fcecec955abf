//! A real headless Chromium, driven through chromedriver's WebDriver protocol (HTTP and JSON,
//! W3C WebDriver): load a page, run a script in it, read what it rendered. Debian's `chromium`
//! and `chromium-driver` packages (`/usr/bin/chromium`, `/usr/bin/chromedriver`).

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's flags for a headless run as root on a machine without a display.
const ARGS: [&str; 5] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Why the browser cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|p| !Path::new(p).is_file())
        .map(|p| format!("{p} is not installed (Debian packages chromium, chromium-driver)"))
}

/// A chromedriver process with one browser session; both end when this is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub async fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting chromedriver")?;
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(status) = browser.call("GET", "/status", None).await
                && status["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            bail!("chromedriver did not become ready");
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": ARGS},
        }}});
        let session = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = session["sessionId"]
            .as_str()
            .with_context(|| format!("no session in {session}"))?
            .to_string();
        Ok(browser)
    }

    /// One WebDriver command; its `value`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = tokio::time::timeout(Duration::from_secs(60), self.http.request(request))
            .await
            .context("chromedriver did not answer within 60s")??;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("chromedriver: {}", String::from_utf8_lossy(&bytes)))?;
        if !status.is_success() {
            bail!("chromedriver {method} {path}: {status}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` (returns once the page's load event fired).
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        )
        .await
        .map(drop)
    }

    /// Runs `script` (a function body; `return` its result) in the page.
    pub async fn run(&self, script: &str) -> Result<Value> {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session ends the browser; then the driver goes.
        if !self.session.is_empty() {
            use std::io::{Read, Write};
            let host = self.base.trim_start_matches("http://");
            if let Ok(mut s) = std::net::TcpStream::connect(host) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let _ = s.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A PNG screenshot of `url` by Chromium itself (`--screenshot`), after `budget_ms` of virtual
/// time for the page's script to fetch and render.
pub fn screenshot(url: &str, path: &Path, budget_ms: u32) -> Result<PathBuf> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let status = Command::new(CHROMIUM)
        .args(ARGS)
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running chromium --screenshot")?;
    if !status.success() || !path.is_file() {
        bail!("chromium --screenshot {url} failed: {status}");
    }
    Ok(path.to_path_buf())
}
