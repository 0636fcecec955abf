//! Policy: Servers, ServerAuthorizations, AuthorizationPolicies, MeshTLS and Network
//! authentications, HTTPRoutes (and the Gateway API's HTTPRoutes and GRPCRoutes),
//! HTTPLocalRateLimitPolicies and EgressNetworks, and the inbound and outbound policies built
//! from them.
//!
//! Inbound subscriptions are keyed by workload (pod or ExternalWorkload) and port, outbound ones
//! by Service and port (or, for addresses that are no Service's, by address and client
//! namespace). Like the rest of the index, each key has one `watch` channel holding the latest
//! policy, encoded once and shared by every subscriber. A write marks what it can affect (a
//! namespace's workloads, a pod, an ExternalWorkload, a namespace's Services, every Service for
//! an HTTPRoute) and the next flush rebuilds only those keys, sending only when the policy
//! actually changed.

mod authz;
mod defaults;
mod egress;
mod external;
mod gateway;
mod grpc_route;
mod inbound;
mod outbound;
mod parent;
mod pod;
mod ratelimit;
mod resources;
mod retry;
pub(super) mod routes;
mod timeouts;

#[cfg(test)]
mod tests;

pub use self::defaults::{
    Cidr, DefaultPolicy, Networks, ParseCidrError, ParsePolicyError, PolicyConfig,
};
pub use self::gateway::spawn_gateway_watch;
pub use self::inbound::Workload;
pub(crate) use self::{outbound::ServicePolicy, pod::PodPolicy};

use super::{Index, ObjKey};
use linkerd2_proxy_api::{inbound as inpb, outbound as outpb};
use oxlink_crds::policy::{
    AuthorizationPolicySpec, MeshTlsAuthenticationSpec, NetworkAuthenticationSpec,
    ServerAuthorizationSpec, ServerSpec, httproute::HttpRouteSpec,
};
use prost::{Message, bytes::Bytes};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::Hash,
    net::SocketAddr,
    sync::Arc,
};
use tokio::sync::watch as channel;

/// A policy message and its encoding behind the gRPC header, built once and shared by every
/// subscriber.
#[derive(Debug)]
pub struct PolicySnapshot<M> {
    pub message: M,
    pub framed: Bytes,
}

impl<M: Message> PolicySnapshot<M> {
    fn new(message: M) -> Self {
        let framed = crate::frame::framed(&message);
        Self { message, framed }
    }
}

pub type InboundRx = channel::Receiver<Arc<PolicySnapshot<inpb::Server>>>;
pub type OutboundRx = channel::Receiver<Arc<PolicySnapshot<outpb::OutboundPolicy>>>;
type Tx<M> = channel::Sender<Arc<PolicySnapshot<M>>>;

/// The key of a policy subscription channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PolicyKey {
    Inbound(Workload, u16),
    Outbound(ObjKey, u16),
    Egress(egress::EgressKey),
}

/// What an outbound policy is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OutboundTarget {
    /// An address: a Service's cluster IP, or else one the global egress namespace's
    /// EgressNetworks or the fallback policy apply to.
    Addr(SocketAddr),
    /// An address, as a client in `source_ns` asks for it: a Service's cluster IP, or else
    /// the EgressNetworks of the client's namespace apply to it.
    AddrFrom { addr: SocketAddr, source_ns: String },
    /// A Service by name and port.
    Service(ObjKey, u16),
}

/// Why a policy lookup failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("pod {}/{} not found", .0.ns, .0.name)]
    PodNotFound(ObjKey),
    #[error("external workload {}/{} not found", .0.ns, .0.name)]
    ExternalWorkloadNotFound(ObjKey),
    #[error("no such service: {}/{}", .0.ns, .0.name)]
    ServiceNotFound(ObjKey),
    #[error("no service has the cluster IP of {0}")]
    NoService(SocketAddr),
}

/// A Server as policy needs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServerInfo {
    pub(crate) spec: ServerSpec,
    /// When the Server was created, in seconds: of Servers that overlap, the oldest applies.
    pub(crate) created: Option<i64>,
    /// The Server's own labels, which ServerAuthorization selectors match.
    pub(crate) labels: BTreeMap<String, String>,
}

/// An HTTPRoute and when it was created (routes are ordered by age, then name).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RouteInfo {
    pub(crate) spec: HttpRouteSpec,
    pub(crate) created: Option<i64>,
    /// The route's own `retry.linkerd.io/*` annotations, which replace its Service's.
    pub(crate) retries: retry::Retries,
    /// The route's own `timeout.linkerd.io/*` annotations, which replace its Service's.
    pub(crate) timeouts: timeouts::Timeouts,
}

/// The policy part of the index.
#[derive(Debug, Default)]
pub(crate) struct PolicyIndex {
    pub(crate) servers: HashMap<ObjKey, ServerInfo>,
    pub(crate) server_authzs: HashMap<ObjKey, ServerAuthorizationSpec>,
    pub(crate) authz_policies: HashMap<ObjKey, AuthorizationPolicySpec>,
    pub(crate) mtls_authns: HashMap<ObjKey, MeshTlsAuthenticationSpec>,
    pub(crate) net_authns: HashMap<ObjKey, NetworkAuthenticationSpec>,
    pub(crate) routes: HashMap<ObjKey, RouteInfo>,
    pub(crate) rate_limits: HashMap<ObjKey, ratelimit::RateLimitInfo>,
    /// What inbound policy reads from each ExternalWorkload.
    pub(crate) externals: HashMap<ObjKey, external::ExternalPolicy>,
    /// Gateway API HTTPRoutes and GRPCRoutes (outbound only).
    gateway: gateway::GatewayRoutes,
    /// EgressNetworks, and outbound subscriptions to addresses that are no Service's.
    egress: egress::Egress,

    inbound_subs: HashMap<Workload, HashMap<u16, Tx<inpb::Server>>>,
    outbound_subs: HashMap<ObjKey, HashMap<u16, Tx<outpb::OutboundPolicy>>>,

    /// Namespaces whose pods' inbound policies may have changed.
    dirty_inbound_ns: HashSet<String>,
    /// Pods whose inbound policies may have changed.
    pub(crate) dirty_pods: HashSet<ObjKey>,
    /// ExternalWorkloads whose inbound policies may have changed.
    dirty_externals: HashSet<ObjKey>,
    /// Namespaces whose Services' outbound policies may have changed.
    dirty_outbound_ns: HashSet<String>,
    /// Every outbound policy may have changed (an HTTPRoute may name any Service).
    dirty_all_outbound: bool,
}

/// How many policy objects and subscription keys the index holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicySizes {
    pub servers: usize,
    pub authorizations: usize,
    pub authentications: usize,
    pub http_routes: usize,
    pub rate_limits: usize,
    /// HTTPLocalRateLimitPolicies that cannot be applied as written.
    pub invalid_rate_limits: usize,
    pub inbound_keys: usize,
    pub outbound_keys: usize,
}

impl PolicyIndex {
    /// Whether `key` has a channel that no receiver holds.
    pub(super) fn unheld(&self, key: &PolicyKey) -> bool {
        use super::subscription::unheld;
        match key {
            PolicyKey::Inbound(workload, port) => unheld(&self.inbound_subs, workload, port),
            PolicyKey::Outbound(svc, port) => unheld(&self.outbound_subs, svc, port),
            PolicyKey::Egress(key) => self.egress.unheld(key),
        }
    }

    /// Removes `key` if no receiver holds its channel.
    pub(super) fn drop_unheld(&mut self, key: &PolicyKey) {
        use super::subscription::drop_unheld;
        match key {
            PolicyKey::Inbound(workload, port) => {
                drop_unheld(&mut self.inbound_subs, workload, port)
            }
            PolicyKey::Outbound(svc, port) => drop_unheld(&mut self.outbound_subs, svc, port),
            PolicyKey::Egress(key) => self.egress.drop_unheld(key),
        }
    }

    pub(crate) fn sizes(&self) -> PolicySizes {
        PolicySizes {
            servers: self.servers.len(),
            authorizations: self.server_authzs.len() + self.authz_policies.len(),
            authentications: self.mtls_authns.len() + self.net_authns.len(),
            http_routes: self.routes.len(),
            rate_limits: self.rate_limits.len(),
            invalid_rate_limits: self.rate_limits.values().filter(|r| !r.is_valid()).count(),
            inbound_keys: self.inbound_subs.values().map(HashMap::len).sum(),
            outbound_keys: self.outbound_subs.values().map(HashMap::len).sum::<usize>()
                + self.egress.keys(),
        }
    }

    /// Marks the inbound policies of a namespace's pods.
    pub(crate) fn mark_inbound_ns(&mut self, ns: &str) {
        self.dirty_inbound_ns.insert(ns.to_string());
    }

    /// Marks the outbound policies of a Service (and its namespace's, whose routes may send to
    /// it).
    pub(crate) fn mark_service(&mut self, svc: &ObjKey) {
        self.dirty_outbound_ns.insert(svc.ns.clone());
    }

    fn mark_all_outbound(&mut self) {
        self.dirty_all_outbound = true;
    }
}

// === impl Index ===

impl Index {
    /// A receiver of the inbound policy of `port` on `pod`; the pod must be indexed.
    pub fn watch_inbound(&mut self, pod: &ObjKey, port: u16) -> Result<InboundRx, PolicyError> {
        self.watch_workload(&Workload::Pod(pod.clone()), port)
    }

    /// A receiver of the inbound policy of `port` on a pod or an ExternalWorkload, which must be
    /// indexed. The channel closes when the workload is deleted.
    pub fn watch_workload(
        &mut self,
        workload: &Workload,
        port: u16,
    ) -> Result<InboundRx, PolicyError> {
        if let Some(rx) = self.existing_workload(workload, port) {
            return Ok(rx);
        }
        let server = self
            .inbound_server(workload, port)
            .ok_or_else(|| workload.not_found())?;
        let (tx, rx) = channel::channel(Arc::new(PolicySnapshot::new(server)));
        self.policy
            .inbound_subs
            .entry(workload.clone())
            .or_default()
            .insert(port, tx);
        Ok(rx)
    }

    pub fn existing_inbound(&self, pod: &ObjKey, port: u16) -> Option<InboundRx> {
        self.existing_workload(&Workload::Pod(pod.clone()), port)
    }

    pub fn existing_workload(&self, workload: &Workload, port: u16) -> Option<InboundRx> {
        Some(
            self.policy
                .inbound_subs
                .get(workload)?
                .get(&port)?
                .subscribe(),
        )
    }

    /// The key that `target` subscribes to, as the index stands: its Service's port, or an
    /// egress key.
    pub(crate) fn outbound_key(&self, target: &OutboundTarget) -> Result<PolicyKey, PolicyError> {
        match self.outbound_service(target) {
            Err(PolicyError::NoService(addr)) if self.is_egress(addr, target) => {
                Ok(PolicyKey::Egress(egress::egress_key(addr, target)))
            }
            found => found.map(|(svc, port)| PolicyKey::Outbound(svc, port)),
        }
    }

    /// A receiver of the outbound policy of a Service port, or of the egress policy (an
    /// EgressNetwork's, or the fallback outside the cluster networks) of another address.
    pub fn watch_outbound(&mut self, target: &OutboundTarget) -> Result<OutboundRx, PolicyError> {
        let (svc, port) = match self.outbound_service(target) {
            Err(PolicyError::NoService(addr)) if self.is_egress(addr, target) => {
                return Ok(self.watch_egress(addr, target));
            }
            found => found?,
        };
        if let Some(rx) = self.existing_outbound_key(&svc, port) {
            return Ok(rx);
        }
        let policy = self
            .outbound_policy(&svc, port)
            .ok_or_else(|| PolicyError::ServiceNotFound(svc.clone()))?;
        let (tx, rx) = channel::channel(Arc::new(PolicySnapshot::new(policy)));
        self.policy
            .outbound_subs
            .entry(svc)
            .or_default()
            .insert(port, tx);
        Ok(rx)
    }

    pub fn existing_outbound(
        &self,
        target: &OutboundTarget,
    ) -> Result<Option<OutboundRx>, PolicyError> {
        let (svc, port) = match self.outbound_service(target) {
            Err(PolicyError::NoService(addr)) if self.is_egress(addr, target) => {
                return Ok(self.existing_egress(addr, target));
            }
            found => found?,
        };
        Ok(self.existing_outbound_key(&svc, port))
    }

    fn existing_outbound_key(&self, svc: &ObjKey, port: u16) -> Option<OutboundRx> {
        Some(self.policy.outbound_subs.get(svc)?.get(&port)?.subscribe())
    }

    /// The Service a target names, if it exists.
    fn outbound_service(&self, target: &OutboundTarget) -> Result<(ObjKey, u16), PolicyError> {
        match target {
            OutboundTarget::Addr(addr) | OutboundTarget::AddrFrom { addr, .. } => {
                // Several Services claiming one IP: the first by namespace and name, as
                // GetProfile streams do.
                let svc = self
                    .cluster_ips
                    .get(&addr.ip())
                    .and_then(|claims| claims.first())
                    .ok_or(PolicyError::NoService(*addr))?;
                Ok((svc.clone(), addr.port()))
            }
            OutboundTarget::Service(svc, port) => {
                if !self.services.contains_key(svc) {
                    return Err(PolicyError::ServiceNotFound(svc.clone()));
                }
                Ok((svc.clone(), *port))
            }
        }
    }

    /// Rebuilds the policy subscriptions that the writes since the last flush touched.
    pub(super) fn flush_policy(&mut self) {
        self.flush_inbound();

        let all = std::mem::take(&mut self.policy.dirty_all_outbound);
        let dirty_ns = std::mem::take(&mut self.policy.dirty_outbound_ns);
        let outbound = dirty_keys(&mut self.policy.outbound_subs, |svc| {
            all || dirty_ns.contains(&svc.ns)
        });
        let built: Vec<_> = outbound
            .into_iter()
            .filter_map(|(svc, port)| {
                Some(((svc.clone(), port), self.outbound_policy(&svc, port)?))
            })
            .collect();
        publish(&mut self.policy.outbound_subs, built);
        // Routes and Services can change EgressNetwork policies too.
        self.flush_egress(all || !dirty_ns.is_empty());
    }
}

/// The subscribed keys under the objects `dirty` picks, after dropping the channels nobody
/// holds any more.
fn dirty_keys<K: Clone + Eq + Hash, M>(
    subs: &mut HashMap<K, HashMap<u16, Tx<M>>>,
    dirty: impl Fn(&K) -> bool,
) -> Vec<(K, u16)> {
    let mut keys = Vec::new();
    subs.retain(|obj, ports| {
        if !dirty(obj) {
            return true;
        }
        ports.retain(|_, tx| !tx.is_closed());
        keys.extend(ports.keys().map(|port| (obj.clone(), *port)));
        !ports.is_empty()
    });
    keys
}

/// Sends each rebuilt policy to its channel if it differs from the one there.
fn publish<K: Eq + Hash, M: Message + PartialEq>(
    subs: &mut HashMap<K, HashMap<u16, Tx<M>>>,
    built: Vec<((K, u16), M)>,
) {
    for ((obj, port), message) in built {
        if let Some(tx) = subs.get(&obj).and_then(|ports| ports.get(&port)) {
            tx.send_if_modified(|current| {
                if current.message == message {
                    return false;
                }
                *current = Arc::new(PolicySnapshot::new(message));
                true
            });
        }
    }
}
