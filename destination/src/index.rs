//! The cluster index: Services, EndpointSlices, Pods, ExternalWorkloads, Nodes, ServiceProfiles
//! and the policy resources, fed by Kubernetes watches, and the subscriptions built from them.
//!
//! One task per watched kind writes through [`IndexResource::apply`], [`IndexResource::delete`]
//! and [`IndexResource::reset`]; each write marks what it touched, and the index then rebuilds
//! only the subscriptions it touched. A subscription is a `tokio::sync::watch` channel per key
//! (Service, port and filter; profile target), so every subscriber of a key shares one snapshot,
//! encoded once, and always sees the latest state: a subscriber that does not read holds up no
//! one. Each kind's part lives in its own module.

mod endpoints;
mod external;
mod node;
mod pod;
pub mod policy;
mod profile;
mod server;
mod service;
mod slice;
mod subscription;
mod traffic_split;
mod watch;

#[cfg(test)]
mod tests;

pub(crate) use self::subscription::SubKey;
pub use self::{
    endpoints::{EndpointsSnapshot, EndpointsState},
    profile::ProfileSnapshot,
    subscription::Subscription,
    watch::spawn_watch,
};

use self::{
    external::ExternalInfo,
    pod::PodInfo,
    profile::Translated,
    server::OpaqueServer,
    service::ServiceInfo,
    slice::{SliceEndpoint, SliceInfo},
};
use crate::ports::PortSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use linkerd2_proxy_api::destination as pb;
use oxlink_crds::names::control_plane::{
    CLUSTER_DOMAIN, DEFAULT_OPAQUE_PORTS, NAMESPACE, TRUST_DOMAIN,
};
use parking_lot::RwLock;
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};
use tokio::sync::watch as channel;

/// Every endpoint has the same weight.
const WEIGHT: u32 = 10_000;

/// What the index needs to know about the control plane.
#[derive(Clone, Debug)]
pub struct Config {
    /// The control plane's namespace: pods labelled with it get TLS identities.
    pub controller_namespace: String,
    pub identity_trust_domain: String,
    pub cluster_domain: String,
    /// Opaque ports for pods and Services without an opaque-ports annotation.
    pub default_opaque_ports: PortSet,
    /// Hint `h2` for meshed endpoints on non-opaque ports.
    pub enable_h2_upgrade: bool,
    /// Default inbound policy and the networks policies name.
    pub policy: policy::PolicyConfig,
}

impl Default for Config {
    /// Linkerd's defaults: control plane `linkerd`, trust and cluster domain `cluster.local`,
    /// the chart's default opaque ports, `h2` hints on.
    fn default() -> Self {
        Self {
            controller_namespace: NAMESPACE.into(),
            identity_trust_domain: TRUST_DOMAIN.into(),
            cluster_domain: CLUSTER_DOMAIN.into(),
            default_opaque_ports: PortSet::parse(DEFAULT_OPAQUE_PORTS, |_| None),
            enable_h2_upgrade: true,
            policy: policy::PolicyConfig::default(),
        }
    }
}

/// An object's namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    pub ns: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(ns: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            ns: ns.into(),
            name: name.into(),
        }
    }

    fn of(meta: &ObjectMeta) -> Option<Self> {
        Some(Self::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone()?,
        ))
    }
}

/// Which endpoints of a Service a subscriber wants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsFilter {
    /// The Service port asked for.
    pub port: u16,
    /// Only the endpoint with this hostname (a StatefulSet pod's DNS name), if set.
    pub hostname: Option<String>,
    /// The client's node, from its context token: drives `internalTrafficPolicy: Local` and
    /// topology-hint filtering.
    pub node: Option<String>,
}

/// What a profile is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProfileTarget {
    /// A Service by name (`<svc>.<ns>.svc.<cluster-domain>:<port>`).
    Service(ObjKey, u16),
    /// One pod of a Service by its hostname (`<hostname>.<svc>.<ns>.svc.<cluster-domain>`),
    /// as StatefulSet pods are named.
    Pod {
        service: ObjKey,
        hostname: String,
        port: u16,
    },
    /// An address: a Service's cluster IP, a pod IP, or anything else.
    Addr(SocketAddr),
}

/// The key of a profile subscription under its Service or IP: the port, the pod hostname if
/// any, and the client's namespace, whose profiles take precedence over the Service
/// namespace's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProfileSubKey {
    port: u16,
    hostname: Option<String>,
    client_ns: Option<String>,
}

pub type EndpointsRx = channel::Receiver<Arc<EndpointsSnapshot>>;
pub type ProfileRx = channel::Receiver<Arc<ProfileSnapshot>>;
type EndpointsTx = channel::Sender<Arc<EndpointsSnapshot>>;
type ProfileTx = channel::Sender<Arc<ProfileSnapshot>>;

/// The index, shared by the watch tasks that write it and the subscribers that read it.
pub type SharedIndex = Arc<RwLock<Index>>;

#[derive(Debug)]
pub struct Index {
    config: Arc<Config>,
    services: HashMap<ObjKey, ServiceInfo>,
    /// The Services claiming each cluster IP: one, unless Services conflict.
    cluster_ips: HashMap<IpAddr, BTreeSet<ObjKey>>,
    slices: HashMap<ObjKey, SliceInfo>,
    service_slices: HashMap<ObjKey, BTreeSet<ObjKey>>,
    pods: HashMap<ObjKey, Arc<PodInfo>>,
    pod_ips: HashMap<IpAddr, ObjKey>,
    profiles: HashMap<ObjKey, Arc<Translated>>,
    /// Each node's zone, if labelled.
    nodes: HashMap<String, Option<String>>,
    /// Servers with `proxyProtocol: opaque`.
    opaque_servers: HashMap<ObjKey, OpaqueServer>,
    external_workloads: HashMap<ObjKey, Arc<ExternalInfo>>,
    /// TrafficSplits, by name and by the Services they name.
    splits: traffic_split::Splits,

    /// Servers, authorizations, authentications, HTTPRoutes and policy subscriptions.
    policy: policy::PolicyIndex,

    endpoint_subs: HashMap<ObjKey, HashMap<EndpointsFilter, EndpointsTx>>,
    service_profile_subs: HashMap<ObjKey, HashMap<ProfileSubKey, ProfileTx>>,
    addr_profile_subs: HashMap<IpAddr, HashMap<ProfileSubKey, ProfileTx>>,

    dirty_services: HashSet<ObjKey>,
    dirty_ips: HashSet<IpAddr>,
}

/// What a Service is, as far as endpoint discovery goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// Backed by endpoints (selected pods, or manual EndpointSlices).
    Endpoints,
    /// A DNS alias (`type: ExternalName`).
    ExternalName,
}

/// How many objects of each kind the index holds, and how many subscription keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexSizes {
    pub services: usize,
    pub endpoint_slices: usize,
    pub pods: usize,
    pub service_profiles: usize,
    pub traffic_splits: usize,
    /// TrafficSplits with a backend skipped, or ignored for want of a backend.
    pub invalid_traffic_splits: usize,
    pub endpoint_keys: usize,
    pub profile_keys: usize,
}

/// A Kubernetes kind the index keeps.
pub trait IndexResource:
    kube::Resource<DynamicType = ()>
    + serde::de::DeserializeOwned
    + Clone
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Adds or replaces one object.
    fn apply(index: &mut Index, obj: &Self);
    /// Removes one object.
    fn delete(index: &mut Index, key: &ObjKey);
    /// The keys of every object of this kind in the index.
    fn keys(index: &Index) -> Vec<ObjKey>;

    /// Replaces every object of this kind with `objs` (after a watch (re)lists).
    fn reset(index: &mut Index, objs: &[Self]) {
        let keep: HashSet<ObjKey> = objs.iter().filter_map(|o| ObjKey::of(o.meta())).collect();
        for key in Self::keys(index) {
            if !keep.contains(&key) {
                Self::delete(index, &key);
            }
        }
        for obj in objs {
            Self::apply(index, obj);
        }
    }
}

// === impl Index ===

impl Index {
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
            services: HashMap::new(),
            cluster_ips: HashMap::new(),
            slices: HashMap::new(),
            service_slices: HashMap::new(),
            pods: HashMap::new(),
            pod_ips: HashMap::new(),
            profiles: HashMap::new(),
            nodes: HashMap::new(),
            opaque_servers: HashMap::new(),
            external_workloads: HashMap::new(),
            splits: traffic_split::Splits::default(),

            policy: policy::PolicyIndex::default(),
            endpoint_subs: HashMap::new(),
            service_profile_subs: HashMap::new(),
            addr_profile_subs: HashMap::new(),
            dirty_services: HashSet::new(),
            dirty_ips: HashSet::new(),
        }
    }

    pub fn shared(config: Config) -> SharedIndex {
        Arc::new(RwLock::new(Self::new(config)))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Applies an object and publishes what changed.
    pub fn apply<K: IndexResource>(&mut self, obj: &K) {
        K::apply(self, obj);
        self.flush();
    }

    /// Deletes an object and publishes what changed.
    pub fn delete<K: IndexResource>(&mut self, ns: &str, name: &str) {
        K::delete(self, &ObjKey::new(ns, name));
        self.flush();
    }

    /// Replaces every object of a kind and publishes what changed.
    pub fn reset<K: IndexResource>(&mut self, objs: &[K]) {
        K::reset(self, objs);
        self.flush();
    }

    pub fn sizes(&self) -> IndexSizes {
        IndexSizes {
            services: self.services.len(),
            endpoint_slices: self.slices.len(),
            pods: self.pods.len(),
            service_profiles: self.profiles.len(),
            traffic_splits: self.splits.len(),
            invalid_traffic_splits: self.splits.invalid(),
            endpoint_keys: self.endpoint_subs.values().map(HashMap::len).sum(),
            profile_keys: self
                .service_profile_subs
                .values()
                .chain(self.addr_profile_subs.values())
                .map(HashMap::len)
                .sum(),
        }
    }

    /// Whether the Service exists, and whether it has endpoints to discover (an ExternalName
    /// Service has none).
    pub fn service_kind(&self, svc: &ObjKey) -> Option<ServiceKind> {
        Some(match self.services.get(svc)? {
            s if s.external_name => ServiceKind::ExternalName,
            _ => ServiceKind::Endpoints,
        })
    }

    // === subscriptions ===

    /// A receiver of the endpoints of `svc` on `filter.port`. Every subscriber of the same key
    /// shares one channel.
    pub fn watch_endpoints(&mut self, svc: &ObjKey, filter: &EndpointsFilter) -> EndpointsRx {
        if let Some(tx) = self.endpoint_subs.get(svc).and_then(|s| s.get(filter)) {
            return tx.subscribe();
        }
        let state = self
            .endpoints_states(svc, std::slice::from_ref(filter))
            .pop()
            .unwrap_or(EndpointsState::Missing);
        // A key of a Service that already has keys (another node's, mostly) usually holds
        // the same endpoints as one of them: it then shares that one's state and encoding.
        let same = self.endpoint_subs.get(svc).and_then(|subs| {
            subs.values()
                .map(|tx| tx.borrow().clone())
                .find(|snap| snap.state == state)
        });
        let first = match same {
            Some(snap) => EndpointsSnapshot::first_like(&snap),
            None => EndpointsSnapshot::first(state),
        };
        let (tx, rx) = channel::channel(Arc::new(first));
        self.endpoint_subs
            .entry(svc.clone())
            .or_default()
            .insert(filter.clone(), tx);
        rx
    }

    /// The existing channel for a key, if any: lets a read lock serve most subscriptions.
    pub fn existing_endpoints(
        &self,
        svc: &ObjKey,
        filter: &EndpointsFilter,
    ) -> Option<EndpointsRx> {
        Some(self.endpoint_subs.get(svc)?.get(filter)?.subscribe())
    }

    /// A receiver of the profile for `target`, as a client in `client_ns` sees it.
    pub fn watch_profile(&mut self, target: &ProfileTarget, client_ns: Option<&str>) -> ProfileRx {
        if let Some(rx) = self.existing_profile(target, client_ns) {
            return rx;
        }
        let profile = Arc::new(ProfileSnapshot::new(self.profile(target, client_ns)));
        let (tx, rx) = channel::channel(profile);
        let sub = ProfileSubKey::new(target, client_ns);
        let subs = match target {
            ProfileTarget::Service(svc, _) | ProfileTarget::Pod { service: svc, .. } => {
                self.service_profile_subs.entry(svc.clone()).or_default()
            }
            ProfileTarget::Addr(addr) => self.addr_profile_subs.entry(addr.ip()).or_default(),
        };
        subs.insert(sub, tx);
        rx
    }

    pub fn existing_profile(
        &self,
        target: &ProfileTarget,
        client_ns: Option<&str>,
    ) -> Option<ProfileRx> {
        let subs = match target {
            ProfileTarget::Service(svc, _) | ProfileTarget::Pod { service: svc, .. } => {
                self.service_profile_subs.get(svc)?
            }
            ProfileTarget::Addr(addr) => self.addr_profile_subs.get(&addr.ip())?,
        };
        Some(
            subs.get(&ProfileSubKey::new(target, client_ns))?
                .subscribe(),
        )
    }

    // === publishing ===

    /// Rebuilds the subscriptions that the writes since the last flush touched, and drops the
    /// ones nobody holds any more.
    fn flush(&mut self) {
        self.refresh_splits();
        for svc in &self.dirty_services {
            self.policy.mark_service(svc);
        }
        for svc in std::mem::take(&mut self.dirty_services) {
            self.publish_endpoints(&svc);
            self.publish_service_profiles(&svc);
            if let Some(info) = self.services.get(&svc) {
                self.dirty_ips.extend(info.cluster_ips.iter().copied());
            }
        }
        for ip in std::mem::take(&mut self.dirty_ips) {
            self.publish_addr_profiles(ip);
        }
        self.flush_policy();
    }

    /// How many policy objects and policy subscription keys the index holds.
    pub fn policy_sizes(&self) -> policy::PolicySizes {
        self.policy.sizes()
    }

    fn publish_endpoints(&mut self, svc: &ObjKey) {
        let Some(subs) = self.endpoint_subs.get_mut(svc) else {
            return;
        };
        subs.retain(|_, tx| !tx.is_closed());
        let filters: Vec<EndpointsFilter> = subs.keys().cloned().collect();
        let states = self.endpoints_states(svc, &filters);
        let Some(subs) = self.endpoint_subs.get_mut(svc) else {
            return;
        };
        let mut encoded = endpoints::Encoded::default();
        for (filter, state) in filters.iter().zip(states) {
            if let Some(tx) = subs.get(filter) {
                tx.send_if_modified(|snap| match snap.next(state, &mut encoded) {
                    Some(next) => {
                        *snap = Arc::new(next);
                        true
                    }
                    None => false,
                });
            }
        }
        if subs.is_empty() {
            self.endpoint_subs.remove(svc);
        }
    }

    fn publish_service_profiles(&mut self, svc: &ObjKey) {
        let Some(subs) = self.service_profile_subs.get_mut(svc) else {
            return;
        };
        subs.retain(|_, tx| !tx.is_closed());
        let keys: Vec<ProfileSubKey> = subs.keys().cloned().collect();
        let profiles: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let target = match &key.hostname {
                    None => ProfileTarget::Service(svc.clone(), key.port),
                    Some(hostname) => ProfileTarget::Pod {
                        service: svc.clone(),
                        hostname: hostname.clone(),
                        port: key.port,
                    },
                };
                let profile = self.profile(&target, key.client_ns.as_deref());
                (key, profile)
            })
            .collect();
        if let Some(subs) = self.service_profile_subs.get_mut(svc) {
            publish_profiles(subs, profiles);
            if subs.is_empty() {
                self.service_profile_subs.remove(svc);
            }
        }
    }

    fn publish_addr_profiles(&mut self, ip: IpAddr) {
        let Some(subs) = self.addr_profile_subs.get_mut(&ip) else {
            return;
        };
        subs.retain(|_, tx| !tx.is_closed());
        let keys: Vec<ProfileSubKey> = subs.keys().cloned().collect();
        let profiles: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let target = ProfileTarget::Addr(SocketAddr::new(ip, key.port));
                let profile = self.profile(&target, key.client_ns.as_deref());
                (key, profile)
            })
            .collect();
        if let Some(subs) = self.addr_profile_subs.get_mut(&ip) {
            publish_profiles(subs, profiles);
            if subs.is_empty() {
                self.addr_profile_subs.remove(&ip);
            }
        }
    }
}

fn publish_profiles(
    subs: &mut HashMap<ProfileSubKey, ProfileTx>,
    profiles: Vec<(ProfileSubKey, pb::DestinationProfile)>,
) {
    for (key, profile) in profiles {
        if let Some(tx) = subs.get(&key) {
            tx.send_if_modified(|current| {
                if current.message == profile {
                    return false;
                }
                *current = Arc::new(ProfileSnapshot::new(profile));
                true
            });
        }
    }
}

impl ProfileSubKey {
    fn new(target: &ProfileTarget, client_ns: Option<&str>) -> Self {
        let (port, hostname) = match target {
            ProfileTarget::Service(_, port) => (*port, None),
            ProfileTarget::Pod { hostname, port, .. } => (*port, Some(hostname.clone())),
            ProfileTarget::Addr(addr) => (addr.port(), None),
        };
        Self {
            port,
            hostname,
            client_ns: client_ns.map(str::to_string),
        }
    }
}
