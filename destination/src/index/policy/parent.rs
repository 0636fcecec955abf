//! What an outbound policy's routes attach to: a Service port, or an EgressNetwork as a lookup
//! of an address reaches it. Routes of both kinds share their conversion; the parent decides
//! which routes attach, where a rule without backends sends requests, and which retries and
//! timeouts routes without their own inherit.

use super::{retry::Retries, routes, timeouts::Timeouts};
use crate::index::{Index, ObjKey};
use kube::Resource;
use linkerd2_proxy_api::{destination, meta, outbound as pb};
use oxlink_crds::{
    names::groups::POLICY,
    policy::{EgressNetwork, httproute::ParentReference},
};
use std::{net::SocketAddr, time::Duration};

/// The group Linkerd names core Services with in outbound metadata.
pub(super) const CORE_GROUP: &str = "core";
pub(super) const SERVICE_KIND: &str = "Service";
/// The proxy's request queue in front of a parent's balancers.
const QUEUE_CAPACITY: u32 = 100;
const FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);

/// The metadata naming a Service port as a parent or backend.
pub(super) fn service_meta(svc: &ObjKey, port: u16) -> meta::Metadata {
    routes::resource_meta(CORE_GROUP, SERVICE_KIND, &svc.ns, &svc.name, port)
}

/// The queue of every outbound parent.
pub(super) fn queue() -> pb::Queue {
    pb::Queue {
        capacity: QUEUE_CAPACITY,
        failfast_timeout: Some(routes::duration(FAILFAST_TIMEOUT)),
    }
}

/// What routes attach to.
#[derive(Clone, Copy, Debug)]
pub(super) enum Parent<'a> {
    /// A Service port.
    Service { svc: &'a ObjKey, port: u16 },
    /// An EgressNetwork, as a lookup of `addr` reaches it.
    Egress { net: &'a ObjKey, addr: SocketAddr },
}

impl Parent<'_> {
    /// The port asked for.
    pub(super) fn port(&self) -> u16 {
        match self {
            Self::Service { port, .. } => *port,
            Self::Egress { addr, .. } => addr.port(),
        }
    }

    /// Whether `parents` (of a route in `route_ns`) name this parent; a parent reference
    /// without a port names every port, and one without a namespace is in the route's.
    pub(super) fn named_by(&self, parents: &[ParentReference], route_ns: &str) -> bool {
        let egress_kind = EgressNetwork::kind(&());
        let (group, kind, key) = match self {
            Self::Service { svc, .. } => (CORE_GROUP, SERVICE_KIND, *svc),
            Self::Egress { net, .. } => (POLICY, egress_kind.as_ref(), *net),
        };
        parents.iter().any(|p| {
            let p_group = p
                .group
                .as_deref()
                .filter(|g| !g.is_empty())
                .unwrap_or(CORE_GROUP);
            p.kind.as_deref() == Some(kind)
                && p_group == group
                && p.name == key.name
                && p.namespace.as_deref().unwrap_or(route_ns) == key.ns
                && p.port.is_none_or(|p| p == i32::from(self.port()))
        })
    }
}

/// An EgressNetwork's metadata, for a lookup of `port`.
pub(super) fn egress_meta(net: &ObjKey, port: u16) -> meta::Metadata {
    routes::resource_meta(POLICY, &EgressNetwork::kind(&()), &net.ns, &net.name, port)
}

/// A backend that forwards to the original destination.
pub(super) fn forward_backend(metadata: meta::Metadata, addr: SocketAddr) -> pb::Backend {
    pb::Backend {
        metadata: Some(metadata),
        queue: Some(queue()),
        kind: Some(pb::backend::Kind::Forward(destination::WeightedAddr {
            addr: Some(addr.into()),
            weight: 1,
            ..Default::default()
        })),
    }
}

impl Index {
    /// Where a rule without backends sends requests: the Service port's balancer, or the
    /// original destination.
    pub(super) fn parent_backend(&self, parent: Parent<'_>) -> pb::Backend {
        match parent {
            Parent::Service { svc, port } => {
                self.service_backend(svc, port, service_meta(svc, port))
            }
            Parent::Egress { net, addr } => forward_backend(egress_meta(net, addr.port()), addr),
        }
    }

    /// The retries and timeouts of the parent's annotations, which routes without their own
    /// inherit.
    pub(super) fn parent_defaults(&self, parent: Parent<'_>) -> (Option<&Retries>, Timeouts) {
        match parent {
            Parent::Service { svc, .. } => match self.services.get(svc) {
                Some(info) => (Some(&info.policy.retries), info.policy.timeouts),
                None => (None, Timeouts::default()),
            },
            Parent::Egress { net, .. } => self.egress_defaults(net),
        }
    }
}
