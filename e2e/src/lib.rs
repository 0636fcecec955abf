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

pub mod cli;
pub mod dataplane;
pub mod destination;
pub mod identity;
pub mod localkube;
pub mod policy;
pub mod proxy;
pub mod viz;
pub mod webdriver;

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

/// How long one test in a temporary namespace may run in all: a backstop for any wait that
/// lacks its own deadline, so that a regression fails the test instead of hanging the run. The
/// longest test (the API server restart) stops and starts the cluster, 120s each at most.
pub const TEST_LIMIT: Duration = Duration::from_secs(480);

/// The next message of a gRPC stream, within [`CONVERGE`]; fails if the stream ends, errs, or
/// stays silent that long.
pub async fn next_message<T>(stream: &mut tonic::Streaming<T>, what: &str) -> Result<T> {
    match tokio::time::timeout(CONVERGE, stream.message()).await {
        Ok(msg) => msg
            .with_context(|| format!("reading {what}"))?
            .with_context(|| format!("the stream ended before {what}")),
        Err(_) => bail!("timed out after {CONVERGE:?} waiting for {what}"),
    }
}

/// A client for the cluster that `KUBECONFIG` names. Fails, rather than skips, without one:
/// an e2e test that did not reach a cluster has not passed.
pub async fn client() -> Result<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        bail!("KUBECONFIG is not set; run the e2e suite through `cargo xtask test`");
    }
    oxlink_kube::infer()
        .await
        .context("building a client from KUBECONFIG")
}

/// The variable that names the file where a test records its skip; `cargo xtask test` (and
/// `cargo xtask e2e`) set it and read the file after the run (xtask's `run::TestReport`).
pub const SKIP_LOG_ENV: &str = "OXLINK_TEST_SKIP_LOG";

/// Records that the running test skips, and why; the test then returns what this returns.
///
/// libtest has no run-time skip: a test that returns passes. So that a test whose premise is
/// absent (say, no hook to restart the API server) is not counted as passed, it calls
/// `return oxlink_e2e::skip("why")`, which appends `TEST-NAME<TAB>why` to the file named by
/// [`SKIP_LOG_ENV`]; the harness moves that test from passed to skipped and prints the reason.
/// The test's name is its thread's, which libtest sets. Outside the harness (plain `cargo test`)
/// the reason is printed and the test passes. Fails if the skip cannot be recorded.
pub fn skip(reason: &str) -> Result<()> {
    let thread = std::thread::current();
    let name = thread
        .name()
        .filter(|n| *n != "main")
        .context("skip() called outside a libtest test thread: no test name to record")?;
    let log = std::env::var_os(SKIP_LOG_ENV).map(std::path::PathBuf::from);
    record_skip(log.as_deref(), name, reason)
}

fn record_skip(log: Option<&std::path::Path>, name: &str, reason: &str) -> Result<()> {
    let reason = reason.replace(['\t', '\n'], " ");
    eprintln!("skipped {name}: {reason}");
    if let Some(path) = log {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening the skip log {}", path.display()))?;
        // One write of one line: O_APPEND keeps lines from concurrent tests whole.
        log.write_all(format!("{name}\t{reason}\n").as_bytes())
            .context("recording the skip")?;
    }
    Ok(())
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
    let result = match tokio::time::timeout(TEST_LIMIT, test(client.clone(), ns_name.clone())).await
    {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!(
            "test {name} did not finish within {TEST_LIMIT:?}"
        )),
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_one_line_per_test_named_after_its_thread() -> Result<()> {
        let log = std::env::temp_dir().join(format!("oxlink-e2e-skip-{}", std::process::id()));
        std::fs::write(&log, "")?;
        record_skip(Some(&log), "a::test", "no hook\tat all\n(none)")?;
        record_skip(Some(&log), "b", "why")?;
        let written = std::fs::read_to_string(&log)?;
        std::fs::remove_file(&log)?;
        assert_eq!(written, "a::test\tno hook at all (none)\nb\twhy\n");
        // The thread libtest runs this test on carries the test's name.
        assert_eq!(
            std::thread::current().name(),
            Some("tests::a_skip_is_one_line_per_test_named_after_its_thread")
        );
        // Without a log (outside the harness) nothing is written, and a missing log fails.
        record_skip(None, "c", "why")?;
        assert!(record_skip(Some(&log), "d", "why").is_err());
        Ok(())
    }
}
