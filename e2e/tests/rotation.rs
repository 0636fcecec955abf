//! `oxlink identity rotate-anchor` on the real data plane: the control plane runs as the chart's
//! pods, a meshed load generator sends 20 requests a second to a meshed server through the real
//! `linkerd2-proxy`, and the trust anchor is rotated under that load — first stopped after its
//! fourth batch of restarts (as a Ctrl-C would), then resumed to the end. No request may fail,
//! and at the end every proxy serves a certificate that chains to the new anchor and not to the
//! old one. Needs the pod runtime; without it the test is skipped and says why.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use oxlink_e2e::{
    cli::{kubectl, oxlink, oxlink_binary, uninstall_control_plane, wait_for_control_plane},
    dataplane, eventually, with_temp_ns,
};
use oxlink_tls::{TrustBundle, pem};
use serde_json::json;
use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

#[test]
fn the_trust_anchor_rotates_under_load_with_no_failed_request() -> Result<()> {
    if let Err(why) = dataplane::runtime() {
        return oxlink_e2e::skip(&why);
    }
    kubectl(
        &["apply", "-f", "-"],
        Some(&oxlink(&["install", "--crds"])?),
    )?;
    kubectl(&["apply", "-f", "-"], Some(&oxlink(&["install"])?))?;
    let result = tokio::runtime::Runtime::new()?.block_on(with_temp_ns("rotation", rotation));
    result.and(uninstall_control_plane())
}

/// Runs the built `oxlink` binary, as a user would; its progress is printed whether it fails
/// or not, and a failure carries its stderr.
fn cli(args: &[&str]) -> Result<String> {
    let run = oxlink_binary(args)?;
    eprintln!("$ oxlink {}\n{}{}", args.join(" "), run.stdout, run.stderr);
    ensure!(
        run.code == Some(0),
        "oxlink {args:?} exited with {:?}: {}",
        run.code,
        run.stderr
    );
    Ok(run.stdout)
}

async fn rotation(client: Client, ns: String) -> Result<()> {
    wait_for_control_plane()?;
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}})),
        )
        .await?;
    let manifest = std::fs::read_to_string(format!("{FIXTURES}/rotation.yaml"))?;
    kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&manifest))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ready = || {
        let pods = pods.clone();
        async move {
            eventually(
                "the server and load pods Ready with their proxies",
                Duration::from_secs(180),
                || async {
                    let list = pods.list(&ListParams::default()).await?.items;
                    let live: Vec<Pod> = list
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .cloned()
                        .collect();
                    let ok = live.len() == 3 && live.iter().all(ready_with_proxy);
                    Ok(if ok {
                        Ok(live)
                    } else {
                        Err(list.iter().map(summary).collect::<Vec<_>>())
                    })
                },
            )
            .await
        }
    };
    let before = ready().await?;
    let old_bundle = trust_roots(&client).await?;
    // Requests flow before the rotation starts.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The plan names every step and workload, and changes nothing.
    let plan = cli(&["identity", "rotate-anchor", "--dry-run", "--batch", "1"])?;
    for want in [
        "dry run: nothing is changed",
        "→ 1. add the new trust anchor to the bundle",
        "linkerd-identity, linkerd-destination, linkerd-proxy-injector",
        &format!("batch 1: deployment/load -n {ns}"),
        &format!("batch 2: deployment/server -n {ns}"),
    ] {
        ensure!(plan.contains(want), "the plan lacks {want:?}:\n{plan}");
    }
    ensure!(
        trust_roots(&client).await? == old_bundle && rotation_state(&client).await.is_err(),
        "the dry run changed the trust roots"
    );

    let dir = std::env::temp_dir().join(format!("oxlink-rotation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let started = Instant::now();
    // Batches 1–3 restart identity, destination and the injector; the 4th is the first meshed
    // workload, which is asked to restart and not waited for.
    let stopped = cli(&[
        "identity",
        "rotate-anchor",
        "--dir",
        &dir_arg,
        "--batch",
        "1",
        "--timeout",
        "3m",
        "--stop-after-batches",
        "4",
    ]);
    let e = format!(
        "{:#}",
        stopped.expect_err("the first run stops after 4 batches")
    );
    ensure!(e.contains("stopped after 4 batches"), "{e}");
    let state = rotation_state(&client).await?;
    ensure!(
        state["step"] == "restart-for-bundle",
        "the interrupted rotation is recorded at step 2: {state}"
    );
    ensure!(
        pem::certificates(trust_roots(&client).await?.as_bytes())?.len() == 2,
        "mid-rotation, the bundle holds both anchors"
    );
    // `oxlink check` warns about the unfinished rotation, naming its step.
    let (result, message) = rotation_check()?;
    ensure!(
        result == "warning"
            && message.contains("is at step 2/7")
            && message.contains("to resume it"),
        "{result}: {message}"
    );

    let out = cli(&[
        "identity",
        "rotate-anchor",
        "--batch",
        "1",
        "--timeout",
        "3m",
    ])
    .context("resuming the rotation")?;
    let took = started.elapsed();
    ensure!(out.contains("Resuming: a trust anchor rotation"), "{out}");
    ensure!(out.contains("was already restarted"), "{out}");
    ensure!(out.contains("trust anchor rotation complete"), "{out}");
    let state = rotation_state(&client).await?;
    ensure!(state["step"] == "complete", "{state}");
    let (result, message) = rotation_check()?;
    ensure!(result == "success", "{result}: {message}");
    let restarts = state["restarts"].as_u64().unwrap_or_default();

    // The bundle is the new anchor alone (the one written to --dir).
    let new_anchor = std::fs::read_to_string(dir.join("ca.crt"))?;
    let bundle = trust_roots(&client).await?;
    ensure!(
        pem::certificates(bundle.as_bytes())? == pem::certificates(new_anchor.as_bytes())?,
        "the bundle is not the new anchor alone:\n{bundle}"
    );
    let (new, old) = (
        TrustBundle::from_pem(new_anchor.as_bytes())?,
        TrustBundle::from_pem(old_bundle.as_bytes())?,
    );

    // Every proxy was replaced, and serves a certificate from the new anchor only.
    let after = ready().await?;
    for p in &after {
        ensure!(
            before.iter().all(|b| b.metadata.uid != p.metadata.uid),
            "pod {} was never restarted",
            name(p)
        );
        let sa = p
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let id = format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
        new_anchor_only(p, 8080, &id, &new, &old).await?;
    }

    // The controllers' own mesh TLS certificates chain to the new anchor only, too.
    for (component, port) in [("identity", 8080), ("destination", 8086)] {
        let pods = Api::<Pod>::namespaced(client.clone(), "linkerd")
            .list(
                &ListParams::default()
                    .labels(&format!("linkerd.io/control-plane-component={component}")),
            )
            .await?
            .items;
        let id =
            format!("linkerd-{component}.linkerd.serviceaccount.identity.linkerd.cluster.local");
        for p in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            new_anchor_only(p, port, &id, &new, &old).await?;
        }
    }

    // The load generator's counts, over every one of its pods: each prints them when stopped.
    kubectl(
        &["scale", "-n", &ns, "deployment/load", "--replicas=0"],
        None,
    )?;
    let totals = eventually(
        "every load pod's final counts in its log",
        Duration::from_secs(60),
        || async { Ok(load_totals(&ns)) },
    )
    .await?;
    eprintln!(
        "rotation: {:.0}s (interrupted once, resumed), {restarts} workload restarts; load: {} sent, {} answered 200, {} failed, {} cut off",
        took.as_secs_f64(),
        totals.sent,
        totals.ok,
        totals.failed,
        totals.cut_off,
    );
    ensure!(
        totals.pods >= 4,
        "expected the load generator to run in 4 pods (it restarts 3 times), found {}",
        totals.pods
    );
    ensure!(
        totals.ok >= 20 * (took.as_secs() / 2),
        "too few requests succeeded ({}) for a {:.0}s rotation at 20/s",
        totals.ok,
        took.as_secs_f64()
    );
    // A load pod that stops waits for its requests in flight, so none is cut off either.
    ensure!(
        totals.failed == 0 && totals.cut_off == 0,
        "{} of {} requests failed during the rotation and {} were cut off: {:?}",
        totals.failed,
        totals.sent,
        totals.cut_off,
        totals.raw
    );
    Ok(())
}

/// The counts of every load pod of `ns`, once each has printed them.
#[derive(Debug)]
struct Totals {
    pods: u64,
    sent: u64,
    ok: u64,
    failed: u64,
    cut_off: u64,
    raw: Vec<serde_json::Value>,
}

fn load_totals(ns: &str) -> std::result::Result<Totals, String> {
    let root = PathBuf::from(oxlink_pod_runtime::STATE_DIR).join("pods");
    let mut t = Totals {
        pods: 0,
        sent: 0,
        ok: 0,
        failed: 0,
        cut_off: 0,
        raw: Vec::new(),
    };
    let entries = std::fs::read_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries.flatten() {
        let dir = entry.file_name().to_string_lossy().to_string();
        if !dir.starts_with(&format!("{ns}_load-")) {
            continue;
        }
        let log = entry.path().join("logs/load.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let Some(stats) = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .filter(|v| v["sent"].is_u64())
        else {
            return Err(format!("{} has no counts yet", log.display()));
        };
        let n = |k: &str| stats[k].as_u64().unwrap_or_default();
        let ok = stats["by_status"]["200"].as_u64().unwrap_or_default();
        t.pods += 1;
        t.sent += n("sent");
        t.ok += ok;
        t.failed += n("errors") + n("responses").saturating_sub(ok);
        t.cut_off += n("sent").saturating_sub(n("responses") + n("errors"));
        t.raw.push(stats);
    }
    Ok(t)
}

/// The certificate pod `p` serves as `id` on `port` chains to the `new` anchor and not to the
/// `old` one.
async fn new_anchor_only(
    p: &Pod,
    port: u16,
    id: &str,
    new: &TrustBundle,
    old: &TrustBundle,
) -> Result<()> {
    let chain = dataplane::served_certificates(ip(p)?, port, id)
        .await
        .with_context(|| format!("the certificate of pod {}", name(p)))?;
    ensure!(!chain.is_empty(), "pod {} served no certificate", name(p));
    let now = SystemTime::now();
    new.verify_leaf(&chain[0], &chain[1..], id, now)
        .with_context(|| format!("pod {} against the new anchor", name(p)))?;
    ensure!(
        old.verify_leaf(&chain[0], &chain[1..], id, now).is_err(),
        "pod {}'s certificate still chains to the old anchor",
        name(p)
    );
    Ok(())
}

/// What `oxlink check` says of the rotation: the result (`success`, `warning`, `error`) and
/// its message.
fn rotation_check() -> Result<(String, String)> {
    let run = oxlink_binary(&["check", "--wait", "60s", "-o", "json"])?;
    let report: serde_json::Value = serde_json::from_str(&run.stdout)
        .with_context(|| format!("oxlink check -o json: {}{}", run.stdout, run.stderr))?;
    let check = report["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["checks"].as_array().cloned().unwrap_or_default())
        .find(|c| c["description"] == "no trust anchor rotation is left unfinished")
        .with_context(|| format!("no rotation check in {report:#}"))?;
    Ok((
        check["result"].as_str().unwrap_or_default().to_string(),
        check["error"].as_str().unwrap_or_default().to_string(),
    ))
}

async fn trust_roots(client: &Client) -> Result<String> {
    Api::<ConfigMap>::namespaced(client.clone(), "linkerd")
        .get("linkerd-identity-trust-roots")
        .await?
        .data
        .and_then(|mut d| d.remove("ca-bundle.crt"))
        .context("no ca-bundle.crt")
}

async fn rotation_state(client: &Client) -> Result<serde_json::Value> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "linkerd")
        .get("linkerd-identity-trust-roots")
        .await?;
    let text = cm
        .metadata
        .annotations
        .and_then(|mut a| a.remove("oxlink.io/anchor-rotation"))
        .context("no rotation state on the trust roots")?;
    Ok(serde_json::from_str(&text)?)
}

fn ready_with_proxy(p: &Pod) -> bool {
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let proxy = p.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| c.name == "linkerd-proxy")
    });
    ready && proxy
}

fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

fn ip(p: &Pod) -> Result<std::net::IpAddr> {
    Ok(p.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .with_context(|| format!("pod {} has no IP", name(p)))?
        .parse()?)
}

fn summary(p: &Pod) -> String {
    format!(
        "{} ready={} deleting={}",
        name(p),
        ready_with_proxy(p),
        p.metadata.deletion_timestamp.is_some()
    )
}
