//! `oxlink viz check`: the checks of `linkerd viz check` that apply to this extension, in
//! Linkerd's words and output shapes (the tap API server's checks wait for a tap server).

use super::{
    EXTENSION_LABEL, NAMESPACE, chart,
    cluster::{self, MetricsApi},
};
use crate::check::report::{self, Category, Outcome, Output};
use crate::client::ClusterArgs;
use anyhow::Result;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Pod},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{Api, Client, api::ListParams};
use oxlink_crds::{duration::parse_duration, names::proxy::PROXY_CONTAINER};
use oxlink_viz::api::{SELF_CHECK_PATH, SelfCheckResponse};
use serde_json::json;
use std::{
    io::Write,
    time::{Duration, Instant},
};

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Maximum allowed time for all tests to pass (Go duration).
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    wait: Duration,
    /// Output format: table, short or json.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Some viz checks failed; the report says which.
#[derive(Debug)]
pub(crate) struct VizChecksFailed;

impl std::fmt::Display for VizChecksFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some checks failed")
    }
}

impl std::error::Error for VizChecksFailed {}

pub(crate) fn run(args: CheckArgs, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
    let categories = cluster::block_on(async {
        let deadline = Instant::now() + args.wait;
        loop {
            let c = vec![checks(cluster_args).await];
            if report::success(&c) || Instant::now() >= deadline {
                return Ok(c);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })?;
    report::render(&categories, args.output, out)?;
    if !report::success(&categories) {
        return Err(VizChecksFailed.into());
    }
    Ok(())
}

/// The names of the chart's objects of kind `kind` with default values.
fn rendered(kind: &str) -> Vec<String> {
    let values = chart::values_with(json!({})).unwrap_or_default();
    chart::render(&values)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.kind == kind)
        .filter_map(|d| {
            serde_saphyr::from_str::<serde_json::Value>(&d.yaml)
                .ok()
                .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string))
        })
        .collect()
}

async fn missing<K>(api: Api<K>, expected: &[String], what: &str) -> Result<(), String>
where
    K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned,
{
    let lp = ListParams::default().labels(&format!("{}={}", EXTENSION_LABEL.0, EXTENSION_LABEL.1));
    let present: Vec<String> = api
        .list_metadata(&lp)
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    let gone: Vec<&String> = expected.iter().filter(|n| !present.contains(n)).collect();
    match gone.as_slice() {
        [] => Ok(()),
        _ => Err(format!(
            "missing {what}: {}",
            gone.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

async fn pods(client: &Client) -> Result<Vec<Pod>, String> {
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| e.to_string())
}

fn injected(pods: &[Pod]) -> Result<(), String> {
    // The tap server opts out: it speaks mesh TLS itself.
    let opted_out = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(oxlink_crds::names::annotations::INJECT))
            .is_some_and(|v| v == oxlink_crds::names::annotations::INJECT_DISABLED)
    };
    let bare: Vec<&str> = pods
        .iter()
        .filter(|p| !opted_out(p))
        .filter(|p| {
            !p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| c.name == PROXY_CONTAINER)
            })
        })
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    match bare.as_slice() {
        [] => Ok(()),
        _ => Err(format!(
            "Could not find proxy container for {} pod(s)",
            bare.join(", ")
        )),
    }
}

fn running(pods: &[Pod]) -> Result<(), String> {
    if pods.is_empty() {
        return Err(format!("No running pods for \"{NAMESPACE}\""));
    }
    for p in pods {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase != "Running" || !ready {
            return Err(format!(
                "pod/{} container is not ready (phase {phase})",
                p.metadata.name.as_deref().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The Prometheus the metrics API reads when it is not the bundled one: the `web`
/// Deployment's `--prometheus-url` (the chart's `prometheusUrl`).
pub(crate) async fn external_prometheus(client: &Client) -> Result<Option<String>, String> {
    let web = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .get_opt(super::WEB)
        .await
        .map_err(|e| e.to_string())?;
    Ok(web.and_then(|d| {
        d.spec?.template.spec?.containers.iter().find_map(|c| {
            c.args
                .iter()
                .flatten()
                .find_map(|a| a.strip_prefix("--prometheus-url=").map(str::to_string))
        })
    }))
}

async fn prometheus_installed(client: &Client) -> Result<(), String> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    if cms
        .get_opt("prometheus-config")
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err("missing ConfigMap prometheus-config".into());
    }
    if deploys
        .get_opt("prometheus")
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err("missing Deployment prometheus".into());
    }
    let role = format!("linkerd-{NAMESPACE}-prometheus");
    if Api::<ClusterRole>::all(client.clone())
        .get_opt(&role)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!("missing ClusterRole {role}"));
    }
    if Api::<ClusterRoleBinding>::all(client.clone())
        .get_opt(&role)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!("missing ClusterRoleBinding {role}"));
    }
    Ok(())
}

/// The extension's own self-check: the metrics API answers, its Prometheus answers it, and
/// scrapes at least one proxy.
async fn self_check(client: &Client) -> Result<(), String> {
    let answer: SelfCheckResponse = MetricsApi::new(client.clone())
        .get(SELF_CHECK_PATH, "")
        .await
        .map_err(|e| format!("Error calling the metrics API: {e:#}"))?;
    if answer.proxies >= 1.0 {
        Ok(())
    } else {
        Err(format!(
            "Prometheus at {} scrapes no Linkerd proxy yet",
            answer.prometheus_url
        ))
    }
}

async fn checks(cluster_args: &ClusterArgs) -> Category {
    const CATEGORY: &str = "linkerd-viz";
    let client = match cluster::client(cluster_args).await {
        Ok(c) => c,
        Err(e) => {
            return Category::new(
                CATEGORY,
                vec![
                    Outcome::new(
                        "can initialize the client",
                        "l5d-viz-k8s-api",
                        Err(format!("{e:#}")),
                    )
                    .fatal(),
                ],
            );
        }
    };
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(NAMESPACE)
        .await
        .map_err(|e| e.to_string())
        .and_then(|n| {
            n.map(drop)
                .ok_or_else(|| format!("The \"{NAMESPACE}\" namespace does not exist"))
        });
    let mut checks = vec![
        Outcome::new("linkerd-viz Namespace exists", "l5d-viz-ns-exists", ns).fatal(),
        Outcome::new("can initialize the client", "l5d-viz-k8s-api", Ok(())),
        Outcome::new(
            "linkerd-viz ClusterRoles exist",
            "l5d-viz-cr-exists",
            missing(
                Api::<ClusterRole>::all(client.clone()),
                &rendered("ClusterRole"),
                "ClusterRoles",
            )
            .await,
        ),
        Outcome::new(
            "linkerd-viz ClusterRoleBindings exist",
            "l5d-viz-crb-exists",
            missing(
                Api::<ClusterRoleBinding>::all(client.clone()),
                &rendered("ClusterRoleBinding"),
                "ClusterRoleBindings",
            )
            .await,
        ),
        Outcome::skipped(
            "tap API server has valid cert",
            "l5d-tap-cert-valid",
            "oxlink's tap server is reached through the API server's Service proxy, with no \
             APIService certificate of its own",
        ),
    ];
    let pods = pods(&client).await;
    checks.push(Outcome::new(
        "linkerd-viz pods are injected",
        "l5d-viz-pods-injection",
        pods.as_deref().map_err(Clone::clone).and_then(injected),
    ));
    checks.push(
        Outcome::new(
            "viz extension pods are running",
            "l5d-viz-pods-running",
            pods.as_deref().map_err(Clone::clone).and_then(running),
        )
        .fatal(),
    );
    const PROMETHEUS: &str = "prometheus is installed and configured correctly";
    checks.push(match external_prometheus(&client).await {
        Ok(Some(_)) => Outcome::skipped(PROMETHEUS, "l5d-viz-prometheus", "prometheus is disabled"),
        Ok(None) => Outcome::new(
            PROMETHEUS,
            "l5d-viz-prometheus",
            prometheus_installed(&client).await,
        ),
        Err(e) => Outcome::new(PROMETHEUS, "l5d-viz-prometheus", Err(e)),
    });
    checks.push(Outcome::new(
        "viz extension self-check",
        "l5d-viz-metrics-api",
        self_check(&client).await,
    ));
    Category::new(CATEGORY, checks)
}
