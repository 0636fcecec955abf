//! Servers (`policy.linkerd.io`) with `proxyProtocol: opaque`: the ports they select on pods are
//! opaque, whatever the pods' annotations say.

use super::{Index, IndexResource, ObjKey, PodInfo};
use k8s_openapi::apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString};
use oxlink_crds::policy::{Server, server::ProxyProtocol};
use std::collections::BTreeMap;

/// An opaque Server: which pods and which port.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OpaqueServer {
    selector: LabelSelector,
    port: IntOrString,
}

impl OpaqueServer {
    fn selects(&self, pod: &PodInfo, port: u16) -> bool {
        let port_matches = match &self.port {
            IntOrString::Int(p) => i32::from(port) == *p,
            IntOrString::String(name) => {
                pod.named_ports.iter().any(|(n, p)| n == name && *p == port)
            }
        };
        port_matches && selects(&self.selector, &pod.labels)
    }
}

/// Whether a label selector matches `labels`; an empty selector matches everything, and an
/// unknown operator nothing.
pub(crate) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

impl Index {
    /// Whether `port` on `pod` is opaque: named by the pod's opaque-ports annotation (or the
    /// defaults, without one), or selected by an opaque Server.
    pub(super) fn is_opaque(&self, pod: &PodInfo, port: u16) -> bool {
        pod.opaque_ports
            .as_ref()
            .unwrap_or(&self.config.default_opaque_ports)
            .contains(port)
            || self
                .opaque_servers
                .iter()
                .any(|(key, server)| key.ns == pod.namespace && server.selects(pod, port))
    }

    /// Marks everything built from the namespace's pods.
    fn mark_namespace(&mut self, ns: &str) {
        let services = self
            .endpoint_subs
            .keys()
            .chain(self.service_profile_subs.keys())
            .filter(|svc| svc.ns == ns)
            .cloned()
            .collect::<Vec<_>>();
        self.dirty_services.extend(services);
        let ips = self
            .pods
            .iter()
            .filter(|(key, _)| key.ns == ns)
            .flat_map(|(_, pod)| pod.ips.iter().copied())
            .collect::<Vec<_>>();
        self.dirty_ips.extend(ips);
    }
}

impl IndexResource for Server {
    fn apply(index: &mut Index, obj: &Self) {
        let Some(key) = ObjKey::of(&obj.metadata) else {
            return;
        };
        index.policy.apply_server(&key, obj);
        let opaque = match (&obj.spec.pod_selector, obj.spec.proxy_protocol) {
            (Some(selector), ProxyProtocol::Opaque) => Some(OpaqueServer {
                selector: selector.clone(),
                port: obj.spec.port.clone(),
            }),
            _ => None,
        };
        if index.opaque_servers.get(&key) == opaque.as_ref() {
            return;
        }
        match opaque {
            Some(server) => index.opaque_servers.insert(key.clone(), server),
            None => index.opaque_servers.remove(&key),
        };
        index.mark_namespace(&key.ns);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        index.policy.delete_server(key);
        if index.opaque_servers.remove(key).is_some() {
            index.mark_namespace(&key.ns);
        }
    }

    /// Every Server is kept for policy; the opaque ones are a subset.
    fn keys(index: &Index) -> Vec<ObjKey> {
        index.policy.servers.keys().cloned().collect()
    }
}
