//! The outbound policy of a Service port: its HTTPRoutes (or a default route) to its backends,
//! opaque when the port is, with failure accrual, timeouts and retries from the Service's
//! annotations and the protocol its port's `appProtocol` names.

use super::{
    RouteInfo,
    parent::{CORE_GROUP, Parent, SERVICE_KIND, egress_meta, forward_backend, queue, service_meta},
    retry::{Retries, Retry, StatusRange},
    routes::{self, Filter},
    timeouts::Timeouts,
};
use crate::index::{Index, ObjKey};
use k8s_openapi::api::core::v1::Service;
use kube::Resource;
use linkerd2_proxy_api::{http_route, meta, outbound as pb};
use oxlink_crds::{
    duration::parse_duration,
    names::{
        annotations,
        groups::{GATEWAY, POLICY},
    },
    policy::{EgressNetwork, HttpRoute, httproute::HttpRouteRule},
};
use std::{collections::BTreeMap, time::Duration};

const DETECT_TIMEOUT: Duration = Duration::from_secs(10);
const EWMA_DEFAULT_RTT: Duration = Duration::from_millis(30);
const EWMA_DECAY: Duration = Duration::from_secs(10);

/// What a Service's annotations and ports say about its outbound policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ServicePolicy {
    failure_accrual: Option<FailureAccrual>,
    pub(super) timeouts: Timeouts,
    pub(super) retries: Retries,
    /// The protocol each port's `appProtocol` names, where it names one the mesh knows.
    app_protocols: BTreeMap<u16, AppProtocol>,
}

/// A Service port's `appProtocol`, as Linkerd reads it (case-insensitively).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppProtocol {
    /// `http`: HTTP/1 only, no protocol detection.
    Http1,
    /// `kubernetes.io/h2c`: HTTP/2 only.
    Http2,
    /// `linkerd.io/opaque` or `linkerd.io/tcp`.
    Opaque,
}

impl AppProtocol {
    /// The protocol a value names; `None` for values the mesh does not know (their ports get
    /// the default policy, as without `appProtocol`).
    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "http" => Some(Self::Http1),
            "kubernetes.io/h2c" => Some(Self::Http2),
            "linkerd.io/opaque" | "linkerd.io/tcp" => Some(Self::Opaque),
            _ => None,
        }
    }
}

impl ServicePolicy {
    /// Reads a Service's annotations and its ports' `appProtocol`s.
    pub(crate) fn from_service(svc: &Service) -> Self {
        let name = format!(
            "Service {}/{}",
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default()
        );
        let mut policy = Self::from_annotations(svc.metadata.annotations.as_ref(), &name);
        let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
        for port in ports.into_iter().flatten() {
            let (Some(value), Ok(number)) = (&port.app_protocol, u16::try_from(port.port)) else {
                continue;
            };
            match AppProtocol::parse(value) {
                Some(protocol) => {
                    policy.app_protocols.insert(number, protocol);
                }
                None => tracing::debug!(
                    service = %name,
                    port = number,
                    app_protocol = %value,
                    "unknown appProtocol; the port gets the default policy"
                ),
            }
        }
        policy
    }

    fn from_annotations(a: Option<&BTreeMap<String, String>>, name: &str) -> Self {
        let Some(a) = a else {
            return Self::default();
        };
        Self {
            failure_accrual: FailureAccrual::from_annotations(a),
            timeouts: Timeouts::from_annotations(a, name),
            retries: Retries::from_annotations(a, name),
            app_protocols: BTreeMap::new(),
        }
    }
}

/// Consecutive-failures accrual, as a Service's `balancer.linkerd.io/failure-accrual*`
/// annotations configure it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FailureAccrual {
    max_failures: u32,
    min_penalty: Duration,
    max_penalty: Duration,
    jitter_ratio: f32,
}

impl FailureAccrual {
    /// Linkerd's defaults: 7 failures, penalties between 1s and 1m, jitter 0.5.
    const DEFAULT: Self = Self {
        max_failures: 7,
        min_penalty: Duration::from_secs(1),
        max_penalty: Duration::from_secs(60),
        jitter_ratio: 0.5,
    };

    /// Reads the annotations; `None` unless accrual is `consecutive`. A malformed value
    /// falls back to its default (and is logged).
    fn from_annotations(a: &BTreeMap<String, String>) -> Option<Self> {
        if a.get(annotations::FAILURE_ACCRUAL)?.as_str() != annotations::FAILURE_ACCRUAL_CONSECUTIVE
        {
            return None;
        }
        fn read<T>(
            a: &BTreeMap<String, String>,
            key: &str,
            parse: impl Fn(&str) -> Option<T>,
            default: T,
        ) -> T {
            match a.get(key) {
                None => default,
                Some(v) => parse(v).unwrap_or_else(|| {
                    tracing::info!(annotation = key, value = %v, "ignoring a malformed value");
                    default
                }),
            }
        }
        let d = Self::DEFAULT;
        Some(Self {
            max_failures: read(
                a,
                annotations::FAILURE_ACCRUAL_MAX_FAILURES,
                |v| v.parse().ok(),
                d.max_failures,
            ),
            min_penalty: read(
                a,
                annotations::FAILURE_ACCRUAL_MIN_PENALTY,
                |v| parse_duration(v).ok(),
                d.min_penalty,
            ),
            max_penalty: read(
                a,
                annotations::FAILURE_ACCRUAL_MAX_PENALTY,
                |v| parse_duration(v).ok(),
                d.max_penalty,
            ),
            jitter_ratio: read(
                a,
                annotations::FAILURE_ACCRUAL_JITTER_RATIO,
                |v| v.parse().ok().filter(|r: &f32| (0.0..=100.0).contains(r)),
                d.jitter_ratio,
            ),
        })
    }

    fn to_proto(&self) -> pb::FailureAccrual {
        pb::FailureAccrual {
            ejection: None,
            kind: Some(pb::failure_accrual::Kind::ConsecutiveFailures(
                pb::failure_accrual::ConsecutiveFailures {
                    max_failures: self.max_failures,
                    backoff: Some(pb::ExponentialBackoff {
                        min_backoff: Some(routes::duration(self.min_penalty)),
                        max_backoff: Some(routes::duration(self.max_penalty)),
                        jitter_ratio: self.jitter_ratio,
                        respect_retry_after_hint: false,
                    }),
                },
            )),
        }
    }
}

impl Index {
    /// The outbound policy of `port` on `svc`, or `None` if the Service is not indexed.
    ///
    /// An opaque port (by annotation, default, or `appProtocol`) gets the opaque route; an
    /// `appProtocol` of `http` or `kubernetes.io/h2c` gets that HTTP version's routes without
    /// detection; otherwise GRPCRoutes make it a gRPC port, and without them the proxy detects
    /// the protocol and routes HTTP by the HTTPRoutes of both groups.
    pub(crate) fn outbound_policy(&self, svc: &ObjKey, port: u16) -> Option<pb::OutboundPolicy> {
        use pb::proxy_protocol::{Detect, Grpc, Http1, Http2, Kind, Opaque};
        let info = self.services.get(svc)?;
        let opaque = || Opaque {
            routes: vec![self.opaque_route(svc, port)],
        };
        let app_protocol = info.policy.app_protocols.get(&port).copied();
        let is_opaque = info
            .opaque_ports
            .as_ref()
            .unwrap_or(&self.config.default_opaque_ports)
            .contains(port)
            || app_protocol == Some(AppProtocol::Opaque);
        let accrual = info
            .policy
            .failure_accrual
            .as_ref()
            .map(FailureAccrual::to_proto);
        let parent = Parent::Service { svc, port };
        // GRPCRoutes apply unless `appProtocol` names another protocol.
        let grpc_routes = match (is_opaque, app_protocol) {
            (false, None) => self.grpc_routes(parent),
            _ => Vec::new(),
        };
        let kind = if is_opaque {
            Kind::Opaque(opaque())
        } else if !grpc_routes.is_empty() {
            Kind::Grpc(Grpc {
                routes: grpc_routes,
                failure_accrual: accrual,
            })
        } else {
            let mut routes = self.http_routes(parent);
            if routes.is_empty() {
                routes.push(self.default_http_route(svc, port));
            }
            match app_protocol {
                Some(AppProtocol::Http1) => Kind::Http1(Http1 {
                    routes,
                    failure_accrual: accrual,
                }),
                Some(AppProtocol::Http2) => Kind::Http2(Http2 {
                    routes,
                    failure_accrual: accrual,
                }),
                Some(AppProtocol::Opaque) | None => Kind::Detect(Detect {
                    timeout: Some(routes::duration(DETECT_TIMEOUT)),
                    opaque: Some(opaque()),
                    http1: Some(Http1 {
                        routes: routes.clone(),
                        failure_accrual: accrual,
                    }),
                    http2: Some(Http2 {
                        routes,
                        failure_accrual: accrual,
                    }),
                }),
            }
        };
        Some(pb::OutboundPolicy {
            protocol: Some(pb::ProxyProtocol { kind: Some(kind) }),
            metadata: Some(service_meta(svc, port)),
        })
    }

    /// The balancer over a Service port's endpoints (discovered through `Destination.Get`).
    pub(super) fn service_backend(
        &self,
        svc: &ObjKey,
        port: u16,
        metadata: meta::Metadata,
    ) -> pb::Backend {
        use pb::backend::{BalanceP2c, EndpointDiscovery, Kind, balance_p2c, endpoint_discovery};
        pb::Backend {
            metadata: Some(metadata),
            queue: Some(queue()),
            kind: Some(Kind::Balancer(BalanceP2c {
                discovery: Some(EndpointDiscovery {
                    kind: Some(endpoint_discovery::Kind::Dst(
                        endpoint_discovery::DestinationGet {
                            path: self.service_authority(svc, port),
                        },
                    )),
                }),
                load: Some(balance_p2c::Load::PeakEwma(balance_p2c::PeakEwma {
                    default_rtt: Some(routes::duration(EWMA_DEFAULT_RTT)),
                    decay: Some(routes::duration(EWMA_DECAY)),
                })),
            })),
        }
    }

    /// The route of an opaque connection: to the Service itself, or to its TrafficSplit's
    /// backends by weight.
    fn opaque_route(&self, svc: &ObjKey, port: u16) -> pb::OpaqueRoute {
        use pb::opaque_route::{
            Distribution, RouteBackend, Rule, WeightedRouteBackend, distribution,
        };
        let route_backend = |backend| RouteBackend {
            backend: Some(backend),
            filters: Vec::new(),
        };
        let backends = match self.split_backends(svc) {
            Some(split) => distribution::Kind::RandomAvailable(distribution::RandomAvailable {
                backends: split
                    .into_iter()
                    .map(|(backend, weight)| WeightedRouteBackend {
                        backend: Some(route_backend(self.service_backend(
                            backend,
                            port,
                            service_meta(backend, port),
                        ))),
                        weight,
                    })
                    .collect(),
            }),
            None => distribution::Kind::FirstAvailable(distribution::FirstAvailable {
                backends: vec![route_backend(self.service_backend(
                    svc,
                    port,
                    routes::default_meta("service"),
                ))],
            }),
        };
        pb::OpaqueRoute {
            metadata: Some(routes::default_meta("opaq")),
            rules: vec![Rule {
                backends: Some(Distribution {
                    kind: Some(backends),
                }),
                filters: Vec::new(),
            }],
        }
    }

    /// The HTTPRoutes of both groups that attach to `parent`, in Linkerd's order (oldest
    /// first, then by name).
    pub(super) fn http_routes(&self, parent: Parent<'_>) -> Vec<pb::HttpRoute> {
        let policy_routes = self.policy.routes.iter().map(|(k, r)| (POLICY, k, r));
        let gateway_routes = self
            .policy
            .gateway
            .http
            .iter()
            .map(|(k, r)| (GATEWAY, k, r));
        let mut attached: Vec<_> = policy_routes
            .chain(gateway_routes)
            .filter(|(_, key, route)| parent.named_by(&route.spec.parent_refs, &key.ns))
            .collect();
        attached.sort_by(|a, b| route_order((a.0, a.1, a.2.created), (b.0, b.1, b.2.created)));
        attached
            .into_iter()
            .map(|(group, key, route)| pb::HttpRoute {
                metadata: Some(routes::resource_meta(
                    group,
                    &HttpRoute::kind(&()),
                    &key.ns,
                    &key.name,
                    0,
                )),
                hosts: routes::hosts(&route.spec),
                rules: route
                    .spec
                    .rules
                    .iter()
                    .map(|rule| self.route_rule(&key.ns, parent, route, rule))
                    .collect(),
            })
            .collect()
    }

    /// The route of a Service port without HTTPRoutes: to the Service itself, or, when a
    /// TrafficSplit names it as its apex, to the split's backends by weight (as an HTTPRoute
    /// with weighted backendRefs would).
    fn default_http_route(&self, svc: &ObjKey, port: u16) -> pb::HttpRoute {
        use pb::http_route::{Distribution, Rule, WeightedRouteBackend, distribution};
        let backends = match self.split_backends(svc) {
            Some(split) => distribution::Kind::RandomAvailable(distribution::RandomAvailable {
                backends: split
                    .into_iter()
                    .map(|(backend, weight)| {
                        let meta = service_meta(backend, port);
                        WeightedRouteBackend {
                            backend: Some(route_backend(
                                self.service_backend(backend, port, meta),
                                Vec::new(),
                            )),
                            weight,
                        }
                    })
                    .collect(),
            }),
            None => {
                let backend = self.service_backend(svc, port, routes::default_meta("service"));
                distribution::Kind::FirstAvailable(distribution::FirstAvailable {
                    backends: vec![route_backend(backend, Vec::new())],
                })
            }
        };
        let policy = self.services.get(svc).map(|info| &info.policy);
        let timeouts = policy.and_then(|p| p.timeouts.to_proto());
        let retry = policy.and_then(|p| p.retries.http.as_ref());
        #[allow(deprecated)]
        let rule = Rule {
            matches: vec![routes::prefix_match("/")],
            timeouts,
            retry: retry.map(Retry::to_http),
            backends: Some(Distribution {
                kind: Some(backends),
            }),
            ..Default::default()
        };
        pb::HttpRoute {
            metadata: Some(routes::default_meta("http")),
            hosts: Vec::new(),
            rules: vec![rule],
        }
    }

    fn route_rule(
        &self,
        route_ns: &str,
        parent: Parent<'_>,
        route: &RouteInfo,
        rule: &HttpRouteRule,
    ) -> pb::http_route::Rule {
        use pb::http_route::{Distribution, distribution};
        let backends = if rule.backend_refs.is_empty() {
            let backend = self.parent_backend(parent);
            distribution::Kind::FirstAvailable(distribution::FirstAvailable {
                backends: vec![route_backend(backend, Vec::new())],
            })
        } else {
            distribution::Kind::RandomAvailable(distribution::RandomAvailable {
                backends: rule
                    .backend_refs
                    .iter()
                    .map(|b| {
                        let target = BackendRef::from(b);
                        let (backend, filters) =
                            match self.resolve_backend(route_ns, parent, target) {
                                Resolved::Backend(backend) => {
                                    (backend, outbound_filters(routes::filters(&b.filters)))
                                }
                                Resolved::Invalid(Invalid { backend, message }) => {
                                    (backend, vec![http_failure(message)])
                                }
                            };
                        pb::http_route::WeightedRouteBackend {
                            backend: Some(route_backend(backend, filters)),
                            weight: weight(b.weight),
                        }
                    })
                    .collect(),
            })
        };
        let rule_request = rule
            .timeouts
            .as_ref()
            .and_then(|t| t.request.as_deref())
            .and_then(|t| parse_duration(t).ok())
            .filter(|t| !t.is_zero());
        let (parent_retries, parent_timeouts) = self.parent_defaults(parent);
        let timeouts = route.timeouts.for_rule(rule_request, parent_timeouts);
        // The route's own retry annotations replace the parent's.
        let retry = route
            .retries
            .http
            .as_ref()
            .or_else(|| parent_retries.and_then(|r| r.http.as_ref()));
        #[allow(deprecated)]
        pb::http_route::Rule {
            matches: routes::matches(&rule.matches),
            filters: outbound_filters(routes::filters(&rule.filters)),
            backends: Some(Distribution {
                kind: Some(backends),
            }),
            request_timeout: timeouts.request.map(routes::duration),
            timeouts: timeouts.to_proto(),
            retry: retry.map(Retry::<StatusRange>::to_http),
            ..Default::default()
        }
    }

    /// A route's backend: a Service port's balancer, the original destination for the
    /// EgressNetwork that is the route's parent, or else (a Service that does not exist, another
    /// EgressNetwork, another kind) Linkerd's invalid backend, whose requests fail.
    pub(super) fn resolve_backend(
        &self,
        route_ns: &str,
        parent: Parent<'_>,
        target: BackendRef<'_>,
    ) -> Resolved {
        let key = ObjKey::new(target.namespace.unwrap_or(route_ns), target.name);
        let port = target
            .port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(parent.port());
        let group = target.group.filter(|g| !g.is_empty()).unwrap_or(CORE_GROUP);
        let kind = target.kind.unwrap_or(SERVICE_KIND);
        let invalid = |metadata, message| {
            let backend = pb::Backend {
                metadata: Some(metadata),
                queue: Some(queue()),
                kind: None,
            };
            Resolved::Invalid(Invalid { backend, message })
        };
        match (group, kind) {
            (CORE_GROUP, SERVICE_KIND) if self.services.contains_key(&key) => {
                Resolved::Backend(self.service_backend(&key, port, service_meta(&key, port)))
            }
            (CORE_GROUP, SERVICE_KIND) => invalid(
                service_meta(&key, port),
                format!("Service {}/{} not found", key.ns, key.name),
            ),
            (POLICY, k) if k == EgressNetwork::kind(&()) => match parent {
                Parent::Egress { net, addr } if *net == key => {
                    Resolved::Backend(forward_backend(egress_meta(net, port), addr))
                }
                Parent::Egress { .. } => invalid(
                    egress_meta(&key, port),
                    "Route with EgressNetwork backend needs to have the same EgressNetwork as a \
                     parent"
                        .into(),
                ),
                Parent::Service { .. } => invalid(
                    egress_meta(&key, port),
                    "EgressNetwork backends attach to EgressNetwork parents only".into(),
                ),
            },
            _ => invalid(
                routes::default_meta("invalid"),
                format!("unsupported backend type {group} {kind}"),
            ),
        }
    }
}

/// A backend reference of a route rule, of either protocol.
#[derive(Clone, Copy, Debug)]
pub(super) struct BackendRef<'a> {
    /// Unset or empty means the core group.
    pub(super) group: Option<&'a str>,
    /// Unset means `Service`.
    pub(super) kind: Option<&'a str>,
    pub(super) name: &'a str,
    pub(super) namespace: Option<&'a str>,
    pub(super) port: Option<i32>,
}

/// The same reference in both route kinds' CRDs.
macro_rules! backend_ref_from {
    ($($crd:ty),*) => {$(
        impl<'a> From<&'a $crd> for BackendRef<'a> {
            fn from(b: &'a $crd) -> Self {
                Self {
                    group: b.group.as_deref(),
                    kind: b.kind.as_deref(),
                    name: &b.name,
                    namespace: b.namespace.as_deref(),
                    port: b.port,
                }
            }
        }
    )*};
}

backend_ref_from!(
    oxlink_crds::policy::httproute::HttpBackendRef,
    oxlink_crds::gateway::grpc_route::GrpcBackendRef
);

/// What a backend reference resolves to.
#[derive(Debug)]
pub(super) enum Resolved {
    /// A Service port's balancer, or the original destination.
    Backend(pb::Backend),
    Invalid(Invalid),
}

/// A backend that does not exist, and why: every request routed to it fails with status 500
/// and this message.
#[derive(Debug)]
pub(super) struct Invalid {
    pub(super) backend: pb::Backend,
    pub(super) message: String,
}

/// Status of the failure that a request to an invalid backend gets (gRPC routes send it as
/// the code, as Linkerd does).
pub(super) const INVALID_BACKEND_STATUS: u32 = 500;

/// A backend's weight; unset means 1.
pub(super) fn weight(w: Option<i32>) -> u32 {
    w.and_then(|w| u32::try_from(w).ok()).unwrap_or(1)
}

/// Linkerd's route order: routes with a creation time first, oldest first, then by name (and
/// by group and namespace, so the order is total).
pub(super) fn route_order(
    (a_group, a, a_created): (&str, &ObjKey, Option<i64>),
    (b_group, b, b_created): (&str, &ObjKey, Option<i64>),
) -> std::cmp::Ordering {
    (a_created.is_none(), a_created, &a.name, a_group, &a.ns).cmp(&(
        b_created.is_none(),
        b_created,
        &b.name,
        b_group,
        &b.ns,
    ))
}

#[allow(deprecated)]
fn route_backend(
    backend: pb::Backend,
    filters: Vec<pb::http_route::Filter>,
) -> pb::http_route::RouteBackend {
    pb::http_route::RouteBackend {
        backend: Some(backend),
        filters,
        request_timeout: None,
    }
}

/// Fails every request with status 500 and `message`.
fn http_failure(message: String) -> pb::http_route::Filter {
    pb::http_route::Filter {
        kind: Some(pb::http_route::filter::Kind::FailureInjector(
            http_route::HttpFailureInjector {
                status: INVALID_BACKEND_STATUS,
                message,
                ratio: None,
            },
        )),
    }
}

fn outbound_filters(filters: Vec<Filter>) -> Vec<pb::http_route::Filter> {
    use pb::http_route::filter::Kind;
    filters
        .into_iter()
        .map(|f| pb::http_route::Filter {
            kind: Some(match f {
                Filter::RequestHeaders(m) => Kind::RequestHeaderModifier(m),
                Filter::ResponseHeaders(m) => Kind::ResponseHeaderModifier(m),
                Filter::Redirect(r) => Kind::Redirect(r),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests;
