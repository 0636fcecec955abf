//! What the metrics API reads from Kubernetes: the resources and pods behind `stat` rows (MESHED
//! counts the live pods that run a proxy), the Services in front of a workload, and the routes
//! of their ServiceProfiles.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use oxlink_crds::{names::proxy::PROXY_CONTAINER, service_profile::ServiceProfile};
use oxlink_kube::pods::{is_live, selects};
use oxlink_viz::{Kind, stat::Listed};
use std::collections::BTreeMap;

/// A resource the request names does not exist (the API server's words).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

fn is_meshed(p: &Pod) -> bool {
    oxlink_kube::pods::runs_container(p, PROXY_CONTAINER)
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
pub async fn list(
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
    let not_found =
        |what: &str, n: &str| anyhow::Error::new(NotFound(format!("{what} \"{n}\" not found")));
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
pub async fn profile_routes(
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
pub async fn services_of(
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
                NotFound(format!("{}.{} \"{name}\" not found", ar.plural, ar.group))
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
