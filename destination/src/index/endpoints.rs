//! Endpoint snapshots for one (Service, port, filter), how they are built, and the add/remove
//! updates between them.

use super::{
    EndpointsFilter, ExternalInfo, Index, ObjKey, PodInfo, ServiceInfo, SliceEndpoint, WEIGHT,
};
use linkerd2_proxy_api::{destination as pb, net::TcpAddress};
use prost::bytes::Bytes;
use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

/// The endpoints of one Service port as a subscriber should see them, with the updates that
/// lead there built and encoded once for every subscriber.
#[derive(Debug)]
pub struct EndpointsSnapshot {
    /// Increases by one with every published change.
    pub version: u64,
    pub state: EndpointsState,
    /// The framed updates from version `version - 1` to this one.
    pub delta: Arc<[Bytes]>,
    /// The framed updates a new subscriber starts with, built on first use.
    initial: OnceLock<Arc<[Bytes]>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EndpointsState {
    /// The Service does not exist.
    Missing,
    Present {
        /// Set-level metric labels (`service`, `namespace`).
        labels: Arc<HashMap<String, String>>,
        addrs: Arc<BTreeMap<SocketAddr, Arc<pb::WeightedAddr>>>,
    },
}

impl EndpointsSnapshot {
    pub(crate) fn first(state: EndpointsState) -> Self {
        Self {
            version: 0,
            state,
            delta: Arc::new([]),
            initial: OnceLock::new(),
        }
    }

    /// The snapshot that follows `self` with `state`, or `None` when nothing changed.
    pub(crate) fn next(&self, state: EndpointsState) -> Option<Self> {
        if self.state == state {
            return None;
        }
        Some(Self {
            version: self.version + 1,
            delta: encode(updates_between(Some(&self.state), &state)),
            state,
            initial: OnceLock::new(),
        })
    }

    /// The encoded updates a subscriber that last saw `prev` (or nothing) must receive to
    /// hold this snapshot. Shared unless the subscriber skipped versions.
    pub fn updates_since(&self, prev: Option<&Self>) -> Arc<[Bytes]> {
        match prev {
            None => self
                .initial
                .get_or_init(|| encode(updates_between(None, &self.state)))
                .clone(),
            Some(prev) if prev.version + 1 == self.version => self.delta.clone(),
            Some(prev) if prev.version == self.version => Arc::new([]),
            Some(prev) => encode(updates_between(Some(&prev.state), &self.state)),
        }
    }
}

/// Each update encoded behind its gRPC header, as streams send it.
fn encode(updates: Vec<pb::Update>) -> Arc<[Bytes]> {
    updates.iter().map(crate::frame::framed).collect()
}

/// The updates that take a subscriber from `prev` to `next`: changed and new addresses as one
/// `add`, vanished ones as one `remove`, and `no_endpoints` when the Service goes away. A first
/// message is always sent, an `add` (perhaps empty) for an existing Service, so `no_endpoints`
/// never comes before an `add`.
pub(crate) fn updates_between(
    prev: Option<&EndpointsState>,
    next: &EndpointsState,
) -> Vec<pb::Update> {
    use pb::update::Update;
    let add = |labels: &HashMap<String, String>, addrs: Vec<pb::WeightedAddr>| pb::Update {
        update: Some(Update::Add(pb::WeightedAddrSet {
            addrs,
            metric_labels: labels.clone(),
        })),
    };
    match (prev, next) {
        (Some(EndpointsState::Missing), EndpointsState::Missing) => Vec::new(),
        (_, EndpointsState::Missing) => vec![pb::Update {
            update: Some(Update::NoEndpoints(pb::NoEndpoints { exists: false })),
        }],
        (None | Some(EndpointsState::Missing), EndpointsState::Present { labels, addrs }) => {
            vec![add(labels, addrs.values().map(|a| (**a).clone()).collect())]
        }
        (
            Some(EndpointsState::Present {
                labels: old_labels,
                addrs: old,
            }),
            EndpointsState::Present { labels, addrs },
        ) => {
            let mut updates = Vec::new();
            let added: Vec<pb::WeightedAddr> = addrs
                .iter()
                .filter(|&(sa, addr)| old_labels != labels || old.get(sa) != Some(addr))
                .map(|(_, addr)| (**addr).clone())
                .collect();
            if !added.is_empty() {
                updates.push(add(labels, added));
            }
            let removed: Vec<TcpAddress> = old
                .keys()
                .filter(|sa| !addrs.contains_key(sa))
                .map(|sa| TcpAddress::from(*sa))
                .collect();
            if !removed.is_empty() {
                updates.push(pb::Update {
                    update: Some(Update::Remove(pb::AddrSet { addrs: removed })),
                });
            }
            updates
        }
    }
}

// === building endpoint snapshots ===

/// What backs an endpoint.
#[derive(Clone, Copy, Debug)]
pub(super) enum Workload<'a> {
    Pod(&'a PodInfo),
    External(&'a ExternalInfo),
    /// Neither a pod nor an ExternalWorkload the index knows (a manual EndpointSlice).
    Unknown,
}

impl Index {
    /// The state of one subscription key. `built` holds the endpoints built so far for the
    /// same Service, so that keys that differ only by filter share them.
    pub(super) fn endpoints_state(
        &self,
        svc: &ObjKey,
        filter: &EndpointsFilter,
        built: &mut HashMap<SocketAddr, Arc<pb::WeightedAddr>>,
    ) -> EndpointsState {
        let Some(service) = self.services.get(svc) else {
            return EndpointsState::Missing;
        };
        // The slices name their ports after the Service's; a port the Service does not
        // declare is used as the endpoints' port directly.
        let port_name = service
            .ports
            .iter()
            .find(|p| p.port == filter.port)
            .map(|p| p.name.as_str());
        let mut candidates: Vec<(SocketAddr, &SliceEndpoint, Workload<'_>)> = Vec::new();
        for slice in self.service_slices.get(svc).into_iter().flatten() {
            let Some(slice) = self.slices.get(slice) else {
                continue;
            };
            let target_port = match port_name {
                None => filter.port,
                Some(name) => match slice.ports.iter().find(|p| p.name == name) {
                    Some(p) => p.port,
                    None if slice.ports.is_empty() => filter.port,
                    None => continue,
                },
            };
            for endpoint in &slice.endpoints {
                if filter.hostname.is_some() && endpoint.hostname != filter.hostname {
                    continue;
                }
                // An endpoint whose pod (or ExternalWorkload) the index has not seen (yet, or
                // any more) is left out rather than sent without its identity; its arrival
                // adds it.
                let workload = match (&endpoint.pod, &endpoint.external_workload) {
                    (Some(name), _) => match self.pods.get(&ObjKey::new(&svc.ns, name)) {
                        Some(pod) => Workload::Pod(pod),
                        None => continue,
                    },
                    (None, Some(name)) => {
                        match self.external_workloads.get(&ObjKey::new(&svc.ns, name)) {
                            Some(external) => Workload::External(external),
                            None => continue,
                        }
                    }
                    (None, None) => Workload::Unknown,
                };
                for ip in &endpoint.addresses {
                    let addr = SocketAddr::new(*ip, target_port);
                    candidates.push((addr, endpoint, workload));
                }
            }
        }
        if let Some(node) = filter.node.as_deref() {
            self.filter_topology(service, node, &mut candidates);
        }
        let mut addrs = BTreeMap::new();
        for (addr, endpoint, workload) in candidates {
            let wa = built.entry(addr).or_insert_with(|| {
                let mut wa = match workload {
                    Workload::Pod(pod) => self.weighted_addr(addr, Some(pod)),
                    Workload::External(external) => self.external_weighted_addr(addr, external),
                    Workload::Unknown => self.weighted_addr(addr, None),
                };
                wa.metric_labels
                    .insert("zone".into(), endpoint.zone.clone().unwrap_or_default());
                Arc::new(wa)
            });
            addrs.insert(addr, wa.clone());
        }
        let labels = HashMap::from([
            ("service".to_string(), svc.name.clone()),
            ("namespace".to_string(), svc.ns.clone()),
        ]);
        EndpointsState::Present {
            labels: Arc::new(labels),
            addrs: Arc::new(addrs),
        }
    }

    /// Keeps what a client on `node` should use: only its node's endpoints for
    /// `internalTrafficPolicy: Local`; otherwise, when every endpoint carries topology hints,
    /// the ones hinted for the node's zone (all of them if none is).
    pub(super) fn filter_topology(
        &self,
        service: &ServiceInfo,
        node: &str,
        candidates: &mut Vec<(SocketAddr, &SliceEndpoint, Workload<'_>)>,
    ) {
        if service.node_local {
            candidates.retain(|(_, e, _)| e.node.as_deref() == Some(node));
            return;
        }
        let hinted =
            !candidates.is_empty() && candidates.iter().all(|(_, e, _)| !e.for_zones.is_empty());
        let Some(Some(zone)) = self.nodes.get(node).filter(|_| hinted) else {
            return;
        };
        if candidates
            .iter()
            .any(|(_, e, _)| e.for_zones.contains(zone))
        {
            candidates.retain(|(_, e, _)| e.for_zones.contains(zone));
        }
    }

    /// An endpoint as the proxy sees it: for a meshed pod, its identity and protocol hint.
    pub(super) fn weighted_addr(
        &self,
        addr: SocketAddr,
        pod: Option<&PodInfo>,
    ) -> pb::WeightedAddr {
        use pb::tls_identity::{DnsLikeIdentity, Strategy};
        let mut wa = pb::WeightedAddr {
            addr: Some(TcpAddress::from(addr)),
            weight: WEIGHT,
            ..Default::default()
        };
        let Some(pod) = pod else {
            return wa;
        };
        wa.metric_labels = (*pod.metric_labels).clone();
        let port = addr.port();
        if pod.skip_inbound_ports.contains(port) {
            return wa;
        }
        if let Some(identity) = &pod.identity {
            let name = DnsLikeIdentity {
                name: identity.clone(),
            };
            wa.tls_identity = Some(pb::TlsIdentity {
                server_name: Some(name.clone()),
                strategy: Some(Strategy::DnsLikeIdentity(name)),
            });
        }
        if pod.meshed {
            wa.protocol_hint = self.protocol_hint(self.is_opaque(pod, port), pod.inbound_port);
        }
        wa
    }

    /// A meshed endpoint's hint: opaque (through the proxy's inbound port) on an opaque port,
    /// else `h2` when upgrades are on.
    pub(super) fn protocol_hint(
        &self,
        opaque: bool,
        inbound_port: u16,
    ) -> Option<pb::ProtocolHint> {
        use pb::protocol_hint::{H2, Opaque, OpaqueTransport, Protocol};
        if opaque {
            Some(pb::ProtocolHint {
                protocol: Some(Protocol::Opaque(Opaque {})),
                opaque_transport: Some(OpaqueTransport {
                    inbound_port: inbound_port.into(),
                }),
            })
        } else if self.config.enable_h2_upgrade {
            Some(pb::ProtocolHint {
                protocol: Some(Protocol::H2(H2 {})),
                opaque_transport: None,
            })
        } else {
            None
        }
    }
}
