//! Addresses outside the cluster: an outbound lookup of an IP that is no Service's cluster IP
//! and lies outside the cluster networks gets the `egress-fallback` policy, which forwards to
//! the original destination (detecting HTTP, or opaque), as Linkerd does. Inside the cluster
//! networks such an address stays NOT_FOUND.
//!
//! The policy never changes, but a subscription still gets one channel per address, shared by
//! every subscriber of that address like any other outbound key.

use super::{Cidr, OutboundRx, PolicySnapshot, Tx, outbound::queue, routes};
use crate::index::Index;
use linkerd2_proxy_api::{destination, http_route, outbound as pb};
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};
use tokio::sync::watch as channel;

/// The name of the policy, its routes and its backend.
const FALLBACK: &str = "egress-fallback";
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Subscriptions to addresses outside the cluster.
#[derive(Debug, Default)]
pub(super) struct EgressSubs(HashMap<SocketAddr, Tx<pb::OutboundPolicy>>);

impl Index {
    /// Whether an outbound lookup of `addr` (no Service's cluster IP) gets the fallback
    /// policy: it is outside every cluster network.
    pub(super) fn is_egress(&self, addr: SocketAddr) -> bool {
        let networks = &self.config.policy.cluster_networks;
        !networks.iter().any(|net| contains(net, addr.ip()))
    }

    pub(super) fn existing_egress(&self, addr: SocketAddr) -> Option<OutboundRx> {
        Some(self.policy.egress.0.get(&addr)?.subscribe())
    }

    /// A receiver of the fallback policy for `addr`; channels nobody holds any more are
    /// dropped when a new address is subscribed.
    pub(super) fn watch_egress(&mut self, addr: SocketAddr) -> OutboundRx {
        if let Some(rx) = self.existing_egress(addr) {
            return rx;
        }
        let subs = &mut self.policy.egress.0;
        subs.retain(|_, tx| !tx.is_closed());
        let (tx, rx) = channel::channel(Arc::new(PolicySnapshot::new(fallback(addr))));
        subs.insert(addr, tx);
        rx
    }

    /// How many addresses outside the cluster have subscriptions.
    #[cfg(test)]
    pub(super) fn egress_keys(&self) -> usize {
        self.policy.egress.0.len()
    }
}

/// Whether `ip` is in `net` (an address of the other family never is).
fn contains(net: &Cidr, ip: IpAddr) -> bool {
    fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
        let host_bits = u32::from(width - prefix.min(width));
        bits.checked_shr(host_bits).unwrap_or(0)
    }
    match (net.addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            masked(u32::from(n).into(), net.prefix, 32)
                == masked(u32::from(i).into(), net.prefix, 32)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            masked(u128::from(n), net.prefix, 128) == masked(u128::from(i), net.prefix, 128)
        }
        _ => false,
    }
}

/// Linkerd's `egress-fallback` policy: detect HTTP (routing every request to the original
/// destination) or forward opaquely to it, with no failure accrual.
pub(super) fn fallback(addr: SocketAddr) -> pb::OutboundPolicy {
    use pb::proxy_protocol::{Detect, Http1, Http2, Kind, Opaque};
    let metadata = routes::default_meta(FALLBACK);
    let backend = pb::Backend {
        metadata: Some(metadata.clone()),
        queue: Some(queue()),
        kind: Some(pb::backend::Kind::Forward(destination::WeightedAddr {
            addr: Some(addr.into()),
            weight: 1,
            ..Default::default()
        })),
    };
    let opaque = Opaque {
        routes: vec![pb::OpaqueRoute {
            metadata: Some(metadata.clone()),
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
                filters: Vec::new(),
            }],
        }],
    };
    #[allow(deprecated)]
    let routes = vec![pb::HttpRoute {
        metadata: Some(metadata.clone()),
        hosts: Vec::new(),
        rules: vec![pb::http_route::Rule {
            matches: vec![http_route::HttpRouteMatch::default()],
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
    }];
    pb::OutboundPolicy {
        metadata: Some(metadata),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(contains(&cidr("10.0.0.0/8"), ip("10.255.1.2")));
        assert!(!contains(&cidr("10.0.0.0/8"), ip("11.0.0.1")));
        assert!(contains(&cidr("172.16.0.0/12"), ip("172.31.255.255")));
        assert!(!contains(&cidr("172.16.0.0/12"), ip("172.32.0.0")));
        assert!(contains(&cidr("0.0.0.0/0"), ip("192.0.2.1")));
        assert!(contains(&cidr("192.0.2.1"), ip("192.0.2.1")));
        assert!(!contains(&cidr("192.0.2.1"), ip("192.0.2.2")));
        assert!(contains(&cidr("fd00::/8"), ip("fd12::1")));
        assert!(!contains(&cidr("fd00::/8"), ip("fe80::1")));
        assert!(
            !contains(&cidr("10.0.0.0/8"), ip("::ffff:10.0.0.1")),
            "families differ"
        );
        assert!(contains(&cidr("::/0"), ip("2001:db8::1")));
    }
}
