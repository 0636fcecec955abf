//! What `oxlink viz` reads from the cluster: the resources and pods behind `stat` rows, the
//! ServiceProfiles behind `routes`, the extension's objects, and Prometheus' answers through the
//! API server's Service proxy (`services/prometheus:9090/proxy`, as `kubectl proxy` reaches it).

use super::chart::{EXTENSION_LABEL, NAMESPACE};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use oxlink_crds::{names::proxy::PROXY_CONTAINER, service_profile::ServiceProfile};
use oxlink_viz::{Kind, prom, stat::Listed};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::client::ClusterArgs;
pub(crate) use crate::install::cluster::block_on;

/// The Service of the extension's Prometheus and its port.
const PROMETHEUS_SERVICE: &str = "prometheus:9090";

pub(crate) async fn client(cluster: &ClusterArgs) -> Result<Client> {
    cluster.client().await
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters pass).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends instant queries to the extension's Prometheus.
pub(crate) struct Prometheus {
    client: Client,
}

impl Prometheus {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// The vector answering `query`.
    pub(crate) async fn query(&self, query: &str) -> Result<Vec<prom::Sample>> {
        let path = format!(
            "/api/v1/namespaces/{NAMESPACE}/services/{PROMETHEUS_SERVICE}/proxy/api/v1/query?query={}",
            encode(query)
        );
        let request = http::Request::get(&path)
            .body(Vec::new())
            .context("building the Prometheus request")?;
        let body = match self.client.request_text(request).await {
            Ok(body) => body,
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 503 => bail!(
                "Prometheus of the linkerd-viz extension is not reachable ({}); is it installed \
                 and running? Try `oxlink viz check`",
                e.message
            ),
            // Prometheus' own errors (a bad query) come back with its JSON body.
            Err(kube::Error::Api(e)) if e.code == 400 || e.code == 422 => {
                return Err(prom::PromError::Query {
                    error_type: e.reason,
                    error: e.message,
                }
                .into());
            }
            Err(e) => return Err(e).context("querying Prometheus"),
        };
        Ok(prom::parse_vector(&body)?)
    }

    /// Several queries at once, answered in order.
    pub(crate) async fn queries(&self, queries: &[&str]) -> Result<Vec<Vec<prom::Sample>>> {
        futures::future::try_join_all(queries.iter().map(|q| self.query(q))).await
    }
}

/// Whether the pod runs a `linkerd-proxy` container (as a native sidecar or not).
pub(crate) fn is_meshed(p: &Pod) -> bool {
    p.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| c.name == PROXY_CONTAINER)
    })
}

fn is_live(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && p.metadata.deletion_timestamp.is_none()
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects `labels`.
pub(crate) fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    if selector.is_null() {
        return false;
    }
    let labels_ok = selector["matchLabels"].as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    });
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let value = labels.get(key).map(String::as_str);
            match e["operator"].as_str().unwrap_or_default() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

fn workload_resource(kind: Kind) -> Option<ApiResource> {
    let (group, version, k) = match kind {
        Kind::Deployment => ("apps", "v1", "Deployment"),
        Kind::StatefulSet => ("apps", "v1", "StatefulSet"),
        Kind::DaemonSet => ("apps", "v1", "DaemonSet"),
        Kind::ReplicaSet => ("apps", "v1", "ReplicaSet"),
        Kind::Job => ("batch", "v1", "Job"),
        _ => return None,
    };
    let gvk = GroupVersionKind::gvk(group, version, k);
    Some(ApiResource::from_gvk_with_plural(
        &gvk,
        &format!("{}s", k.to_ascii_lowercase()),
    ))
}

fn listed(namespace: &str, name: &str, pods: &[&Pod]) -> Listed {
    Listed {
        namespace: namespace.to_string(),
        name: name.to_string(),
        meshed: pods.iter().filter(|p| is_meshed(p)).count() as u32,
        pods: pods.len() as u32,
        status: None,
    }
}

/// The resources of `kind` (all, or the one named) in `namespace` (or every namespace), each
/// with how many of its live pods are meshed.
pub(crate) async fn list(
    client: &Client,
    kind: Kind,
    name: Option<&str>,
    namespace: Option<&str>,
) -> Result<Vec<Listed>> {
    let pods_api: Api<Pod> = match namespace {
        Some(ns) if kind != Kind::Namespace => Api::namespaced(client.clone(), ns),
        _ => Api::all(client.clone()),
    };
    let pods: Vec<Pod> = pods_api
        .list(&ListParams::default())
        .await
        .context("listing pods")?
        .items
        .into_iter()
        .filter(is_live)
        .collect();
    let ns_of = |p: &Pod| p.metadata.namespace.clone().unwrap_or_default();
    let not_found = |what: &str, n: &str| anyhow::anyhow!("{what} \"{n}\" not found");
    match kind {
        Kind::Namespace => {
            let names: Vec<String> = match name {
                Some(n) => {
                    Api::<Namespace>::all(client.clone())
                        .get_opt(n)
                        .await?
                        .ok_or_else(|| not_found("namespaces", n))?;
                    vec![n.to_string()]
                }
                None => Api::<Namespace>::all(client.clone())
                    .list_metadata(&ListParams::default())
                    .await
                    .context("listing namespaces")?
                    .items
                    .into_iter()
                    .filter_map(|n| n.metadata.name)
                    .collect(),
            };
            Ok(names
                .iter()
                .map(|n| {
                    let mine: Vec<&Pod> = pods.iter().filter(|p| ns_of(p) == *n).collect();
                    listed(n, n, &mine)
                })
                .collect())
        }
        Kind::Pod => {
            let mine: Vec<&Pod> = pods
                .iter()
                .filter(|p| name.is_none_or(|n| p.metadata.name.as_deref() == Some(n)))
                .collect();
            if let (Some(n), true) = (name, mine.is_empty()) {
                return Err(not_found("pods", n));
            }
            Ok(mine
                .into_iter()
                .map(|p| {
                    let mut l = listed(
                        &ns_of(p),
                        p.metadata.name.as_deref().unwrap_or_default(),
                        &[p],
                    );
                    l.status = Some(
                        p.status
                            .as_ref()
                            .and_then(|s| s.phase.clone())
                            .unwrap_or_else(|| "Unknown".into()),
                    );
                    l
                })
                .collect())
        }
        other => {
            let ar = workload_resource(other).context("not a workload kind")?;
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                None => Api::all_with(client.clone(), &ar),
            };
            let objects = match name {
                Some(n) => vec![
                    api.get_opt(n)
                        .await?
                        .ok_or_else(|| not_found(&format!("{}.{}", ar.plural, ar.group), n))?,
                ],
                None => {
                    api.list(&ListParams::default())
                        .await
                        .with_context(|| format!("listing {}", ar.plural))?
                        .items
                }
            };
            Ok(objects
                .iter()
                .map(|o| {
                    let ns = o.metadata.namespace.clone().unwrap_or_default();
                    let selector = &o.data["spec"]["selector"];
                    let mine: Vec<&Pod> = pods
                        .iter()
                        .filter(|p| {
                            ns_of(p) == ns
                                && selects(
                                    selector,
                                    p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                                )
                        })
                        .collect();
                    listed(&ns, o.metadata.name.as_deref().unwrap_or_default(), &mine)
                })
                .collect())
        }
    }
}

/// The Services in `namespace` that select any pod of the listed resource, and the routes of
/// their ServiceProfiles (`<svc>.<ns>.svc.<domain>`), as (service, route) pairs.
pub(crate) async fn profile_routes(
    client: &Client,
    namespace: &str,
    services: &[String],
) -> Result<Vec<(String, String)>> {
    let profiles: Api<ServiceProfile> = Api::namespaced(client.clone(), namespace);
    let all = profiles
        .list(&ListParams::default())
        .await
        .context("listing ServiceProfiles")?
        .items;
    let mut routes = Vec::new();
    for svc in services {
        let prefix = format!("{svc}.{namespace}.svc.");
        for p in all.iter().filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix))
        }) {
            routes.extend(p.spec.routes.iter().map(|r| (svc.clone(), r.name.clone())));
        }
    }
    Ok(routes)
}

/// The Services of `namespace` selecting a pod of `kind`/`name` (for `routes`).
pub(crate) async fn services_of(
    client: &Client,
    kind: Kind,
    name: &str,
    namespace: &str,
) -> Result<Vec<String>> {
    let pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .context("listing pods")?
        .items;
    let selected: Vec<&Pod> = match kind {
        Kind::Pod => pods
            .iter()
            .filter(|p| p.metadata.name.as_deref() == Some(name))
            .collect(),
        other => {
            let ar = workload_resource(other).context("routes needs a workload or a pod")?;
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
            let o = api.get_opt(name).await?.ok_or_else(|| {
                anyhow::anyhow!("{}.{} \"{name}\" not found", ar.plural, ar.group)
            })?;
            let selector = o.data["spec"]["selector"].clone();
            pods.iter()
                .filter(|p| {
                    selects(
                        &selector,
                        p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                    )
                })
                .collect()
        }
    };
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .context("listing services")?
        .items;
    Ok(services
        .into_iter()
        .filter(|s| {
            let Some(sel) = s.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                return false;
            };
            !sel.is_empty()
                && selected.iter().any(|p| {
                    let labels = p.metadata.labels.clone().unwrap_or_default();
                    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
        })
        .filter_map(|s| s.metadata.name)
        .collect())
}

/// The extension's cluster-wide objects (apiVersion, kind, name), labelled `linkerd.io/extension=viz`.
pub(crate) async fn extension_objects(
    cluster: &ClusterArgs,
) -> Result<Vec<(String, String, String)>> {
    let client = client(cluster).await?;
    let lp = ListParams::default().labels(&format!("{}={}", EXTENSION_LABEL.0, EXTENSION_LABEL.1));
    let mut out = Vec::new();
    for n in Api::<ClusterRole>::all(client.clone())
        .list_metadata(&lp)
        .await?
        .items
    {
        out.push((
            "rbac.authorization.k8s.io/v1".into(),
            "ClusterRole".into(),
            n.metadata.name.unwrap_or_default(),
        ));
    }
    for n in Api::<ClusterRoleBinding>::all(client.clone())
        .list_metadata(&lp)
        .await?
        .items
    {
        out.push((
            "rbac.authorization.k8s.io/v1".into(),
            "ClusterRoleBinding".into(),
            n.metadata.name.unwrap_or_default(),
        ));
    }
    for n in Api::<Namespace>::all(client.clone())
        .list_metadata(&lp)
        .await?
        .items
    {
        out.push((
            "v1".into(),
            "Namespace".into(),
            n.metadata.name.unwrap_or_default(),
        ));
    }
    Ok(out)
}
