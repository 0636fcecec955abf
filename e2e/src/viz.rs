//! The viz extension on the real data plane, shared by the `viz` and `dashboard` tests: the
//! control plane and `oxlink viz install` applied, then a temporary meshed namespace with
//! `fixtures/viz-app.yaml` — `web` (fails every 10th request, `/stress` takes 50 ms, a
//! ServiceProfile with `GET /stress`), `load` (10/s to `/`), `load-stress` (2/s to `/stress`),
//! both meshed load generators counting their own answers, and an unmeshed `plain`.

use crate::{
    cli::{kubectl, oxlink, uninstall_control_plane, wait_for_control_plane},
    dataplane, eventually, with_temp_ns,
};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use std::{future::Future, time::Duration};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// `oxlink ARGS` on a thread of its own (the CLI runs its own runtime).
pub fn cli(args: &[&str]) -> Result<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || oxlink(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .join()
        .map_err(|_| anyhow::anyhow!("oxlink panicked"))?
}

/// The app's pods once all four are Ready.
pub struct App {
    pub pods: Vec<Pod>,
}

impl App {
    /// The pod labelled `app=NAME`.
    pub fn pod(&self, app: &str) -> Result<Pod> {
        dataplane::pod_by_app(&self.pods, app)
    }
}

/// Installs the control plane and viz, runs `test` with the app in a temporary namespace, and
/// leaves the cluster without viz or a control plane, whatever happened.
pub fn with_viz_app<F, Fut>(name: &str, test: F) -> Result<()>
where
    F: FnOnce(Client, String, App) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    kubectl(
        &["apply", "-f", "-"],
        Some(&oxlink(&["install", "--crds"])?),
    )?;
    kubectl(&["apply", "-f", "-"], Some(&oxlink(&["install"])?))?;
    let result = wait_for_control_plane().and_then(|()| {
        kubectl(&["apply", "-f", "-"], Some(&oxlink(&["viz", "install"])?))?;
        tokio::runtime::Runtime::new()?.block_on(with_temp_ns(name, |client, ns| async move {
            let app = deploy(&client, &ns).await?;
            test(client, ns, app).await
        }))
    });
    let uninstall = cli(&["viz", "uninstall"]).and_then(|m| {
        kubectl(
            &["delete", "--ignore-not-found", "--wait", "-f", "-"],
            Some(&m),
        )
        .map(drop)
    });
    result.and(uninstall).and(uninstall_control_plane())
}

async fn deploy(client: &Client, ns: &str) -> Result<App> {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}})),
        )
        .await?;
    let app = std::fs::read_to_string(format!("{FIXTURES}/viz-app.yaml"))?.replace("NAMESPACE", ns);
    kubectl(&["apply", "-n", ns, "-f", "-"], Some(&app))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let ready = eventually(
        "the 4 pods to be Ready",
        Duration::from_secs(180),
        || async {
            let list = pods.list(&ListParams::default()).await?.items;
            let ready = |p: &Pod| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            };
            let names: Vec<String> = list
                .iter()
                .map(|p| {
                    format!(
                        "{} ready={}",
                        p.metadata.name.as_deref().unwrap_or_default(),
                        ready(p)
                    )
                })
                .collect();
            Ok(if list.len() == 4 && list.iter().all(ready) {
                Ok(list)
            } else {
                Err(names)
            })
        },
    )
    .await?;
    Ok(App { pods: ready })
}

/// A load generator's own counts: requests sent, and of those answered 200.
pub async fn load_counts(pod: &Pod) -> Result<(f64, f64)> {
    let ip: std::net::IpAddr = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .context("load pod has no IP")?
        .parse()?;
    let text = dataplane::http_get(ip, 9000, "/stats").await?;
    let raw: Value = serde_json::from_str(&text).with_context(|| format!("stats: {text}"))?;
    let responses = raw["responses"].as_f64().unwrap_or_default();
    let errors = raw["errors"].as_f64().unwrap_or_default();
    let ok = raw["by_status"]["200"].as_f64().unwrap_or_default();
    Ok((responses + errors, ok))
}

/// The row named `name` of `viz stat -o json`.
pub fn row<'a>(rows: &'a Value, name: &str) -> Result<&'a Value> {
    rows.as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .with_context(|| format!("no row {name} in {rows:#}"))
}

/// Waits until `viz stat deploy` sees a full minute of the app's traffic; returns its rows.
pub async fn a_minute_of_traffic(ns: &str) -> Result<Value> {
    let t0 = std::time::Instant::now();
    eventually(
        "viz stat to see a minute of traffic",
        Duration::from_secs(150),
        || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            // Until Prometheus and the metrics API are up, the command fails: try again.
            let out: Value = match cli(&["viz", "stat", "deploy", "-n", ns, "-o", "json"]) {
                Ok(text) => serde_json::from_str(&text)?,
                Err(e) => return Ok(Err(Value::String(format!("{e:#}")))),
            };
            let rps = row(&out, "web")?["rps"].as_f64().unwrap_or_default();
            // A full window of samples (ten scrapes) is there once the rate is near the offered 12/s.
            Ok(if t0.elapsed() > Duration::from_secs(60) && rps > 10.0 {
                Ok(out)
            } else {
                Err(out)
            })
        },
    )
    .await
}
