//! `oxlink viz tap` and `viz top` on the real data plane: the viz chart's tap server (our
//! `oxlink-tap`, run by the pod runtime) gets its own mesh identity from identity, taps the real
//! proxies on their tap port over mesh TLS, and the CLI reads it through the API server's
//! Service proxy while meshed load generators send steady traffic (10/s to `/`, of which every
//! 10th fails, and 2/s to `/stress`).
//!
//! The test owns the cluster's `linkerd` and `linkerd-viz` namespaces while it runs.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use oxlink_e2e::{
    cli::{
        BinaryRun, kubectl, oxlink, oxlink_binary_for, uninstall_control_plane,
        wait_for_control_plane,
    },
    dataplane, eventually, with_temp_ns,
};
use serde_json::{Value, json};
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// `oxlink ARGS` on a thread of its own (the CLI runs its own runtime).
fn cli(args: &[&str]) -> Result<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || oxlink(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .join()
        .map_err(|_| anyhow::anyhow!("oxlink panicked"))?
}

/// The built `oxlink ARGS`, stopped after `secs` seconds.
async fn run_for(args: &[&str], secs: u64) -> Result<BinaryRun> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        oxlink_binary_for(&args, Duration::from_secs(secs))
    })
    .await?
}

#[test]
fn tap_and_top_read_the_real_proxies() -> Result<()> {
    if let Err(why) = dataplane::runtime() {
        return oxlink_e2e::skip(&why);
    }
    kubectl(
        &["apply", "-f", "-"],
        Some(&oxlink(&["install", "--crds"])?),
    )?;
    kubectl(&["apply", "-f", "-"], Some(&oxlink(&["install"])?))?;
    let result = wait_for_control_plane().and_then(|()| {
        kubectl(&["apply", "-f", "-"], Some(&oxlink(&["viz", "install"])?))?;
        tokio::runtime::Runtime::new()?.block_on(with_temp_ns("tap", tap))
    });
    // Whatever happened, the next test gets a cluster without viz or a control plane.
    let uninstall = cli(&["viz", "uninstall"]).and_then(|m| {
        kubectl(
            &["delete", "--ignore-not-found", "--wait", "-f", "-"],
            Some(&m),
        )
        .map(drop)
    });
    result.and(uninstall).and(uninstall_control_plane())
}

/// The load generator's own count of requests sent.
async fn sent(pod: &Pod) -> Result<f64> {
    let ip: std::net::IpAddr = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .context("load pod has no IP")?
        .parse()?;
    let text = dataplane::http_get(ip, 9000, "/stats").await?;
    let raw: Value = serde_json::from_str(&text).with_context(|| format!("stats: {text}"))?;
    Ok(raw["responses"].as_f64().unwrap_or_default() + raw["errors"].as_f64().unwrap_or_default())
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn tap(client: Client, ns: String) -> Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}})),
        )
        .await?;
    let app =
        std::fs::read_to_string(format!("{FIXTURES}/viz-app.yaml"))?.replace("NAMESPACE", &ns);
    kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&app))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let list = eventually(
        "the 4 pods to be Ready",
        Duration::from_secs(180),
        || async {
            let list = pods.list(&ListParams::default()).await?.items;
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
    let (web, load) = (
        dataplane::pod_by_app(&list, "web")?,
        dataplane::pod_by_app(&list, "load")?,
    );
    let web_name = web.metadata.name.clone().unwrap_or_default();
    let load_name = load.metadata.name.clone().unwrap_or_default();
    let web_ip = web
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();

    // The tap server is certified by identity and ready.
    let viz_pods: Api<Pod> = Api::namespaced(client.clone(), "linkerd-viz");
    eventually(
        "the tap pod to be Ready",
        Duration::from_secs(120),
        || async {
            let list = viz_pods
                .list(&ListParams::default().labels("component=tap"))
                .await?
                .items;
            Ok(if list.iter().any(ready) {
                Ok(())
            } else {
                Err(list.len())
            })
        },
    )
    .await?;

    // tap: web's inbound requests from load, with method, authority, path, status, mTLS.
    let tap = eventually(
        "viz tap to show events",
        Duration::from_secs(60),
        || async {
            let run = run_for(&["viz", "tap", "deploy/web", "-n", &ns], 6).await?;
            Ok(if run.stdout.lines().any(|l| l.starts_with("end ")) {
                Ok(run)
            } else {
                Err(format!("stdout: {}\nstderr: {}", run.stdout, run.stderr))
            })
        },
    )
    .await?;
    let lines: Vec<&str> = tap.stdout.lines().collect();
    eprintln!(
        "viz tap deploy/web ({} lines):\n{}",
        lines.len(),
        lines
            .iter()
            .take(12)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let req = lines
        .iter()
        .find(|l| l.starts_with("req ") && l.ends_with(":path=/"))
        .with_context(|| format!("no request to /: {}", tap.stdout))?;
    ensure!(
        req.contains("proxy=in  src=")
            && req.contains(&format!(" dst={web_ip}:8080 "))
            && req.contains(" tls=true :method=GET :authority=web:8080 :path=/"),
        "{req}"
    );
    let id = req.split_whitespace().nth(1).context("an id")?;
    ensure!(
        lines.iter().any(|l| l.starts_with(&format!("rsp {id} "))
            && l.contains(" :status=")
            && l.contains(" latency=")
            && l.ends_with("µs")),
        "no response for {id}: {}",
        tap.stdout
    );
    ensure!(
        lines.iter().any(|l| l.starts_with(&format!("end {id} "))
            && l.contains(" duration=")
            && l.contains(" response-length=")),
        "no end for {id}: {}",
        tap.stdout
    );
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with("rsp ") && l.contains(":status=200"))
            && lines
                .iter()
                .any(|l| l.starts_with("rsp ") && l.contains(":status=500")),
        "web answers 200 and every 10th 500: {}",
        tap.stdout
    );

    // Filters: --path keeps /stress only; -o wide names both ends' resources; -o json is
    // Linkerd's event shape.
    let stress = run_for(
        &[
            "viz",
            "tap",
            "deploy/web",
            "-n",
            &ns,
            "--path",
            "/stress",
            "-o",
            "wide",
        ],
        6,
    )
    .await?;
    let reqs: Vec<&str> = stress
        .stdout
        .lines()
        .filter(|l| l.starts_with("req "))
        .collect();
    ensure!(
        !reqs.is_empty(),
        "--path /stress: {} {}",
        stress.stdout,
        stress.stderr
    );
    ensure!(
        reqs.iter().all(|l| l.contains(":path=/stress ")
            && l.contains(&format!(" dst_res=deployment/web dst_ns={ns}"))),
        "{}",
        stress.stdout
    );
    let json = run_for(
        &[
            "viz",
            "tap",
            "deploy/web",
            "-n",
            &ns,
            "--method",
            "GET",
            "-o",
            "json",
        ],
        5,
    )
    .await?;
    ensure!(
        json.stdout.contains("\"requestInitEvent\"")
            && json.stdout.contains("\"proxyDirection\": \"INBOUND\""),
        "{}",
        json.stdout
    );

    // A resource without pods is refused with the tap server's words, through the API server.
    let none = run_for(&["viz", "tap", "deploy/nope", "-n", &ns], 20).await?;
    ensure!(
        none.code == Some(1)
            && none.stderr.contains(&format!(
                "no running pods found for deployment/nope in namespace \"{ns}\""
            )),
        "{none:?}"
    );
    let bad = run_for(
        &["viz", "tap", "deploy/web", "-n", &ns, "--path", "nope"],
        20,
    )
    .await?;
    ensure!(
        bad.code == Some(1)
            && bad
                .stderr
                .contains("invalid path: \"nope\" does not start with /"),
        "{bad:?}"
    );

    // The proxy serves tap to the tap server's identity only: a client without it is refused.
    let anchors =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "linkerd")
            .get("linkerd-identity-trust-roots")
            .await?
            .data
            .and_then(|mut d| d.remove("ca-bundle.crt"))
            .context("the trust anchors")?;
    let anchors = oxlink_tls::TrustBundle::from_pem(anchors.as_bytes())?;
    let anonymous = std::sync::Arc::new(oxlink_tls::client_config(
        std::sync::Arc::new(oxlink_tls::ServingCert::default()),
        &anchors,
    )?);
    let web_identity = format!("web.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let request = oxlink_viz::tap::TapRequest::new(oxlink_viz::Resource::parse("deploy/web")?, &ns);
    let refused = async {
        let mut tap =
            oxlink_tap::proxy::connect(web_ip.parse()?, 4190, &web_identity, anonymous).await?;
        let mut events = tap
            .observe(oxlink_tap::proxy::observe_request(&request, 10))
            .await?
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), events.message()).await?;
        anyhow::Ok(first?.is_some())
    }
    .await;
    let refused = refused.map_err(|e| format!("{e:?}"));
    eprintln!(
        "tap without the tap identity: {}",
        refused
            .as_ref()
            .err()
            .and_then(|e| e.lines().next())
            .unwrap_or("not refused")
    );
    ensure!(
        matches!(&refused, Err(e) if e.contains("Unauthorized client")),
        "web's proxy must refuse a tap client without the tap server's identity: {refused:?}"
    );

    // top: rows by source and path, counted like the load generator counts.
    let before = sent(&load).await?;
    let t0 = std::time::Instant::now();
    let top = run_for(&["viz", "top", "deploy/web", "-n", &ns], 20).await?;
    let secs = t0.elapsed().as_secs_f64();
    let load_sent = sent(&load).await? - before;
    let table = top
        .stdout
        .rsplit("\n\n")
        .find(|t| t.trim_start().starts_with("Source"))
        .with_context(|| format!("no table: {top:?}"))?;
    eprintln!("viz top deploy/web after {secs:.1}s (load sent {load_sent}):\n{table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        header
            == [
                "Source",
                "Destination",
                "Method",
                "Path",
                "Count",
                "Best",
                "Worst",
                "Last",
                "Success",
                "Rate"
            ],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with(&load_name) && l.contains(" / "))
        .with_context(|| format!("no row from {load_name} to /: {table}"))?
        .split_whitespace()
        .collect();
    ensure!(
        row[1] == web_name && row[2] == "GET" && row[3] == "/",
        "{table}"
    );
    let count: f64 = row[4].parse()?;
    // The stream starts a moment after the process does, so top sees a little less than the
    // load generator sent over the whole run.
    ensure!(
        count <= load_sent * 1.05 && count >= load_sent * 0.6,
        "top counted {count} of the {load_sent} requests load sent: {table}"
    );
    let success: f64 = row[8].trim_end_matches('%').parse()?;
    ensure!(
        (80.0..=97.0).contains(&success),
        "every 10th fails: {table}"
    );
    // The most counted row comes first.
    ensure!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&load_name)),
        "{table}"
    );
    Ok(())
}
