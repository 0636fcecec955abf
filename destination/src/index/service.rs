//! Services: their cluster IPs, ports, opaque-ports annotation and traffic policy.

use super::{Index, IndexResource, ObjKey, policy::ServicePolicy};
use crate::ports::PortSet;
use k8s_openapi::api::core::v1::Service;
use oxlink_crds::names::annotations;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceInfo {
    pub(crate) cluster_ips: Vec<IpAddr>,
    pub(crate) ports: Vec<ServicePort>,
    /// The `config.linkerd.io/opaque-ports` annotation, if the Service has one.
    pub(crate) opaque_ports: Option<PortSet>,
    /// `internalTrafficPolicy: Local`: clients only reach endpoints on their own node.
    pub(crate) node_local: bool,
    /// `type: ExternalName`: a DNS alias, with no endpoints to discover.
    pub(crate) external_name: bool,
    /// Failure accrual and timeouts from the Service's annotations, for outbound policy.
    pub(crate) policy: ServicePolicy,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServicePort {
    pub(crate) port: u16,
    /// The port's name, `""` when unnamed (as EndpointSlices spell it).
    pub(crate) name: String,
}

impl ServiceInfo {
    pub(crate) fn from_service(svc: &Service) -> Option<(ObjKey, Self)> {
        let key = ObjKey::of(&svc.metadata)?;
        let spec = svc.spec.as_ref();
        let mut cluster_ips: Vec<IpAddr> = spec
            .and_then(|s| s.cluster_ips.clone())
            .unwrap_or_default()
            .iter()
            .chain(spec.and_then(|s| s.cluster_ip.as_ref()))
            .filter_map(|ip| ip.parse().ok())
            .collect();
        cluster_ips.sort();
        cluster_ips.dedup();
        let ports: Vec<ServicePort> = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .filter_map(|p| {
                Some(ServicePort {
                    port: u16::try_from(p.port).ok()?,
                    name: p.name.clone().unwrap_or_default(),
                })
            })
            .collect();
        let opaque_ports = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::OPAQUE_PORTS))
            .map(|list| {
                PortSet::parse(list, |name| {
                    ports.iter().find(|p| p.name == name).map(|p| p.port)
                })
            });
        let node_local = spec.and_then(|s| s.internal_traffic_policy.as_deref()) == Some("Local");
        Some((
            key,
            Self {
                cluster_ips,
                ports,
                opaque_ports,
                node_local,
                external_name: spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName"),
                policy: ServicePolicy::from_service(svc),
            },
        ))
    }
}

impl IndexResource for Service {
    fn apply(index: &mut Index, obj: &Self) {
        let Some((key, info)) = ServiceInfo::from_service(obj) else {
            return;
        };
        if index.services.get(&key) == Some(&info) {
            return;
        }
        Self::delete(index, &key);
        for ip in &info.cluster_ips {
            index
                .cluster_ips
                .entry(*ip)
                .or_default()
                .insert(key.clone());
            index.dirty_ips.insert(*ip);
        }
        index.services.insert(key.clone(), info);
        index.dirty_services.insert(key);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        if let Some(old) = index.services.remove(key) {
            for ip in old.cluster_ips {
                if let Some(claims) = index.cluster_ips.get_mut(&ip) {
                    claims.remove(key);
                    if claims.is_empty() {
                        index.cluster_ips.remove(&ip);
                    }
                }
                index.dirty_ips.insert(ip);
            }
            index.dirty_services.insert(key.clone());
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.services.keys().cloned().collect()
    }
}
