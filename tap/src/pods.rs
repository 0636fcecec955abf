//! The cluster's side: which pods a resource names, whether their proxies serve tap, and what is
//! known about an address (its pod's name, namespace and owner).

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::{Api, Client, api::ListParams};
use oxlink_crds::names::{env, identity::service_account_identity, labels, proxy::PROXY_CONTAINER};
use oxlink_viz::{Kind, Resource, tap::Peer};
use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

/// A pod whose proxy is tapped.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub namespace: String,
    pub ip: IpAddr,
    /// The proxy's mesh identity, which its tap port must present.
    pub identity: String,
}

/// Why a resource yields no pod to tap.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{kind} {name:?} not found in namespace {ns:?}")]
    NotFound {
        kind: &'static str,
        name: String,
        ns: String,
    },
    #[error("no running pods found for {0}")]
    NoPods(String),
    #[error("no meshed pods found for {0}: they run no linkerd-proxy")]
    NotMeshed(String),
    #[error(
        "tap is not enabled on the proxies of {0}: restart its pods so that they are injected \
         with {TAP}",
        TAP = env::TAP_SVC_NAME
    )]
    TapDisabled(String),
    #[error("reading the cluster: {0}")]
    Api(#[from] kube::Error),
}

/// What tap events say about a pod: `pod`, `namespace`, `serviceaccount` and its owner
/// (`deployment`, `statefulset`, …), named as the proxies' metrics name them.
pub fn labels_of(pod: &Pod) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(name) = &pod.metadata.name {
        out.insert("pod".to_string(), name.clone());
    }
    if let Some(ns) = &pod.metadata.namespace {
        out.insert("namespace".to_string(), ns.clone());
    }
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    out.insert("serviceaccount".to_string(), sa);
    if let Some((kind, name)) = labels::pod_owner(pod) {
        out.insert(kind, name);
    }
    out
}

/// Whether the pod runs a proxy (`None` if not) that serves tap (the tap identity is set).
pub fn tap_enabled(pod: &Pod) -> Option<bool> {
    let spec = pod.spec.as_ref()?;
    let proxy = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == PROXY_CONTAINER)?;
    Some(
        proxy.env.iter().flatten().any(|e| {
            e.name == env::TAP_SVC_NAME && e.value.as_deref().is_some_and(|v| !v.is_empty())
        }),
    )
}

fn pod_ip(pod: &Pod) -> Option<IpAddr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod_ip(pod).is_some()
}

/// The pods of `resource` (in `ns` unless it is a namespace) that are running: those a
/// Service selects, those a workload owns, one pod, or all of a namespace's.
pub fn select<'a>(resource: &Resource, pods: &'a [Pod], service: Option<&Service>) -> Vec<&'a Pod> {
    let wanted = |pod: &Pod| -> bool {
        let name = resource.name.as_deref();
        match resource.kind {
            Kind::Namespace | Kind::Authority => true,
            Kind::Pod => name.is_none_or(|n| pod.metadata.name.as_deref() == Some(n)),
            Kind::Service => {
                let selector = service
                    .and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.selector.as_ref())
                    .filter(|s| !s.is_empty());
                let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
                selector.is_some_and(|sel| sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
            }
            kind => {
                let labels = labels_of(pod);
                match name {
                    Some(n) => labels.get(kind.label()).map(String::as_str) == Some(n),
                    None => labels.contains_key(kind.label()),
                }
            }
        }
    };
    pods.iter().filter(|p| is_running(p) && wanted(p)).collect()
}

/// The pods to tap for `resource`, read from the API server, each with its proxy's identity.
pub async fn resolve(
    client: &Client,
    resource: &Resource,
    ns: &str,
    trust_domain: &str,
) -> Result<Vec<Target>, ResolveError> {
    let ns = match (resource.kind, &resource.name) {
        (Kind::Namespace, Some(name)) => name.as_str(),
        _ => ns,
    };
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let service = match (resource.kind, &resource.name) {
        (Kind::Service, Some(name)) => Some(
            Api::<Service>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
                .ok_or_else(|| ResolveError::NotFound {
                    kind: "service",
                    name: name.clone(),
                    ns: ns.to_string(),
                })?,
        ),
        _ => None,
    };
    let pods = match (resource.kind, &resource.name) {
        (Kind::Pod, Some(name)) => pods_api.get_opt(name).await?.into_iter().collect(),
        _ => pods_api.list(&ListParams::default()).await?.items,
    };
    targets(resource, ns, &pods, service.as_ref(), trust_domain)
}

/// The pure part of [`resolve`].
pub fn targets(
    resource: &Resource,
    ns: &str,
    pods: &[Pod],
    service: Option<&Service>,
    trust_domain: &str,
) -> Result<Vec<Target>, ResolveError> {
    let what = || format!("{} in namespace {ns:?}", resource.display());
    let selected = select(resource, pods, service);
    if selected.is_empty() {
        return Err(ResolveError::NoPods(what()));
    }
    let meshed: Vec<(&Pod, bool)> = selected
        .into_iter()
        .filter_map(|p| Some((p, tap_enabled(p)?)))
        .collect();
    if meshed.is_empty() {
        return Err(ResolveError::NotMeshed(what()));
    }
    let targets: Vec<Target> = meshed
        .into_iter()
        .filter(|(_, tap)| *tap)
        .filter_map(|(pod, _)| {
            let labels = labels_of(pod);
            let control_ns = pod
                .metadata
                .labels
                .as_ref()?
                .get(labels::CONTROL_PLANE_NS)?;
            Some(Target {
                name: labels["pod"].clone(),
                namespace: labels["namespace"].clone(),
                ip: pod_ip(pod)?,
                identity: service_account_identity(
                    &labels["serviceaccount"],
                    &labels["namespace"],
                    control_ns,
                    trust_domain,
                ),
            })
        })
        .collect();
    if targets.is_empty() {
        return Err(ResolveError::TapDisabled(what()));
    }
    Ok(targets)
}

/// What the cluster knows about pod addresses, to name both ends of each event.
#[derive(Debug, Default)]
pub struct Directory {
    by_ip: HashMap<IpAddr, BTreeMap<String, String>>,
}

impl Directory {
    /// Every running pod's address and labels.
    pub async fn load(client: &Client) -> Result<Self, kube::Error> {
        let pods = Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        Ok(Self::from_pods(&pods))
    }

    pub fn from_pods(pods: &[Pod]) -> Self {
        let by_ip = pods
            .iter()
            .filter(|p| is_running(p))
            .filter_map(|p| Some((pod_ip(p)?, labels_of(p))))
            .collect();
        Self { by_ip }
    }

    /// Adds the pod's labels to what the proxy said about `peer` (the proxy's own win).
    pub fn hydrate(&self, peer: &mut Peer) {
        let Some(labels) = peer
            .ip
            .parse()
            .ok()
            .and_then(|ip: IpAddr| self.by_ip.get(&ip))
        else {
            return;
        };
        for (k, v) in labels {
            peer.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

#[cfg(test)]
mod tests;
