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
    /// The framed updates a new subscriber starts with, built on first use; shared by the
    /// snapshots of every key that holds the same state.
    initial: Initial,
}

#[derive(Clone, Debug)]
pub enum EndpointsState {
    /// The Service does not exist.
    Missing,
    Present {
        /// Set-level metric labels (`service`, `namespace`).
        labels: Arc<HashMap<String, String>>,
        addrs: Arc<BTreeMap<SocketAddr, Arc<pb::WeightedAddr>>>,
    },
}

/// Two states are equal when they hold equal endpoints; states built for keys that see the
/// same endpoints share their maps, which makes most comparisons a pointer comparison.
impl PartialEq for EndpointsState {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Missing, Self::Missing) => true,
            (
                Self::Present { labels, addrs },
                Self::Present {
                    labels: other_labels,
                    addrs: other_addrs,
                },
            ) => {
                (Arc::ptr_eq(labels, other_labels) || labels == other_labels)
                    && (Arc::ptr_eq(addrs, other_addrs)
                        || (addrs.len() == other_addrs.len()
                            && addrs.iter().zip(other_addrs.iter()).all(
                                |((sa, addr), (other_sa, other_addr))| {
                                    sa == other_sa && same_addr(addr, other_addr)
                                },
                            )))
            }
            _ => false,
        }
    }
}

fn same_addr(a: &Arc<pb::WeightedAddr>, b: &Arc<pb::WeightedAddr>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

impl EndpointsState {
    /// Whether both are the very same state (shared maps), without comparing contents.
    fn shared_with(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Missing, Self::Missing) => true,
            (
                Self::Present { labels, addrs },
                Self::Present {
                    labels: other_labels,
                    addrs: other_addrs,
                },
            ) => Arc::ptr_eq(labels, other_labels) && Arc::ptr_eq(addrs, other_addrs),
            _ => false,
        }
    }
}

/// What one publish has encoded already, for the keys of a Service that share their states
/// (every node of a zone, or every node when the Service has no topology): the updates
/// between two states are encoded once, and a state's initial updates are built once.
#[derive(Default)]
pub(crate) struct Encoded {
    deltas: Vec<(EndpointsState, EndpointsState, Arc<[Bytes]>)>,
    initials: Vec<(EndpointsState, Initial)>,
}

/// A state's initial updates, built on first use and shared by the snapshots holding it.
type Initial = Arc<OnceLock<Arc<[Bytes]>>>;

impl Encoded {
    fn delta(&mut self, prev: &EndpointsState, next: &EndpointsState) -> Arc<[Bytes]> {
        if let Some((_, _, delta)) = self
            .deltas
            .iter()
            .find(|(p, n, _)| p.shared_with(prev) && n.shared_with(next))
        {
            return delta.clone();
        }
        let delta = encode(updates_between(Some(prev), next));
        self.deltas
            .push((prev.clone(), next.clone(), delta.clone()));
        delta
    }

    fn initial(&mut self, state: &EndpointsState) -> Initial {
        if let Some((_, initial)) = self.initials.iter().find(|(s, _)| s.shared_with(state)) {
            return initial.clone();
        }
        let initial = Arc::new(OnceLock::new());
        self.initials.push((state.clone(), initial.clone()));
        initial
    }
}

impl EndpointsSnapshot {
    pub(crate) fn first(state: EndpointsState) -> Self {
        Self {
            version: 0,
            state,
            delta: Arc::new([]),
            initial: Arc::new(OnceLock::new()),
        }
    }

    /// The first snapshot of a new key whose state equals `other`'s: it shares `other`'s
    /// state and initial updates.
    pub(crate) fn first_like(other: &Self) -> Self {
        Self {
            version: 0,
            state: other.state.clone(),
            delta: Arc::new([]),
            initial: other.initial.clone(),
        }
    }

    /// The snapshot that follows `self` with `state`, or `None` when nothing changed; what
    /// it encodes is shared through `encoded` with the other keys of the same publish.
    pub(crate) fn next(&self, state: EndpointsState, encoded: &mut Encoded) -> Option<Self> {
        if self.state == state {
            return None;
        }
        Some(Self {
            version: self.version + 1,
            delta: encoded.delta(&self.state, &state),
            initial: encoded.initial(&state),
            state,
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
                .filter(|&(sa, addr)| {
                    old_labels != labels || !old.get(sa).is_some_and(|old| same_addr(old, addr))
                })
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

/// An endpoint address a key may hold: its slice entry and what backs it.
type Candidate<'a> = (SocketAddr, &'a SliceEndpoint, Workload<'a>);

/// Which of a Service's endpoints a client on some node uses: all of them, those on its node
/// (`internalTrafficPolicy: Local`), or those hinted for its zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Topology<'a> {
    All,
    Node(&'a str),
    Zone(&'a str),
}

impl Index {
    /// The state of each of `filters` (keys of Service `svc`). Keys that see the same
    /// endpoints (they differ only by node, and the nodes share a zone or the Service has no
    /// topology) get one state, built once and shared.
    pub(super) fn endpoints_states(
        &self,
        svc: &ObjKey,
        filters: &[EndpointsFilter],
    ) -> Vec<EndpointsState> {
        let Some(service) = self.services.get(svc) else {
            return vec![EndpointsState::Missing; filters.len()];
        };
        let mut built = HashMap::new();
        let labels = Arc::new(HashMap::from([
            ("service".to_string(), svc.name.clone()),
            ("namespace".to_string(), svc.ns.clone()),
        ]));
        let mut candidates: HashMap<(u16, Option<&str>), Vec<Candidate<'_>>> = HashMap::new();
        let mut states: HashMap<(u16, Option<&str>, Topology<'_>), EndpointsState> = HashMap::new();
        filters
            .iter()
            .map(|filter| {
                let hostname = filter.hostname.as_deref();
                let candidates = candidates
                    .entry((filter.port, hostname))
                    .or_insert_with(|| self.candidates(svc, service, filter.port, hostname));
                let topology = self.topology(service, filter.node.as_deref(), candidates);
                states
                    .entry((filter.port, hostname, topology))
                    .or_insert_with(|| {
                        let addrs = self.addrs(candidates, topology, &mut built);
                        EndpointsState::Present {
                            labels: labels.clone(),
                            addrs: Arc::new(addrs),
                        }
                    })
                    .clone()
            })
            .collect()
    }

    /// Every ready address of `svc` on Service port `port` (of the pod named `hostname`, if
    /// set), with what backs it.
    fn candidates<'a>(
        &'a self,
        svc: &ObjKey,
        service: &ServiceInfo,
        port: u16,
        hostname: Option<&str>,
    ) -> Vec<Candidate<'a>> {
        // The slices name their ports after the Service's; a port the Service does not
        // declare is used as the endpoints' port directly.
        let port_name = service
            .ports
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.name.as_str());
        let mut candidates = Vec::new();
        for slice in self.service_slices.get(svc).into_iter().flatten() {
            let Some(slice) = self.slices.get(slice) else {
                continue;
            };
            let target_port = match port_name {
                None => port,
                Some(name) => match slice.ports.iter().find(|p| p.name == name) {
                    Some(p) => p.port,
                    None if slice.ports.is_empty() => port,
                    None => continue,
                },
            };
            for endpoint in &slice.endpoints {
                if hostname.is_some() && endpoint.hostname.as_deref() != hostname {
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
                    candidates.push((SocketAddr::new(*ip, target_port), endpoint, workload));
                }
            }
        }
        candidates
    }

    /// What a client on `node` should use: only its node's endpoints for
    /// `internalTrafficPolicy: Local`; otherwise, when every endpoint carries topology hints,
    /// the ones hinted for the node's zone (all of them if none is).
    fn topology<'a>(
        &'a self,
        service: &ServiceInfo,
        node: Option<&'a str>,
        candidates: &[Candidate<'_>],
    ) -> Topology<'a> {
        let Some(node) = node else {
            return Topology::All;
        };
        if service.node_local {
            return Topology::Node(node);
        }
        let hinted =
            !candidates.is_empty() && candidates.iter().all(|(_, e, _)| !e.for_zones.is_empty());
        match self.nodes.get(node).filter(|_| hinted) {
            Some(Some(zone))
                if candidates
                    .iter()
                    .any(|(_, e, _)| e.for_zones.contains(zone)) =>
            {
                Topology::Zone(zone)
            }
            _ => Topology::All,
        }
    }

    /// The addresses of `candidates` a client with `topology` uses. `built` holds the
    /// endpoints built so far for the same Service, so that keys share them.
    fn addrs(
        &self,
        candidates: &[Candidate<'_>],
        topology: Topology<'_>,
        built: &mut HashMap<SocketAddr, Arc<pb::WeightedAddr>>,
    ) -> BTreeMap<SocketAddr, Arc<pb::WeightedAddr>> {
        let mut addrs = BTreeMap::new();
        for &(addr, endpoint, workload) in candidates {
            let keep = match topology {
                Topology::All => true,
                Topology::Node(node) => endpoint.node.as_deref() == Some(node),
                Topology::Zone(zone) => endpoint.for_zones.iter().any(|z| z == zone),
            };
            if !keep {
                continue;
            }
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
        addrs
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
