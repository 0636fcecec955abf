//! The workshop on the real data plane: the control plane installed from the chart runs as pods,
//! the todo app runs injected with the real `linkerd2-proxy` v2.366 (and `linkerd2-proxy-init`),
//! and requests go through the mesh. Needs the pod runtime (`e2e/pod-runtime`); without it the
//! test is skipped and says why.
//!
//! One test, in stages, because it owns the cluster's `linkerd` namespace while it runs.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use oxlink_e2e::{
    cli::{kubectl, oxlink, uninstall_control_plane, wait_for_control_plane},
    dataplane::{self, Reply},
    eventually, with_temp_ns,
};
use serde_json::json;
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

#[test]
fn the_workshop_runs_on_the_real_proxy() -> Result<()> {
    if let Err(why) = dataplane::runtime() {
        return oxlink_e2e::skip(&why);
    }
    // The CLI runs its own runtime, so it runs outside the test's.
    kubectl(
        &["apply", "-f", "-"],
        Some(&oxlink(&["install", "--crds"])?),
    )?;
    kubectl(&["apply", "-f", "-"], Some(&oxlink(&["install"])?))?;
    let result = tokio::runtime::Runtime::new()?.block_on(with_temp_ns("dataplane", workshop));
    // Whatever happened, the next test gets a cluster without a control plane.
    result.and(uninstall_control_plane())
}

async fn workshop(client: Client, ns: String) -> Result<()> {
    wait_for_control_plane()?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}})),
        )
        .await?;
    let app = std::fs::read_to_string(format!("{FIXTURES}/todo-app.yaml"))?;
    kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&app))?;
    for fixture in ["client.yaml", "dataplane-routing.yaml"] {
        let manifest = std::fs::read_to_string(format!("{FIXTURES}/{fixture}"))?;
        kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&manifest))?;
    }

    // Every pod is Ready, which for a meshed pod means its proxy was certified by identity:
    // the proxy's startup probe (`/ready`) passes only then, and the app starts after it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ready = eventually(
        "the 9 pods to be Ready with their proxies",
        Duration::from_secs(180),
        || async {
            let list = pods.list(&ListParams::default()).await?.items;
            let summary: Vec<String> = list.iter().map(pod_summary).collect();
            let all_ready = list.len() == 9 && list.iter().all(|p| is_ready(p) && has_proxy(p));
            Ok(if all_ready { Ok(list) } else { Err(summary) })
        },
    )
    .await?;
    let pod = |app: &str| dataplane::pod_by_app(&ready, app);
    let (client_pod, todoui) = (pod("client")?, pod("todoui")?);

    // `oxlink check --proxy` against the real proxies (the CLI runs its own runtime).
    let check_ns = ns.clone();
    std::thread::spawn(move || oxlink(&["check", "--proxy", "--namespace", &check_ns]))
        .join()
        .map_err(|_| anyhow::anyhow!("oxlink check panicked"))?
        .context("oxlink check --proxy")?;
    let ui = format!("http://todoui.{ns}.svc.cluster.local:8090");

    // todoui → todobackend → postgresdb, through the proxies.
    let replies = dataplane::get(&client_pod, &format!("{ui}/"), 10)?;
    ensure!(
        replies.iter().all(|r| r.status == Some(200)),
        "GET / through the mesh: {replies:?}"
    );

    // mTLS between the proxies, with the identities and destination's endpoint metadata.
    let backend_id = format!("todobackend.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let ui_metrics = dataplane::proxy_metrics(ip(&todoui)?).await?;
    let to_backend = dataplane::series(
        &ui_metrics,
        "request_total",
        &[
            "direction=\"outbound\"",
            "tls=\"true\"",
            &format!("server_id=\"{backend_id}\""),
            "dst_deployment=\"todobackend\"",
        ],
    );
    ensure!(
        dataplane::sum(&to_backend) >= 10.0,
        "todoui's proxy counts no mTLS requests to todobackend: {to_backend:?}"
    );
    let ui_id = format!("todoui.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let backends: Vec<Pod> = ready
        .iter()
        .filter(|p| app_of(p) == Some("todobackend"))
        .cloned()
        .collect();
    let (mut inbound, mut postgres) = (0.0, 0.0);
    for b in &backends {
        let m = dataplane::proxy_metrics(ip(b)?).await?;
        inbound += dataplane::sum(&dataplane::series(
            &m,
            "request_total",
            &[
                "direction=\"inbound\"",
                "tls=\"true\"",
                &format!("client_id=\"{ui_id}\""),
            ],
        ));
        // postgres, an opaque port, as TCP over mTLS.
        postgres += dataplane::sum(&dataplane::series(
            &m,
            "tcp_open_total",
            &[
                "direction=\"outbound\"",
                "target_port=\"5432\"",
                "tls=\"true\"",
            ],
        ));
    }
    ensure!(
        postgres >= 1.0,
        "todobackend's proxies opened no mTLS connection to postgres"
    );
    ensure!(
        inbound >= 10.0,
        "todobackend's proxies saw {inbound} mTLS requests from todoui's identity"
    );

    // The workshop's ServiceProfile: GET /stress (300 ms) times out at 100 ms with a 504. The
    // proxy takes a profile into account for a target it has not used for 5 s.
    let stress = format!("{ui}/stress");
    let before = dataplane::get(&client_pod, &stress, 1)?;
    ensure!(
        before[0].status == Some(200),
        "/stress before the profile: {before:?}"
    );
    let profile = std::fs::read_to_string(format!("{FIXTURES}/serviceprofile-todoui.yaml"))?
        .replace("todoui.todo.svc", &format!("todoui.{ns}.svc"));
    kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&profile))?;
    let timed_out: Reply = eventually(
        "GET /stress to time out at 100ms",
        Duration::from_secs(90),
        || async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            let r = dataplane::get(&client_pod, &stress, 1)?.remove(0);
            Ok(if r.status == Some(504) { Ok(r) } else { Err(r) })
        },
    )
    .await?;
    let ms = timed_out.ms.unwrap_or_default();
    ensure!(
        (95.0..290.0).contains(&ms),
        "the 504 came after {ms} ms, not at the 100ms timeout"
    );
    let client_metrics = dataplane::proxy_metrics(ip(&client_pod)?).await?;
    ensure!(
        client_metrics.contains("GET /stress"),
        "the client's proxy names no `GET /stress` route"
    );
    let ok = dataplane::get(&client_pod, &format!("{ui}/"), 3)?;
    ensure!(
        ok.iter().all(|r| r.status == Some(200)),
        "GET / after the profile: {ok:?}"
    );

    // Policy: a Server for todoui's port admits nobody; an AuthorizationPolicy for the client's
    // identity admits it; removing the Server restores the default policy.
    let server = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: todoui-http}\nspec:\n  podSelector: {matchLabels: {app: todoui}}\n  port: http\n  proxyProtocol: HTTP/1\n";
    kubectl(&["apply", "-n", &ns, "-f", "-"], Some(server))?;
    expect_status(
        &client_pod,
        &format!("{ui}/"),
        403,
        "the Server without authorizations",
    )
    .await?;
    let client_id = format!("client.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let authz = format!(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: client}}\nspec:\n  identities: [\"{client_id}\"]\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: client-to-todoui}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: todoui-http}}\n  requiredAuthenticationRefs:\n  - {{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: client}}\n"
    );
    kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&authz))?;
    expect_status(
        &client_pod,
        &format!("{ui}/"),
        200,
        "the client's identity authorized",
    )
    .await?;
    kubectl(
        &[
            "delete",
            "-n",
            &ns,
            "authorizationpolicy",
            "client-to-todoui",
        ],
        None,
    )?;
    expect_status(
        &client_pod,
        &format!("{ui}/"),
        403,
        "the authorization removed",
    )
    .await?;
    kubectl(&["delete", "-n", &ns, "server", "todoui-http"], None)?;
    expect_status(&client_pod, &format!("{ui}/"), 200, "the Server removed").await?;

    routing(&ns, &client_pod, &pod("secure")?).await?;
    traffic_split(&ns, &client_pod).await?;
    workloads(&client, &ns).await?;
    churn(&client, &ns).await
}

/// A TrafficSplit on the canary apex moves real traffic 90/10, 50/50, 0/100 (±10 % over 200
/// requests), and deleting it sends everything to the apex's own endpoints (web-a) again.
async fn traffic_split(ns: &str, client_pod: &Pod) -> Result<()> {
    let canary = format!("http://canary.{ns}.svc.cluster.local:8080/");
    let share_of_b = |replies: &[Reply]| {
        replies
            .iter()
            .filter(|r| {
                r.served_by
                    .as_deref()
                    .is_some_and(|p| p.starts_with("web-b-"))
            })
            .count()
    };
    for (a, b) in [(90, 10), (50, 50), (0, 100)] {
        let split = format!(
            "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {{name: canary}}\nspec:\n  service: canary\n  backends:\n  - {{service: web-a, weight: {a}}}\n  - {{service: web-b, weight: {b}}}\n"
        );
        kubectl(&["apply", "-n", ns, "-f", "-"], Some(&split))?;
        // The new weights reach the client's proxy through its open streams; wait until a
        // sample agrees, then measure on a fresh 200.
        let want = 2 * b;
        eventually(
            &format!("a {a}/{b} split"),
            Duration::from_secs(60),
            || async {
                let replies = dataplane::get(client_pod, &canary, 200)?;
                let to_b = share_of_b(&replies);
                let ok = replies.iter().all(|r| r.status == Some(200)) && to_b.abs_diff(want) <= 20;
                Ok(if ok {
                    Ok(())
                } else {
                    Err(format!("web-b served {to_b} of 200, want {want} ± 20"))
                })
            },
        )
        .await?;
        let replies = dataplane::get(client_pod, &canary, 200)?;
        let to_b = share_of_b(&replies);
        ensure!(
            to_b.abs_diff(want) <= 20,
            "{a}/{b}: web-b served {to_b} of 200"
        );
    }
    kubectl(&["delete", "-n", ns, "trafficsplit", "canary"], None)?;
    eventually(
        "the apex without its split",
        Duration::from_secs(60),
        || async {
            let to_b = share_of_b(&dataplane::get(client_pod, &canary, 50)?);
            Ok(if to_b == 0 {
                Ok(())
            } else {
                Err(format!("web-b still served {to_b} of 50"))
            })
        },
    )
    .await
}

/// Every workload kind the injector supports starts with the real proxy (which refuses a bad
/// configuration), and a Job completes, its native sidecar stopped.
async fn workloads(client: &Client, ns: &str) -> Result<()> {
    let manifest = std::fs::read_to_string(format!("{FIXTURES}/dataplane-workloads.yaml"))?;
    kubectl(&["apply", "-n", ns, "-f", "-"], Some(&manifest))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(
        "a pod of each workload kind Ready with its proxy",
        Duration::from_secs(120),
        || async {
            let mut seen = Vec::new();
            let mut ok = true;
            // The DaemonSet has a pod on each of the two nodes.
            for (app, n) in [
                ("kinds-sts", 1),
                ("kinds-ds", 2),
                ("kinds-rs", 1),
                ("kinds-pod", 1),
            ] {
                let list = pods
                    .list(&ListParams::default().labels(&format!("app={app}")))
                    .await?
                    .items;
                let ready = list.iter().filter(|p| is_ready(p) && has_proxy(p)).count();
                seen.push(format!("{app}: {ready}/{n}"));
                ok &= ready == n;
            }
            Ok(if ok { Ok(()) } else { Err(seen) })
        },
    )
    .await?;
    eventually(
        "the Job to complete through its proxy",
        Duration::from_secs(120),
        || async {
            let done = kubectl(
                &[
                    "get",
                    "job",
                    "-n",
                    ns,
                    "kinds-job",
                    "-o",
                    "jsonpath={.status.succeeded}",
                ],
                None,
            )?;
            let phases = kubectl(
                &[
                    "get",
                    "pods",
                    "-n",
                    ns,
                    "-l",
                    "app=kinds-job",
                    "-o",
                    "jsonpath={.items[*].status.phase}",
                ],
                None,
            )?;
            Ok(if done.trim() == "1" {
                Ok(())
            } else {
                Err(phases)
            })
        },
    )
    .await
}

/// Under steady load from a meshed client: todobackend scaled 1 → 3 → 1, then destination
/// restarted; the load generator's own counts say what failed.
async fn churn(client: &Client, ns: &str) -> Result<()> {
    let manifest = std::fs::read_to_string(format!("{FIXTURES}/dataplane-load.yaml"))?;
    kubectl(&["apply", "-n", ns, "-f", "-"], Some(&manifest))?;
    kubectl(
        &["scale", "-n", ns, "deployment/todobackend", "--replicas=1"],
        None,
    )?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let load = eventually(
        "the load generator Ready",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=load"))
                .await?
                .items;
            Ok(match list.into_iter().find(is_ready) {
                Some(p) => Ok(p),
                None => Err("not yet"),
            })
        },
    )
    .await?;
    let stats_ip = ip(&load)?;
    let backends = |n: usize| {
        let pods = pods.clone();
        async move {
            eventually(
                &format!("{n} todobackend pods, all Ready"),
                Duration::from_secs(90),
                || async {
                    let list = pods
                        .list(&ListParams::default().labels("app=todobackend"))
                        .await?
                        .items;
                    let ready = list
                        .iter()
                        .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
                        .count();
                    Ok(if list.len() == n && ready == n {
                        Ok(())
                    } else {
                        Err(list.iter().map(pod_summary).collect::<Vec<_>>())
                    })
                },
            )
            .await
        }
    };
    backends(1).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    raw_request(stats_ip, 9000, "POST", "/reset").await?;
    kubectl(
        &["scale", "-n", ns, "deployment/todobackend", "--replicas=3"],
        None,
    )?;
    backends(3).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    kubectl(
        &["scale", "-n", ns, "deployment/todobackend", "--replicas=1"],
        None,
    )?;
    backends(1).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let scaled = load_stats(stats_ip).await?;
    ensure!(
        scaled.ok >= 100,
        "only {} requests succeeded while scaling: {:?}",
        scaled.ok,
        scaled.raw
    );
    ensure!(
        scaled.failed <= 3,
        "{} of {} requests failed while todobackend scaled 1 → 3 → 1: {:?}",
        scaled.failed,
        scaled.sent,
        scaled.raw
    );

    // destination restarts: the proxies keep their stacks, and requests go on.
    raw_request(stats_ip, 9000, "POST", "/reset").await?;
    kubectl(
        &[
            "delete",
            "pod",
            "-n",
            "linkerd",
            "-l",
            "linkerd.io/control-plane-component=destination",
            "--wait=false",
        ],
        None,
    )?;
    kubectl(
        &[
            "rollout",
            "status",
            "-n",
            "linkerd",
            "deployment/linkerd-destination",
            "--timeout=120s",
        ],
        None,
    )?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = load_stats(stats_ip).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = load_stats(stats_ip).await?;
    ensure!(
        after.ok >= before.ok + 30,
        "requests did not resume after destination restarted: {:?} then {:?}",
        before.raw,
        after.raw
    );
    ensure!(
        after.failed <= 3,
        "{} requests failed across the destination restart: {:?}",
        after.failed,
        after.raw
    );
    eprintln!(
        "churn: scaling {}/{} failed; destination restart {}/{} failed",
        scaled.failed, scaled.sent, after.failed, after.sent
    );
    Ok(())
}

/// The load generator's own counts.
struct LoadStats {
    sent: u64,
    ok: u64,
    failed: u64,
    raw: serde_json::Value,
}

async fn load_stats(ip: std::net::IpAddr) -> Result<LoadStats> {
    let (status, body) = raw_request(ip, 9000, "GET", "/stats").await?;
    ensure!(
        status == 200,
        "the load generator's stats answered {status}"
    );
    let raw: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("stats: {body}"))?;
    let ok = raw["by_status"]["200"].as_u64().unwrap_or_default();
    let responses = raw["responses"].as_u64().unwrap_or_default();
    let errors = raw["errors"].as_u64().unwrap_or_default();
    Ok(LoadStats {
        sent: raw["sent"].as_u64().unwrap_or_default(),
        ok,
        failed: errors + responses.saturating_sub(ok),
        raw,
    })
}

/// An HTTPRoute's weighted backends, a retry annotation, and a pod that denies by default.
async fn routing(ns: &str, client_pod: &Pod, secure: &Pod) -> Result<()> {
    // 75/25 over 200 requests, within ±10 % of the total.
    let web = format!("http://web.{ns}.svc.cluster.local:8080/");
    let replies = dataplane::get(client_pod, &web, 200)?;
    ensure!(
        replies.iter().all(|r| r.status == Some(200)),
        "requests to web failed: {:?}",
        replies.iter().find(|r| r.status != Some(200))
    );
    let to_b = replies
        .iter()
        .filter(|r| {
            r.served_by
                .as_deref()
                .is_some_and(|p| p.starts_with("web-b-"))
        })
        .count();
    ensure!(
        (30..=70).contains(&to_b),
        "web-b served {to_b} of 200 requests, not 25 % ± 10 %"
    );

    // flaky answers 503 to every other request; `retry.linkerd.io/http: 5xx` hides that.
    let flaky = format!("http://flaky.{ns}.svc.cluster.local:8080");
    let replies = dataplane::get(client_pod, &format!("{flaky}/"), 20)?;
    ensure!(
        replies.iter().all(|r| r.status == Some(200)),
        "retries did not hide the 503s: {replies:?}"
    );
    // …and flaky's own counts show the 503s that the client's proxy retried.
    let flaky_pod: Pod = {
        let pods: Api<Pod> = Api::namespaced(oxlink_e2e::client().await?, ns);
        let list = pods
            .list(&ListParams::default().labels("app=flaky"))
            .await?;
        list.items.into_iter().next().context("no flaky pod")?
    };
    let (status, body) = raw_get(ip(&flaky_pod)?, 8080, "/_testapp/counts").await?;
    ensure!(status == 200, "flaky's counts answered {status}");
    let counts: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("flaky's counts: {body}"))?;
    let failed = counts["by_status"]["503"].as_u64().unwrap_or_default();
    ensure!(
        failed >= 5,
        "flaky answered {failed} 503s, so the proxy retried nothing: {counts}"
    );

    // A pod whose default inbound policy is `deny` refuses a client without an authorization,
    // meshed or not.
    let denied = dataplane::get(client_pod, &format!("http://{}:8080/", ip(secure)?), 1)?.remove(0);
    ensure!(
        denied.status == Some(403),
        "a meshed client of the deny pod got {denied:?}"
    );
    let unmeshed =
        tokio::time::timeout(Duration::from_secs(10), raw_get(ip(secure)?, 8080, "/")).await;
    ensure!(
        !matches!(unmeshed, Ok(Ok((200, _)))),
        "the deny pod answered an unmeshed client with 200"
    );
    Ok(())
}

/// The status and body of a plain HTTP/1.0 GET from the host (outside the mesh).
async fn raw_get(ip: std::net::IpAddr, port: u16, path: &str) -> Result<(u16, String)> {
    raw_request(ip, port, "GET", path).await
}

/// The status and body of a plain HTTP/1.0 request without a body, from the host.
async fn raw_request(
    ip: std::net::IpAddr,
    port: u16,
    method: &str,
    path: &str,
) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect((ip, port)).await?;
    conn.write_all(
        format!("{method} {path} HTTP/1.0\r\nHost: e2e\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut text = Vec::new();
    conn.read_to_end(&mut text).await?;
    let text = String::from_utf8_lossy(&text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((status, body.to_string()))
}
fn app_of(p: &Pod) -> Option<&str> {
    p.metadata.labels.as_ref()?.get("app").map(String::as_str)
}

fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

fn ip(p: &Pod) -> Result<std::net::IpAddr> {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .with_context(|| format!("pod {} has no IP", name(p)))?
        .parse()
        .context("pod IP")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The proxy runs as a native sidecar and is ready.
fn has_proxy(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .is_some_and(|s| s.iter().any(|c| c.name == "linkerd-proxy" && c.ready))
}

fn pod_summary(p: &Pod) -> String {
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    format!(
        "{} {phase} ready={} proxy={}",
        name(p),
        is_ready(p),
        has_proxy(p)
    )
}
async fn expect_status(pod: &Pod, url: &str, status: u16, after: &str) -> Result<()> {
    eventually(
        &format!("{status} from {url} after {after}"),
        Duration::from_secs(30),
        || async {
            let r = dataplane::get(pod, url, 1)?.remove(0);
            Ok(if r.status == Some(status) {
                Ok(())
            } else {
                Err(r)
            })
        },
    )
    .await
}
