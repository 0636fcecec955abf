//! Addresses that are no Service's: an EgressNetwork of the client's namespace (or, if that
//! namespace has none, of the global egress namespace) that contains the address gives its
//! policy: forward to the original destination, or refuse if its `trafficPolicy` is `Deny`.
//! Otherwise an address outside the cluster networks gets the `egress-fallback` policy, which
//! forwards to the original destination, and one inside them stays NOT_FOUND, as in Linkerd.
//!
//! Like any outbound key, each (address, client namespace) has one channel shared by its
//! subscribers, rebuilt when EgressNetworks change.

use super::{
    Cidr, OutboundRx, OutboundTarget, PolicySnapshot, Tx,
    gateway::{created, route_annotations},
    parent::{Parent, egress_meta, forward_backend},
    retry::{Retries, Retry, StatusRange},
    routes,
    timeouts::Timeouts,
};
use crate::index::{Index, IndexResource, ObjKey};
use kube::Resource;
use linkerd2_proxy_api::{http_route, meta, opaque_route, outbound as pb};
use oxlink_crds::{
    names::control_plane::GLOBAL_EGRESS_NETWORK_NAMESPACE,
    policy::{EgressNetwork, TrafficPolicy},
};
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};
use tokio::sync::watch as channel;

/// The name of the policy, its routes and its backend for addresses outside the cluster.
const FALLBACK: &str = "egress-fallback";
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What a request to a network with `trafficPolicy: Deny` gets.
const DENIED_STATUS: u32 = 403;
const DENIED_MESSAGE: &str = "traffic not allowed";

/// EgressNetworks, and the subscriptions to addresses that are no Service's.
#[derive(Debug, Default)]
pub(super) struct Egress {
    networks: HashMap<ObjKey, EgressNet>,
    subs: HashMap<EgressKey, Tx<pb::OutboundPolicy>>,
    /// EgressNetworks changed since the last flush.
    dirty: bool,
}

/// An address as a client in a namespace (if it said) asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EgressKey {
    addr: SocketAddr,
    source_ns: Option<String>,
}

/// An EgressNetwork as the index keeps it.
#[derive(Clone, Debug, PartialEq)]
struct EgressNet {
    networks: Vec<Net>,
    traffic_policy: TrafficPolicy,
    created: Option<i64>,
    /// Retries and timeouts of its HTTP route, from its `retry.linkerd.io/*` and
    /// `timeout.linkerd.io/*` annotations.
    retries: Retries,
    timeouts: Timeouts,
}

/// A network with exceptions.
#[derive(Clone, Debug, PartialEq)]
struct Net {
    cidr: Cidr,
    except: Vec<Cidr>,
}

impl Egress {
    /// How many keys have channels.
    pub(super) fn keys(&self) -> usize {
        self.subs.len()
    }

    /// Whether `key` has a channel that no receiver holds.
    pub(super) fn unheld(&self, key: &EgressKey) -> bool {
        self.subs.get(key).is_some_and(|tx| tx.is_closed())
    }

    /// Removes `key` if no receiver holds its channel.
    pub(super) fn drop_unheld(&mut self, key: &EgressKey) {
        if self.unheld(key) {
            self.subs.remove(key);
        }
    }
}

impl OutboundTarget {
    fn source_ns(&self) -> Option<&str> {
        match self {
            Self::AddrFrom { source_ns, .. } => Some(source_ns),
            Self::Addr(_) | Self::Service(..) => None,
        }
    }
}

impl Index {
    /// Whether an outbound lookup of `addr` (no Service's cluster IP) gets an egress policy:
    /// an EgressNetwork contains it, or it is outside every cluster network.
    pub(super) fn is_egress(&self, addr: SocketAddr, target: &OutboundTarget) -> bool {
        self.egress_network(addr.ip(), target.source_ns()).is_some() || !self.in_cluster(addr.ip())
    }

    fn in_cluster(&self, ip: IpAddr) -> bool {
        let networks = &self.config.policy.cluster_networks;
        networks.iter().any(|net| net.contains_ip(ip))
    }

    pub(super) fn existing_egress(
        &self,
        addr: SocketAddr,
        target: &OutboundTarget,
    ) -> Option<OutboundRx> {
        Some(
            self.policy
                .egress
                .subs
                .get(&egress_key(addr, target))?
                .subscribe(),
        )
    }

    /// A receiver of the egress policy for `addr`; channels nobody holds any more are dropped
    /// when a new key is subscribed.
    pub(super) fn watch_egress(&mut self, addr: SocketAddr, target: &OutboundTarget) -> OutboundRx {
        if let Some(rx) = self.existing_egress(addr, target) {
            return rx;
        }
        let key = egress_key(addr, target);
        let policy = self.egress_policy(&key);
        let subs = &mut self.policy.egress.subs;
        subs.retain(|_, tx| !tx.is_closed());
        let (tx, rx) = channel::channel(Arc::new(PolicySnapshot::new(policy)));
        subs.insert(key, tx);
        rx
    }

    /// Rebuilds the egress subscriptions if EgressNetworks changed, or if `outbound_changed`
    /// (routes or Services, which routes attached to EgressNetworks name).
    pub(super) fn flush_egress(&mut self, outbound_changed: bool) {
        let networks_changed = std::mem::take(&mut self.policy.egress.dirty);
        if !networks_changed && !outbound_changed {
            return;
        }
        self.policy.egress.subs.retain(|_, tx| !tx.is_closed());
        let built: Vec<_> = self
            .policy
            .egress
            .subs
            .keys()
            .map(|key| (key.clone(), self.egress_policy(key)))
            .collect();
        for (key, policy) in built {
            if let Some(tx) = self.policy.egress.subs.get(&key) {
                tx.send_if_modified(|current| {
                    if current.message == policy {
                        return false;
                    }
                    *current = Arc::new(PolicySnapshot::new(policy));
                    true
                });
            }
        }
    }

    fn egress_policy(&self, key: &EgressKey) -> pb::OutboundPolicy {
        match self.egress_network(key.addr.ip(), key.source_ns.as_deref()) {
            Some((net_key, net)) => self.network_policy(net_key, net, key.addr),
            None => fallback(key.addr),
        }
    }

    /// The EgressNetwork that `ip` goes to for a client in `source_ns`, as Linkerd picks it:
    /// only the client namespace's networks if it has any, else the global namespace's; among
    /// those containing `ip`, the most specific match, then the oldest, then by namespace and
    /// name.
    fn egress_network(&self, ip: IpAddr, source_ns: Option<&str>) -> Option<(&ObjKey, &EgressNet)> {
        let in_ns = |ns: &str| -> Vec<(&ObjKey, &EgressNet)> {
            let networks = self.policy.egress.networks.iter();
            networks.filter(|(key, _)| key.ns == ns).collect()
        };
        let local = source_ns.map(in_ns).unwrap_or_default();
        let candidates = if local.is_empty() {
            in_ns(GLOBAL_EGRESS_NETWORK_NAMESPACE)
        } else {
            local
        };
        candidates
            .into_iter()
            .filter_map(|(key, net)| {
                Some((
                    net.host_bits(ip)?,
                    net.created.is_some(),
                    net.created,
                    key,
                    net,
                ))
            })
            .min_by(|a, b| (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)))
            .map(|(.., key, net)| (key, net))
    }

    /// How many egress keys have subscriptions.
    #[cfg(test)]
    pub(super) fn egress_keys(&self) -> usize {
        self.policy.egress.subs.len()
    }
}

pub(super) fn egress_key(addr: SocketAddr, target: &OutboundTarget) -> EgressKey {
    EgressKey {
        addr,
        source_ns: target.source_ns().map(str::to_string),
    }
}

// === impl EgressNet ===

impl EgressNet {
    /// Reads an EgressNetwork; without networks it covers every address outside
    /// `cluster_networks`. A malformed CIDR is skipped (and logged).
    fn from_resource(obj: &EgressNetwork, cluster_networks: &[Cidr]) -> Self {
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        let parse = |s: &str| {
            s.parse::<Cidr>()
                .inspect_err(|error| {
                    tracing::warn!(egress_network = %name, %error, "skipping a malformed network");
                })
                .ok()
        };
        let networks = if obj.spec.networks.is_empty() {
            Cidr::all()
                .into_iter()
                .map(|all| Net {
                    cidr: all,
                    except: cluster_networks
                        .iter()
                        .filter(|c| c.addr.is_ipv4() == all.addr.is_ipv4())
                        .copied()
                        .collect(),
                })
                .collect()
        } else {
            obj.spec
                .networks
                .iter()
                .filter_map(|n| {
                    Some(Net {
                        cidr: parse(&n.cidr)?,
                        except: n.except.iter().filter_map(|e| parse(e)).collect(),
                    })
                })
                .collect()
        };
        let (retries, timeouts) = route_annotations::<EgressNetwork>(&obj.metadata);
        Self {
            networks,
            traffic_policy: obj.spec.traffic_policy,
            created: created(&obj.metadata),
            retries,
            timeouts,
        }
    }

    /// The size (host bits) of the smallest network containing `ip`, if any does.
    fn host_bits(&self, ip: IpAddr) -> Option<u8> {
        self.networks
            .iter()
            .filter(|n| n.cidr.contains_ip(ip) && !n.except.iter().any(|e| e.contains_ip(ip)))
            .map(|n| width(n.cidr.addr) - n.cidr.prefix.min(width(n.cidr.addr)))
            .min()
    }
}

impl IndexResource for EgressNetwork {
    fn apply(index: &mut Index, obj: &Self) {
        let Some(key) = ObjKey::of(obj.meta()) else {
            return;
        };
        let net = EgressNet::from_resource(obj, &index.config.policy.cluster_networks);
        let egress = &mut index.policy.egress;
        if egress.networks.get(&key) != Some(&net) {
            egress.networks.insert(key, net);
            egress.dirty = true;
        }
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        let egress = &mut index.policy.egress;
        if egress.networks.remove(key).is_some() {
            egress.dirty = true;
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.policy.egress.networks.keys().cloned().collect()
    }
}

fn width(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// Linkerd's `egress-fallback` policy: detect HTTP (routing every request to the original
/// destination) or forward opaquely to it, with no failure accrual.
pub(super) fn fallback(addr: SocketAddr) -> pb::OutboundPolicy {
    let metadata = routes::default_meta(FALLBACK);
    ForwardPolicy {
        metadata: metadata.clone(),
        opaque_route: metadata.clone(),
        http_route: metadata,
        http_match: http_route::HttpRouteMatch::default(),
        deny: false,
        retry: None,
        timeouts: Timeouts::default(),
        http_routes: Vec::new(),
        grpc_routes: Vec::new(),
    }
    .build(addr)
}

impl Index {
    /// An EgressNetwork's policy: its GRPCRoutes, if any attach; else detect, with the
    /// HTTPRoutes that attach, then a default route, and an opaque route. The default routes
    /// forward to the original destination, or refuse (opaque connections are forbidden, HTTP
    /// requests get 403) when its traffic policy is `Deny`; the default HTTP route retries and
    /// times out as the network's annotations say.
    fn network_policy(
        &self,
        key: &ObjKey,
        net: &EgressNet,
        addr: SocketAddr,
    ) -> pb::OutboundPolicy {
        let (tcp, http, deny) = match net.traffic_policy {
            TrafficPolicy::Allow => ("tcp-egress-allow", "http-egress-allow", false),
            TrafficPolicy::Deny => ("tcp-egress-deny", "http-egress-deny", true),
        };
        let parent = Parent::Egress { net: key, addr };
        ForwardPolicy {
            metadata: egress_meta(key, addr.port()),
            opaque_route: routes::default_meta(tcp),
            http_route: routes::default_meta(http),
            http_match: routes::prefix_match("/"),
            deny,
            retry: net.retries.http.as_ref(),
            timeouts: net.timeouts,
            http_routes: self.http_routes(parent),
            grpc_routes: self.grpc_routes(parent),
        }
        .build(addr)
    }

    /// An EgressNetwork's retries and timeouts, which routes attached to it inherit.
    pub(super) fn egress_defaults(&self, net: &ObjKey) -> (Option<&Retries>, Timeouts) {
        match self.policy.egress.networks.get(net) {
            Some(net) => (Some(&net.retries), net.timeouts),
            None => (None, Timeouts::default()),
        }
    }
}

/// A policy whose default opaque and HTTP routes forward to the original destination: detect,
/// with `http_routes` before the default HTTP route, or gRPC if `grpc_routes` has any.
struct ForwardPolicy<'a> {
    /// The policy's and its backend's metadata.
    metadata: meta::Metadata,
    opaque_route: meta::Metadata,
    http_route: meta::Metadata,
    http_match: http_route::HttpRouteMatch,
    deny: bool,
    retry: Option<&'a Retry<StatusRange>>,
    timeouts: Timeouts,
    http_routes: Vec<pb::HttpRoute>,
    grpc_routes: Vec<pb::GrpcRoute>,
}

impl ForwardPolicy<'_> {
    fn build(self, addr: SocketAddr) -> pb::OutboundPolicy {
        use pb::proxy_protocol::{Detect, Grpc, Http1, Http2, Kind, Opaque};
        if !self.grpc_routes.is_empty() {
            return pb::OutboundPolicy {
                metadata: Some(self.metadata),
                protocol: Some(pb::ProxyProtocol {
                    kind: Some(Kind::Grpc(Grpc {
                        routes: self.grpc_routes,
                        failure_accrual: None,
                    })),
                }),
            };
        }
        let backend = forward_backend(self.metadata.clone(), addr);
        let opaque_filters = if self.deny {
            vec![pb::opaque_route::Filter {
                kind: Some(pb::opaque_route::filter::Kind::Forbidden(
                    opaque_route::Forbidden {},
                )),
            }]
        } else {
            Vec::new()
        };
        let http_filters = if self.deny {
            vec![pb::http_route::Filter {
                kind: Some(pb::http_route::filter::Kind::FailureInjector(
                    http_route::HttpFailureInjector {
                        status: DENIED_STATUS,
                        message: DENIED_MESSAGE.into(),
                        ratio: None,
                    },
                )),
            }]
        } else {
            Vec::new()
        };
        let opaque = Opaque {
            routes: vec![pb::OpaqueRoute {
                metadata: Some(self.opaque_route),
                rules: vec![pb::opaque_route::Rule {
                    backends: Some(pb::opaque_route::Distribution {
                        kind: Some(pb::opaque_route::distribution::Kind::FirstAvailable(
                            pb::opaque_route::distribution::FirstAvailable {
                                backends: vec![pb::opaque_route::RouteBackend {
                                    backend: Some(backend.clone()),
                                    filters: Vec::new(),
                                }],
                            },
                        )),
                    }),
                    filters: opaque_filters,
                }],
            }],
        };
        let mut routes = self.http_routes;
        #[allow(deprecated)]
        routes.push(pb::HttpRoute {
            metadata: Some(self.http_route),
            hosts: Vec::new(),
            rules: vec![pb::http_route::Rule {
                matches: vec![self.http_match],
                filters: http_filters,
                retry: self.retry.map(Retry::to_http),
                timeouts: self.timeouts.to_proto(),
                request_timeout: self.timeouts.request.map(routes::duration),
                backends: Some(pb::http_route::Distribution {
                    kind: Some(pb::http_route::distribution::Kind::FirstAvailable(
                        pb::http_route::distribution::FirstAvailable {
                            backends: vec![pb::http_route::RouteBackend {
                                backend: Some(backend),
                                filters: Vec::new(),
                                request_timeout: None,
                            }],
                        },
                    )),
                }),
                ..Default::default()
            }],
        });
        pb::OutboundPolicy {
            metadata: Some(self.metadata),
            protocol: Some(pb::ProxyProtocol {
                kind: Some(Kind::Detect(Detect {
                    timeout: Some(routes::duration(DETECT_TIMEOUT)),
                    opaque: Some(opaque),
                    http1: Some(Http1 {
                        routes: routes.clone(),
                        failure_accrual: None,
                    }),
                    http2: Some(Http2 {
                        routes,
                        failure_accrual: None,
                    }),
                })),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr("10.0.0.0/8").contains_ip(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains_ip(ip("11.0.0.1")));
        assert!(cidr("172.16.0.0/12").contains_ip(ip("172.31.255.255")));
        assert!(!cidr("172.16.0.0/12").contains_ip(ip("172.32.0.0")));
        assert!(cidr("0.0.0.0/0").contains_ip(ip("192.0.2.1")));
        assert!(cidr("192.0.2.1").contains_ip(ip("192.0.2.1")));
        assert!(!cidr("192.0.2.1").contains_ip(ip("192.0.2.2")));
        assert!(cidr("fd00::/8").contains_ip(ip("fd12::1")));
        assert!(!cidr("fd00::/8").contains_ip(ip("fe80::1")));
        assert!(
            !cidr("10.0.0.0/8").contains_ip(ip("::ffff:10.0.0.1")),
            "families differ"
        );
        assert!(cidr("::/0").contains_ip(ip("2001:db8::1")));
    }
}
