//! The viz dashboard in a real headless Chromium: `oxlink viz dashboard --show url` opens its
//! local port through the API server, Chromium (driven over WebDriver) loads the namespace and
//! deployment pages, and the numbers its script rendered from the metrics API are read from the
//! DOM and held against the load generators' own counts and `viz stat`. Screenshots of both
//! pages are kept in `target/e2e-artifacts/`.

use anyhow::{Context, Result, bail, ensure};
use kube::Client;
use oxlink_e2e::{
    cli::oxlink_spawn,
    dataplane, eventually,
    viz::{App, a_minute_of_traffic, cli, load_counts, row, with_viz_app},
    webdriver::{self, Browser},
};
use serde_json::Value;
use std::{
    io::BufRead,
    path::{Path, PathBuf},
    time::Duration,
};

#[test]
fn dashboard_shows_the_meshed_workloads_in_chromium() -> Result<()> {
    if let Err(why) = dataplane::runtime() {
        return oxlink_e2e::skip(&why);
    }
    if let Some(why) = webdriver::unavailable() {
        if std::env::var("CI").as_deref() == Ok("true") {
            bail!("CI must run the browser test: {why}");
        }
        return oxlink_e2e::skip(&why);
    }
    with_viz_app("dashboard", dashboard)
}

/// The rows of the table `id` as the page rendered them: `row` (the row's `data-name`), then
/// each cell's `data-column` → {value, text}.
fn read_table(id: &str) -> String {
    format!(
        r#"const t = document.getElementById("{id}");
        if (!t || t.tagName !== "TABLE") {{
            const e = document.getElementById("error");
            return e ? {{error: e.textContent}} : null;
        }}
        return Array.from(t.querySelectorAll("tbody tr")).map(tr => {{
            const o = {{row: tr.getAttribute("data-name")}};
            tr.querySelectorAll("td[data-column]").forEach(td => {{
                o[td.getAttribute("data-column")] = {{value: td.getAttribute("data-value"), text: td.textContent}};
            }});
            return o;
        }});"#
    )
}

fn find<'a>(rows: &'a Value, name: &str) -> Result<&'a Value> {
    rows.as_array()
        .and_then(|r| r.iter().find(|r| r["row"] == name))
        .with_context(|| format!("no row {name} in {rows:#}"))
}

fn number(cell: &Value) -> Option<f64> {
    cell["value"].as_str().and_then(|v| v.parse().ok())
}

/// Waits until the table `id` on the loaded page has rows that satisfy `done`.
async fn table(browser: &Browser, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    eventually(
        &format!("the page's table #{id}"),
        Duration::from_secs(60),
        || async {
            let rows = browser.run(&read_table(id)).await?;
            if rows.get("error").is_some() {
                bail!("the page shows an error: {}", rows["error"]);
            }
            Ok(if done(&rows) { Ok(rows) } else { Err(rows) })
        },
    )
    .await
}

/// Starts `oxlink viz dashboard --show url --port 0` and reads the URL it prints.
fn start_dashboard() -> Result<(std::process::Child, String)> {
    let mut child = oxlink_spawn(&["viz", "dashboard", "--show", "url", "--port", "0"])?;
    let stdout = child.stdout.take().context("dashboard stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next();
        let url = lines.next();
        let _ = tx.send((first, url));
        // Keep reading so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let (first, url) = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok((Some(Ok(first)), Some(Ok(url)))) => (first, url),
        other => {
            let _ = child.kill();
            bail!("oxlink viz dashboard printed no URL: {other:?}");
        }
    };
    ensure!(
        first == "Linkerd dashboard available at:",
        "first line: {first:?}"
    );
    ensure!(url.starts_with("http://localhost:"), "{url}");
    Ok((child, url))
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts")
}

async fn dashboard(_client: Client, ns: String, app: App) -> Result<()> {
    let (load, stress) = (app.pod("load")?, app.pod("load-stress")?);
    // The extension is up: Prometheus scrapes proxies and the metrics API reads it.
    let check = cli(&["viz", "check", "--wait", "3m"]).context("oxlink viz check")?;
    ensure!(check.contains("√ viz extension self-check"), "{check}");
    let before = (load_counts(&load).await?, load_counts(&stress).await?);
    let t0 = std::time::Instant::now();
    let stat = a_minute_of_traffic(&ns).await?;

    let (mut child, url) = start_dashboard()?;
    let result = pages(&url, &ns, &stat, before, t0, &load, &stress).await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn pages(
    url: &str,
    ns: &str,
    stat: &Value,
    before: ((f64, f64), (f64, f64)),
    t0: std::time::Instant,
    load: &k8s_openapi::api::core::v1::Pod,
    stress: &k8s_openapi::api::core::v1::Pod,
) -> Result<()> {
    let browser = Browser::start().await?;

    // The namespace page: every deployment with MESHED, and web's golden metrics.
    browser.goto(&format!("{url}/namespaces/{ns}")).await?;
    let deployments = table(&browser, "deployments", |rows| {
        find(rows, "web").is_ok_and(|w| number(&w["rps"]).is_some_and(|r| r > 10.0))
    })
    .await?;
    let after = (load_counts(load).await?, load_counts(stress).await?);
    eprintln!("the namespace page's deployments: {deployments:#}");
    let secs = t0.elapsed().as_secs_f64();
    let sent = (after.0.0 - before.0.0) + (after.1.0 - before.1.0);
    let ok = (after.0.1 - before.0.1) + (after.1.1 - before.1.1);
    let (load_rps, load_success) = (sent / secs, ok / sent);
    let web = find(&deployments, "web")?;
    let rps = number(&web["rps"]).unwrap_or_default();
    let success = number(&web["success"]).unwrap_or_default();
    eprintln!(
        "dashboard: web {rps:.2} rps, {:.2} % success; load generators {load_rps:.2} rps, {:.2} % success",
        success * 100.0,
        load_success * 100.0
    );
    for (name, meshed) in [
        ("web", "1/1"),
        ("load", "1/1"),
        ("load-stress", "1/1"),
        ("plain", "0/1"),
    ] {
        let r = find(&deployments, name)?;
        ensure!(r["meshed"]["text"] == meshed, "{name}: {r}");
    }
    ensure!(
        (rps - load_rps).abs() <= 0.1 * load_rps,
        "the dashboard's RPS {rps} vs the load generators' {load_rps}"
    );
    ensure!(
        (success - load_success).abs() <= 0.03 && (0.87..=0.93).contains(&success),
        "the dashboard's SUCCESS {success} vs the load generators' {load_success}"
    );
    let stat_rps = row(stat, "web")?["rps"].as_f64().unwrap_or_default();
    ensure!(
        (rps - stat_rps).abs() <= 0.1 * stat_rps,
        "the dashboard's RPS {rps} vs viz stat's {stat_rps}"
    );
    ensure!(
        web["success"]["text"]
            .as_str()
            .is_some_and(|t| t.ends_with('%'))
            && number(&web["latency_p50"]).is_some()
            && number(&web["tcp_conn"]).is_some_and(|c| c >= 1.0),
        "{web}"
    );
    ensure!(
        find(&deployments, "plain")?["rps"]["text"] == "-",
        "plain has no proxy to count: {deployments:#}"
    );
    let pods = table(&browser, "pods", |rows| {
        rows.as_array().is_some_and(|r| r.len() == 4)
    })
    .await?;
    ensure!(
        pods.as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .all(|p| p["status"]["text"] == "Running"),
        "{pods:#}"
    );

    // The deployment page: its stats, its routes with [DEFAULT], its edges.
    let page = format!("{url}/namespaces/{ns}/deployments/web");
    browser.goto(&page).await?;
    let routes = table(&browser, "routes", |rows| {
        find(rows, "GET /stress").is_ok_and(|r| number(&r["rps"]).is_some())
    })
    .await?;
    eprintln!("the deployment page's routes: {routes:#}");
    find(&routes, "[DEFAULT]")?;
    let stress_rps = number(&find(&routes, "GET /stress")?["rps"]).unwrap_or_default();
    ensure!(
        (1.6..=2.4).contains(&stress_rps),
        "GET /stress gets 2/s: {routes:#}"
    );
    let edges = table(&browser, "edges", |rows| find(rows, "load>web").is_ok()).await?;
    eprintln!("the deployment page's edges: {edges:#}");
    let edge = find(&edges, "load>web")?;
    ensure!(edge["secured"]["value"] == "true", "{edge}");
    let id = |sa: &str| format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
    ensure!(
        edge["client_id"]["text"] == id("load").as_str()
            && edge["server_id"]["text"] == id("web").as_str(),
        "{edge}"
    );
    drop(browser);

    for (name, url) in [
        ("dashboard-namespace.png", format!("{url}/namespaces/{ns}")),
        ("dashboard-deployment.png", page),
    ] {
        let shot = webdriver::screenshot(&url, &artifacts().join(name), 10_000)?;
        eprintln!("screenshot: {}", shot.display());
    }
    Ok(())
}
