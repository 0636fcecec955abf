//! EndpointSlices: their ports and ready endpoints.

use super::{Index, IndexResource, ObjKey};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use oxlink_crds::names::labels::SLICE_SERVICE_NAME;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceInfo {
    /// The Service the slice belongs to.
    pub(crate) service: ObjKey,
    pub(crate) ports: Vec<SlicePort>,
    pub(crate) endpoints: Vec<SliceEndpoint>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SlicePort {
    /// The Service port's name, `""` when unnamed.
    pub(crate) name: String,
    /// The resolved target port on the endpoints.
    pub(crate) port: u16,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceEndpoint {
    pub(crate) addresses: Vec<IpAddr>,
    /// The backing pod's name, for endpoints that reference a pod in the slice's namespace.
    pub(crate) pod: Option<String>,
    /// The backing ExternalWorkload's name, likewise.
    pub(crate) external_workload: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) zone: Option<String>,
    pub(crate) node: Option<String>,
    /// Topology hints: the zones that should use this endpoint (empty without hints).
    pub(crate) for_zones: Vec<String>,
}

impl SliceInfo {
    /// The slice's own key and what the index keeps of it; `None` for slices that belong to
    /// no Service or are not IP slices.
    pub(crate) fn from_slice(slice: &EndpointSlice) -> Option<(ObjKey, Self)> {
        let key = ObjKey::of(&slice.metadata)?;
        let service = slice.metadata.labels.as_ref()?.get(SLICE_SERVICE_NAME)?;
        if slice.address_type == "FQDN" {
            return None;
        }
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .filter_map(|p| {
                Some(SlicePort {
                    name: p.name.clone().unwrap_or_default(),
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            // An unset `ready` means ready; terminating endpoints are never ready.
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .map(|e| SliceEndpoint {
                addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                pod: target(e, "Pod", &key.ns),
                external_workload: target(e, "ExternalWorkload", &key.ns),
                hostname: e.hostname.clone(),
                zone: e.zone.clone(),
                node: e.node_name.clone(),
                for_zones: e
                    .hints
                    .iter()
                    .flat_map(|h| h.for_zones.iter().flatten())
                    .map(|z| z.name.clone())
                    .collect(),
            })
            .collect();
        let service = ObjKey::new(&key.ns, service);
        Some((
            key,
            Self {
                service,
                ports,
                endpoints,
            },
        ))
    }
}

impl IndexResource for EndpointSlice {
    fn apply(index: &mut Index, obj: &Self) {
        let Some((key, info)) = SliceInfo::from_slice(obj) else {
            // A slice that lost its Service label is gone as far as the index is concerned.
            if let Some(key) = ObjKey::of(&obj.metadata) {
                Self::delete(index, &key);
            }
            return;
        };
        if index.slices.get(&key) == Some(&info) {
            return;
        }
        Self::delete(index, &key);
        index
            .service_slices
            .entry(info.service.clone())
            .or_default()
            .insert(key.clone());
        index.dirty_services.insert(info.service.clone());
        index.slices.insert(key, info);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        if let Some(old) = index.slices.remove(key) {
            if let Some(slices) = index.service_slices.get_mut(&old.service) {
                slices.remove(key);
                if slices.is_empty() {
                    index.service_slices.remove(&old.service);
                }
            }
            index.dirty_services.insert(old.service);
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.slices.keys().cloned().collect()
    }
}

/// The name of the `kind` object in namespace `ns` that `endpoint` references, if any.
fn target(endpoint: &Endpoint, kind: &str, ns: &str) -> Option<String> {
    endpoint
        .target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref() == Some(kind))
        .filter(|r| r.namespace.as_ref().is_none_or(|n| n == ns))
        .and_then(|r| r.name.clone())
}
