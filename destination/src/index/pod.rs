//! Pods: only what endpoints and endpoint profiles are built from.

use super::{Config, Index, IndexResource, ObjKey, policy::PodPolicy};
use crate::ports::PortSet;
use k8s_openapi::api::core::v1::Pod;
use oxlink_crds::names::{
    annotations, control_plane::DEFAULT_PROXY_INBOUND_PORT, env,
    identity::service_account_identity, labels, labels::POD_TEMPLATE_HASH,
};
use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PodInfo {
    /// The pod's IPs while it runs (empty once it has finished or is being deleted).
    pub(crate) ips: Vec<IpAddr>,
    /// Per-endpoint metric labels, shared by every endpoint of the pod.
    pub(crate) metric_labels: Arc<HashMap<String, String>>,
    /// The mesh identity, for pods whose proxy belongs to our control plane.
    pub(crate) identity: Option<String>,
    /// Whether the pod runs a proxy of any control plane (`linkerd.io/control-plane-ns`).
    pub(crate) meshed: bool,
    /// Opaque ports: the pod's annotation, else the defaults.
    pub(crate) opaque_ports: Option<PortSet>,
    pub(crate) skip_inbound_ports: PortSet,
    /// The proxy's inbound port, for `opaque_transport`.
    pub(crate) inbound_port: u16,
    /// The pod's namespace and labels, for Server selectors.
    pub(crate) namespace: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// Named container ports, for Servers that name their port.
    pub(crate) named_ports: Vec<(String, u16)>,
    /// Default-policy annotations and probes, for inbound policy.
    pub(crate) policy: PodPolicy,
}

impl PodInfo {
    pub(crate) fn from_pod(pod: &Pod, config: &Config) -> Option<(ObjKey, Self)> {
        let key = ObjKey::of(&pod.metadata)?;
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let pod_labels = meta.labels.clone().unwrap_or_default();
        let pod_annotations = meta.annotations.clone().unwrap_or_default();

        let finished = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let ips = if finished || host_network || meta.deletion_timestamp.is_some() {
            Vec::new()
        } else {
            let mut ips: Vec<IpAddr> = status
                .and_then(|s| s.pod_ips.as_ref())
                .into_iter()
                .flatten()
                .map(|ip| ip.ip.as_str())
                .chain(status.and_then(|s| s.pod_ip.as_deref()))
                .filter_map(|ip| ip.parse().ok())
                .collect();
            ips.sort();
            ips.dedup();
            ips
        };

        let sa = spec
            .and_then(|s| s.service_account_name.clone())
            .filter(|sa| !sa.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let control_plane_ns = pod_labels.get(labels::CONTROL_PLANE_NS);
        let identity = (control_plane_ns == Some(&config.controller_namespace)).then(|| {
            service_account_identity(
                &sa,
                &key.ns,
                &config.controller_namespace,
                &config.identity_trust_domain,
            )
        });

        let mut metric_labels = HashMap::from([
            ("pod".to_string(), key.name.clone()),
            ("serviceaccount".to_string(), sa),
        ]);
        if let Some((kind, name)) = labels::pod_owner(pod) {
            metric_labels.insert(kind, name);
        }
        if let Some(ns) = control_plane_ns {
            metric_labels.insert("control_plane_ns".into(), ns.clone());
        }
        if let Some(hash) = pod_labels.get(POD_TEMPLATE_HASH) {
            metric_labels.insert("pod_template_hash".into(), hash.clone());
        }

        let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
        let named_port = |name: &str| {
            containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
        };
        let named_ports = containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
            .collect();
        let opaque_ports = pod_annotations
            .get(annotations::OPAQUE_PORTS)
            .map(|list| PortSet::parse(list, named_port));
        let skip_inbound_ports = pod_annotations
            .get(annotations::SKIP_INBOUND_PORTS)
            .map(|list| PortSet::parse(list, named_port))
            .unwrap_or_default();
        let inbound_port = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .flat_map(|c| c.env.iter().flatten())
            .find(|e| e.name == env::INBOUND_LISTEN_ADDR)
            .and_then(|e| e.value.as_deref()?.rsplit_once(':')?.1.parse().ok())
            .unwrap_or(DEFAULT_PROXY_INBOUND_PORT);

        let namespace = key.ns.clone();
        Some((
            key,
            Self {
                ips,
                metric_labels: Arc::new(metric_labels),
                identity,
                meshed: control_plane_ns.is_some(),
                opaque_ports,
                skip_inbound_ports,
                inbound_port,
                namespace,
                labels: pod_labels,
                named_ports,
                policy: PodPolicy::from_pod(pod),
            },
        ))
    }
}

impl Index {
    /// Marks every subscribed Service whose endpoints include the pod `pod`.
    pub(super) fn mark_pod_services(&mut self, pod: &ObjKey) {
        let subscribed = self
            .endpoint_subs
            .keys()
            .chain(self.service_profile_subs.keys())
            .filter(|svc| svc.ns == pod.ns);
        for svc in subscribed {
            let uses_pod = self.service_slices.get(svc).into_iter().flatten().any(|s| {
                self.slices.get(s).is_some_and(|s| {
                    s.endpoints
                        .iter()
                        .any(|e| e.pod.as_deref() == Some(pod.name.as_str()))
                })
            });
            if uses_pod {
                self.dirty_services.insert(svc.clone());
            }
        }
    }
}

impl IndexResource for Pod {
    fn apply(index: &mut Index, obj: &Self) {
        let Some((key, info)) = PodInfo::from_pod(obj, &index.config) else {
            return;
        };
        if index.pods.get(&key).is_some_and(|old| **old == info) {
            return;
        }
        if let Some(old) = index.pods.get(&key) {
            for ip in old.ips.clone() {
                if index.pod_ips.get(&ip) == Some(&key) {
                    index.pod_ips.remove(&ip);
                }
                index.dirty_ips.insert(ip);
            }
        }
        for ip in &info.ips {
            index.pod_ips.insert(*ip, key.clone());
            index.dirty_ips.insert(*ip);
        }
        index.pods.insert(key.clone(), Arc::new(info));
        index.mark_pod_services(&key);
        index.policy.dirty_pods.insert(key);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        if let Some(old) = index.pods.remove(key) {
            for ip in &old.ips {
                if index.pod_ips.get(ip) == Some(key) {
                    index.pod_ips.remove(ip);
                }
                index.dirty_ips.insert(*ip);
            }
            index.mark_pod_services(key);
            index.policy.dirty_pods.insert(key.clone());
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.pods.keys().cloned().collect()
    }
}
