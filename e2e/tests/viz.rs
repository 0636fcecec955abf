//! `oxlink viz` on the real data plane: the viz chart's real Prometheus (built from its Go
//! module, run by the pod runtime) scrapes the real proxies with Linkerd viz's relabelling, and
//! `viz stat`, `viz routes` and `viz edges` read it through the metrics API (`oxlink-web`, run by
//! the pod runtime as the chart's `web` pod) while a meshed load generator sends steady
//! traffic to a server that fails exactly every 10th request.
//!
//! Also: `oxlink viz install` renders what `helm template` renders from `charts/oxlink-viz`.
//! The data-plane test owns the cluster's `linkerd` and `linkerd-viz` namespaces while it runs.

use anyhow::{Context, Result, ensure};
use kube::Client;
use oxlink_e2e::{
    cli::{oxlink, tool},
    dataplane,
    viz::{App, a_minute_of_traffic, cli, load_counts, row, with_viz_app},
};
use serde_json::Value;
use std::{collections::BTreeMap, path::Path};

/// The objects of a manifest by (kind, namespace, name), Prometheus' configuration parsed so
/// that it compares as data.
fn objects(manifest: &str) -> Result<BTreeMap<(String, String, String), Value>> {
    let mut objects = BTreeMap::new();
    for mut o in serde_saphyr::from_multiple::<Value>(manifest)? {
        if o.is_null() {
            continue;
        }
        if o["kind"] == "ConfigMap" && o["metadata"]["name"] == "prometheus-config" {
            let text = o["data"]["prometheus.yml"].as_str().unwrap_or_default();
            o["data"]["prometheus.yml"] = serde_saphyr::from_str::<Value>(text)?;
        }
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let key = (
            s(&o["kind"]),
            s(&o["metadata"]["namespace"]),
            s(&o["metadata"]["name"]),
        );
        ensure!(objects.insert(key.clone(), o).is_none(), "{key:?} twice");
    }
    Ok(objects)
}

#[test]
fn viz_install_renders_what_helm_renders() -> Result<()> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/oxlink-viz");
    let chart = chart.display().to_string();
    for set in [
        vec![],
        vec![
            "prometheus.globalConfig.scrape_interval=5s",
            "commonLabels.team=mesh",
        ],
        vec![
            "prometheus.enabled=false",
            "prometheusUrl=http://prom.monitoring:9090",
        ],
    ] {
        let mut ours = vec!["viz", "install"];
        let mut helm = vec![
            "template",
            "linkerd-viz",
            &chart,
            "--namespace",
            "linkerd-viz",
            "--set",
            "installNamespace=true",
        ];
        for s in &set {
            ours.extend(["--set", s]);
            helm.extend(["--set", s]);
        }
        let ours = objects(&oxlink(&ours)?)?;
        let theirs = objects(&tool("helm", &helm, None)?)?;
        ensure!(
            ours.keys().eq(theirs.keys()),
            "{set:?}: different objects\noxlink: {:?}\nhelm:   {:?}",
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>()
        );
        for (key, o) in &ours {
            ensure!(
                o == &theirs[key],
                "{set:?}: {key:?} differs\noxlink: {o:#}\nhelm:   {:#}",
                theirs[key]
            );
        }
    }
    Ok(())
}

#[test]
fn viz_reads_the_real_proxies() -> Result<()> {
    if let Err(why) = dataplane::runtime() {
        return oxlink_e2e::skip(&why);
    }
    with_viz_app("viz", viz)
}

async fn viz(_client: Client, ns: String, app: App) -> Result<()> {
    let (load, stress) = (app.pod("load")?, app.pod("load-stress")?);

    // The extension is healthy: Prometheus runs meshed and scrapes proxies.
    let check = cli(&["viz", "check", "--wait", "3m"]).context("oxlink viz check")?;
    eprintln!("{check}");
    ensure!(check.contains("√ viz extension self-check"), "{check}");

    // stat: MESHED from the pods, RPS and SUCCESS from the proxies, against the load
    // generators' own counts over the same minute.
    let before = (load_counts(&load).await?, load_counts(&stress).await?);
    let t0 = std::time::Instant::now();
    let stat = a_minute_of_traffic(&ns).await?;
    let after = (load_counts(&load).await?, load_counts(&stress).await?);
    eprintln!("viz stat deploy -o json: {stat:#}");
    let secs = t0.elapsed().as_secs_f64();
    let sent = (after.0.0 - before.0.0) + (after.1.0 - before.1.0);
    let ok = (after.0.1 - before.0.1) + (after.1.1 - before.1.1);
    let (load_rps, load_success) = (sent / secs, ok / sent);
    let web = row(&stat, "web")?;
    ensure!(
        web["meshed"] == "1/1" && row(&stat, "load")?["meshed"] == "1/1",
        "{stat:#}"
    );
    ensure!(
        row(&stat, "plain")?["meshed"] == "0/1",
        "plain is not meshed: {stat:#}"
    );
    ensure!(
        row(&stat, "plain")?["rps"].is_null(),
        "plain has no proxy to count: {stat:#}"
    );
    let rps = web["rps"].as_f64().unwrap_or_default();
    let success = web["success"].as_f64().unwrap_or_default();
    eprintln!(
        "web: {rps:.2} rps, {:.2} % success; the load generators: {load_rps:.2} rps, {:.2} % success",
        success * 100.0,
        load_success * 100.0
    );
    ensure!(
        (rps - load_rps).abs() <= 0.1 * load_rps,
        "RPS {rps} vs the load generators' {load_rps}"
    );
    ensure!(
        (success - load_success).abs() <= 0.03,
        "SUCCESS {success} vs the load generators' {load_success}"
    );
    ensure!(
        (0.87..=0.93).contains(&success),
        "web fails every 10th request, SUCCESS is {success}"
    );
    ensure!(
        web["latency_ms_p50"].as_u64().is_some()
            && web["tcp_open_connections"].as_u64().unwrap_or_default() >= 1,
        "{web:#}"
    );

    let table = cli(&["viz", "stat", "deploy", "-n", &ns])?;
    eprintln!("{table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        header
            == [
                "NAME",
                "MESHED",
                "SUCCESS",
                "RPS",
                "LATENCY_P50",
                "LATENCY_P95",
                "LATENCY_P99",
                "TCP_CONN"
            ],
        "{table}"
    );
    let web_line: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        web_line.get(1) == Some(&"1/1") && web_line.get(3).is_some_and(|r| r.ends_with("rps")),
        "{table}"
    );

    // --to narrows to the sources' outbound requests to web; --from to web's from load.
    for to in ["deploy/web", "svc/web"] {
        let out: Value = serde_json::from_str(&cli(&[
            "viz", "stat", "deploy", "-n", &ns, "--to", to, "-o", "json",
        ])?)?;
        eprintln!("--to {to}: {out}");
        let load_rps = row(&out, "load")?["rps"].as_f64().unwrap_or_default();
        ensure!(
            (8.0..=12.0).contains(&load_rps),
            "--to {to}: load sends 10/s: {out:#}"
        );
        ensure!(
            row(&out, "web")?["rps"].is_null(),
            "--to {to}: web sends nothing to itself: {out:#}"
        );
    }
    let from: Value = serde_json::from_str(&cli(&[
        "viz",
        "stat",
        "deploy/web",
        "-n",
        &ns,
        "--from",
        "deploy/load-stress",
        "-o",
        "json",
    ])?)?;
    eprintln!("--from deploy/load-stress: {from}");
    let from_rps = row(&from, "web")?["rps"].as_f64().unwrap_or_default();
    ensure!(
        (1.6..=2.4).contains(&from_rps),
        "--from load-stress: 2/s: {from:#}"
    );

    // routes: the ServiceProfile's route and [DEFAULT].
    let routes = cli(&["viz", "routes", "deploy/web", "-n", &ns])?;
    eprintln!("{routes}");
    ensure!(
        routes
            .lines()
            .next()
            .is_some_and(|h| h.split_whitespace().collect::<Vec<_>>()
                == [
                    "ROUTE",
                    "SERVICE",
                    "SUCCESS",
                    "RPS",
                    "LATENCY_P50",
                    "LATENCY_P95",
                    "LATENCY_P99"
                ]),
        "{routes}"
    );
    let routes_of = |args: &[&str]| -> Result<Value> {
        let mut all = vec!["viz", "routes"];
        all.extend(args);
        all.extend(["-n", ns.as_str(), "-o", "json"]);
        let out: Value = serde_json::from_str(&cli(&all)?)?;
        eprintln!("viz routes {args:?}: {out}");
        Ok(out)
    };
    let route = |rows: &Value, name: &str| {
        rows.as_array()
            .and_then(|r| {
                r.iter()
                    .find(|r| r["route"] == name && r["authority"] == "web")
            })
            .cloned()
            .with_context(|| format!("no route {name}: {rows:#}"))
    };
    // Inbound, web's proxy counts the requests that matched a route of its profile.
    let inbound = routes_of(&["deploy/web"])?;
    let stress_route = route(&inbound, "GET /stress")?;
    route(&inbound, "[DEFAULT]")?;
    let stress_rps = stress_route["rps"].as_f64().unwrap_or_default();
    ensure!(
        (1.6..=2.4).contains(&stress_rps),
        "GET /stress gets 2/s: {inbound:#}"
    );
    ensure!(
        stress_route["latency_ms_p50"]
            .as_u64()
            .is_some_and(|l| l >= 40),
        "/stress takes 50ms: {stress_route}"
    );
    // Outbound with --to, the clients' proxies count every route, [DEFAULT] included, with
    // web's 500s as failures.
    let to_web = routes_of(&["deploy/load", "--to", "svc/web"])?;
    let default = route(&to_web, "[DEFAULT]")?;
    let default_rps = default["rps"].as_f64().unwrap_or_default();
    ensure!(
        (8.0..=12.0).contains(&default_rps),
        "[DEFAULT] gets 10/s from load: {to_web:#}"
    );
    let default_success = default["success"].as_f64().unwrap_or_default();
    ensure!(
        (0.87..=0.93).contains(&default_success),
        "[DEFAULT]: every 10th fails: {to_web:#}"
    );
    ensure!(
        route(&to_web, "GET /stress")?["rps"].is_null(),
        "load never asks for /stress: {to_web:#}"
    );
    let stress_to = routes_of(&["deploy/load-stress", "--to", "svc/web"])?;
    let rps = route(&stress_to, "GET /stress")?["rps"]
        .as_f64()
        .unwrap_or_default();
    ensure!(
        (1.6..=2.4).contains(&rps),
        "load-stress → GET /stress 2/s: {stress_to:#}"
    );

    // edges: load → web over mTLS, with both identities.
    let edges = cli(&["viz", "edges", "deploy", "-n", &ns])?;
    eprintln!("{edges}");
    let edge_line: Vec<&str> = edges
        .lines()
        .find(|l| l.starts_with("load "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(edge_line == ["load", "web", &ns, &ns, "√"], "{edges}");
    let wide = cli(&["viz", "edges", "deploy", "-n", &ns, "-o", "wide"])?;
    eprintln!("{wide}");
    let id = |sa: &str| format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
    ensure!(
        wide.lines()
            .any(|l| l.starts_with("load ") && l.contains(&id("load")) && l.contains(&id("web"))),
        "{wide}"
    );
    Ok(())
}
