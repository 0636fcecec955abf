//! ExternalWorkloads: meshed workloads outside the cluster, behind EndpointSlices whose
//! endpoints reference them. Their endpoints carry the workload's URI-like identity and TLS
//! server name, and an `external_workload` metric label.

use super::{Index, IndexResource, ObjKey};
use crate::ports::PortSet;
use linkerd2_proxy_api::{destination as pb, net::TcpAddress};
use oxlink_crds::{
    ExternalWorkload,
    names::{annotations, control_plane::DEFAULT_PROXY_INBOUND_PORT},
};
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExternalInfo {
    /// `spec.meshTLS.identity` (a URI, e.g. a SPIFFE ID).
    pub(crate) identity: String,
    /// `spec.meshTLS.serverName`: the name the client's TLS asks for.
    pub(crate) server_name: String,
    pub(crate) metric_labels: Arc<HashMap<String, String>>,
    /// Opaque ports from the workload's annotation (its named ports resolve), else none given.
    pub(crate) opaque_ports: Option<PortSet>,
}

impl ExternalInfo {
    fn from(obj: &ExternalWorkload) -> Option<(ObjKey, Self)> {
        let key = ObjKey::of(&obj.metadata)?;
        let named = |name: &str| {
            obj.spec
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.port).ok())
        };
        let opaque_ports = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::OPAQUE_PORTS))
            .map(|list| PortSet::parse(list, named));
        let metric_labels = HashMap::from([
            ("external_workload".to_string(), key.name.clone()),
            ("namespace".to_string(), key.ns.clone()),
        ]);
        Some((
            key,
            Self {
                identity: obj.spec.mesh_tls.identity.clone(),
                server_name: obj.spec.mesh_tls.server_name.clone(),
                metric_labels: Arc::new(metric_labels),
                opaque_ports,
            },
        ))
    }
}

impl Index {
    /// An endpoint backed by an ExternalWorkload, as the proxy sees it: always meshed, with the
    /// workload's URI identity and server name.
    pub(super) fn external_weighted_addr(
        &self,
        addr: SocketAddr,
        workload: &ExternalInfo,
    ) -> pb::WeightedAddr {
        use pb::tls_identity::{DnsLikeIdentity, Strategy, UriLikeIdentity};
        let opaque = workload
            .opaque_ports
            .as_ref()
            .unwrap_or(&self.config.default_opaque_ports)
            .contains(addr.port());
        let protocol_hint = self.protocol_hint(opaque, DEFAULT_PROXY_INBOUND_PORT);
        pb::WeightedAddr {
            addr: Some(TcpAddress::from(addr)),
            weight: super::WEIGHT,
            metric_labels: (*workload.metric_labels).clone(),
            tls_identity: Some(pb::TlsIdentity {
                server_name: Some(DnsLikeIdentity {
                    name: workload.server_name.clone(),
                }),
                strategy: Some(Strategy::UriLikeIdentity(UriLikeIdentity {
                    uri: workload.identity.clone(),
                })),
            }),
            protocol_hint,
            ..Default::default()
        }
    }

    /// Marks every subscribed Service whose endpoints include the ExternalWorkload `key`.
    fn mark_external_services(&mut self, key: &ObjKey) {
        let subscribed = self
            .endpoint_subs
            .keys()
            .filter(|svc| svc.ns == key.ns)
            .filter(|svc| {
                self.service_slices.get(svc).into_iter().flatten().any(|s| {
                    self.slices.get(s).is_some_and(|s| {
                        s.endpoints
                            .iter()
                            .any(|e| e.external_workload.as_deref() == Some(key.name.as_str()))
                    })
                })
            })
            .cloned()
            .collect::<Vec<_>>();
        self.dirty_services.extend(subscribed);
    }
}

impl IndexResource for ExternalWorkload {
    fn apply(index: &mut Index, obj: &Self) {
        let Some((key, info)) = ExternalInfo::from(obj) else {
            return;
        };
        index.policy.apply_external(&key, obj);
        if index.external_workloads.get(&key).map(|w| &**w) == Some(&info) {
            return;
        }
        index.external_workloads.insert(key.clone(), Arc::new(info));
        index.mark_external_services(&key);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        index.policy.delete_external(key);
        if index.external_workloads.remove(key).is_some() {
            index.mark_external_services(key);
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.external_workloads.keys().cloned().collect()
    }
}
