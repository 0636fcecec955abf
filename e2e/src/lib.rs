//! Helpers for oxlink's end-to-end tests, which run against a real Kubernetes API server.
//!
//! This crate owns the cluster-level test suite (`e2e/tests/`) and what those tests share: a
//! client for the cluster named by `KUBECONFIG` (`cargo xtask test` points it at localkube), a
//! temporary namespace per test that is deleted afterwards and whose objects are dumped when the
//! test fails, and `eventually`, which polls until the cluster reaches a state or a deadline
//! passes, [`proxy::SimulatedProxy`], which does what a linkerd2-proxy does with identity and
//! destination, [`identity`], which installs and starts identity as the chart would, and
//! [`destination`], which starts destination and follows what its streams say.
//! The local cluster itself lives in `e2e/localkube`.

pub mod destination;
pub mod identity;
pub mod localkube;
pub mod policy;
pub mod proxy;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use serde_json::{Value, json};
use std::{collections::BTreeSet, fmt::Debug, future::Future, time::Duration};

/// How long a test waits for the cluster to converge before it gives up.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A client for the cluster that `KUBECONFIG` names. Fails, rather than skips, without one:
/// an e2e test that did not reach a cluster has not passed.
pub async fn client() -> Result<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        bail!("KUBECONFIG is not set; run the e2e suite through `cargo xtask test`");
    }
    Client::try_default()
        .await
        .context("building a client from KUBECONFIG")
}

/// Runs `test` in a fresh namespace named after it, then deletes the namespace. When the test
/// fails, the namespace's objects are printed first, to show the state it failed in.
pub async fn with_temp_ns<F, Fut>(name: &str, test: F) -> Result<()>
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let client = client().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    generate_name: Some(format!("e2e-{name}-")),
                    labels: Some([("oxlink.io/e2e".to_string(), name.to_string())].into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .context("creating the test namespace")?;
    let ns_name = ns
        .metadata
        .name
        .context("the API server named the namespace")?;
    let result = test(client.clone(), ns_name.clone()).await;
    if let Err(e) = &result {
        eprintln!("test {name} failed in namespace {ns_name}: {e:#}");
        dump_namespace(&ns_name);
    }
    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .context("deleting the test namespace")?;
    result
}

/// Polls `check` every 200ms until it returns `Ok(Some(value))`, or fails after `timeout` with
/// the last observation.
pub async fn eventually<T, O, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    O: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, O>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = check().await?;
        match last {
            Ok(value) => return Ok(value),
            Err(observed) if tokio::time::Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}; last seen: {observed:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A Deployment of `replicas` pods labelled `app: <name>`, each with one container `<name>`
/// listening on port 8080 (named `http`). No image is ever pulled: localkube runs no containers.
pub fn deployment(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": name,
                    "image": format!("example.invalid/{name}:1"),
                    "ports": [{"name": "http", "containerPort": 8080}],
                }]},
            },
        },
    })
}

/// The IPs of the pods that match `selector`, once there are exactly `n` pods, none
/// terminating, all Ready, each with its own IP; otherwise what was seen, for the timeout
/// message of [`eventually`].
pub async fn ready_pod_ips(
    client: &Client,
    ns: &str,
    selector: &str,
    n: usize,
) -> Result<std::result::Result<BTreeSet<String>, Vec<String>>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut ips = BTreeSet::new();
    let mut seen = Vec::new();
    for pod in pods.list(&ListParams::default().labels(selector)).await? {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let status = pod.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        seen.push(format!(
            "{name} ip={:?} ready={ready} terminating={terminating}",
            status.pod_ip
        ));
        if let (false, true, Some(ip)) = (terminating, ready, status.pod_ip) {
            ips.insert(ip);
        }
    }
    Ok(if ips.len() == n && seen.len() == n {
        Ok(ips)
    } else {
        Err(seen)
    })
}

fn dump_namespace(ns: &str) {
    let out = std::process::Command::new("kubectl")
        .args([
            "get",
            "deployments,replicasets,pods,services,endpointslices,events",
            "-o",
            "wide",
            "-n",
            ns,
        ])
        .output();
    match out {
        Ok(out) => eprintln!(
            "--- objects in {ns} ---\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("(could not run kubectl to dump {ns}: {e})"),
    }
}
