//! The outbound policy of a Service port: its HTTPRoutes (or a default route) to its backends,
//! opaque when the port is, with failure accrual from the Service's annotations.

use super::routes::{self, Filter};
use crate::index::{Index, ObjKey};
use kube::Resource;
use linkerd2_proxy_api::{http_route, meta, outbound as pb};
use oxlink_crds::{
    duration::parse_duration,
    names::{annotations, groups::POLICY},
    policy::{HttpRoute, httproute::HttpRouteRule},
};
use std::{collections::BTreeMap, time::Duration};

const DETECT_TIMEOUT: Duration = Duration::from_secs(10);
const QUEUE_CAPACITY: u32 = 100;
const FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);
const EWMA_DEFAULT_RTT: Duration = Duration::from_millis(30);
const EWMA_DECAY: Duration = Duration::from_secs(10);
/// The group Linkerd names core Services with in outbound metadata.
const CORE_GROUP: &str = "core";
const SERVICE_KIND: &str = "Service";

/// What a Service's annotations say about its outbound policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ServicePolicy {
    failure_accrual: Option<FailureAccrual>,
    timeouts: Timeouts,
}

/// Route timeouts from `timeout.linkerd.io/{request,response,idle}`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Timeouts {
    request: Option<Duration>,
    response: Option<Duration>,
    idle: Option<Duration>,
}

impl ServicePolicy {
    pub(crate) fn from_annotations(a: Option<&BTreeMap<String, String>>) -> Self {
        let Some(a) = a else {
            return Self::default();
        };
        let timeout = |key: &str| {
            let value = a.get(key)?;
            match parse_duration(value) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => None,
                Err(error) => {
                    tracing::info!(annotation = key, %value, %error, "ignoring a malformed timeout");
                    None
                }
            }
        };
        Self {
            failure_accrual: FailureAccrual::from_annotations(a),
            timeouts: Timeouts {
                request: timeout(annotations::TIMEOUT_REQUEST),
                response: timeout(annotations::TIMEOUT_RESPONSE),
                idle: timeout(annotations::TIMEOUT_IDLE),
            },
        }
    }
}

impl Timeouts {
    /// The rule's timeouts: the Service's, with the route's own request timeout first.
    fn to_proto(self, route_request: Option<Duration>) -> Option<http_route::Timeouts> {
        let request = route_request.or(self.request);
        if request.is_none() && self.response.is_none() && self.idle.is_none() {
            return None;
        }
        Some(http_route::Timeouts {
            request: request.map(routes::duration),
            response: self.response.map(routes::duration),
            idle: self.idle.map(routes::duration),
        })
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

fn service_meta(svc: &ObjKey, port: u16) -> meta::Metadata {
    routes::resource_meta(CORE_GROUP, SERVICE_KIND, &svc.ns, &svc.name, port)
}

fn queue() -> pb::Queue {
    pb::Queue {
        capacity: QUEUE_CAPACITY,
        failfast_timeout: Some(routes::duration(FAILFAST_TIMEOUT)),
    }
}

impl Index {
    /// The outbound policy of `port` on `svc`, or `None` if the Service is not indexed.
    pub(crate) fn outbound_policy(&self, svc: &ObjKey, port: u16) -> Option<pb::OutboundPolicy> {
        use pb::proxy_protocol::{Detect, Http1, Http2, Kind, Opaque};
        let info = self.services.get(svc)?;
        let opaque = Opaque {
            routes: vec![self.opaque_route(svc, port)],
        };
        let is_opaque = info
            .opaque_ports
            .as_ref()
            .unwrap_or(&self.config.default_opaque_ports)
            .contains(port);
        let kind = if is_opaque {
            Kind::Opaque(opaque)
        } else {
            let routes = self.service_routes(svc, port);
            let accrual = info
                .policy
                .failure_accrual
                .as_ref()
                .map(FailureAccrual::to_proto);
            Kind::Detect(Detect {
                timeout: Some(routes::duration(DETECT_TIMEOUT)),
                opaque: Some(opaque),
                http1: Some(Http1 {
                    routes: routes.clone(),
                    failure_accrual: accrual,
                }),
                http2: Some(Http2 {
                    routes,
                    failure_accrual: accrual,
                }),
            })
        };
        Some(pb::OutboundPolicy {
            protocol: Some(pb::ProxyProtocol { kind: Some(kind) }),
            metadata: Some(service_meta(svc, port)),
        })
    }

    /// The balancer over a Service port's endpoints (discovered through `Destination.Get`).
    fn service_backend(&self, svc: &ObjKey, port: u16, metadata: meta::Metadata) -> pb::Backend {
        use pb::backend::{BalanceP2c, EndpointDiscovery, Kind, balance_p2c, endpoint_discovery};
        pb::Backend {
            metadata: Some(metadata),
            queue: Some(queue()),
            kind: Some(Kind::Balancer(BalanceP2c {
                discovery: Some(EndpointDiscovery {
                    kind: Some(endpoint_discovery::Kind::Dst(
                        endpoint_discovery::DestinationGet {
                            path: format!(
                                "{}.{}.svc.{}:{port}",
                                svc.name, svc.ns, self.config.cluster_domain
                            ),
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

    fn opaque_route(&self, svc: &ObjKey, port: u16) -> pb::OpaqueRoute {
        use pb::opaque_route::{Distribution, RouteBackend, Rule, distribution};
        let backend = self.service_backend(svc, port, routes::default_meta("service"));
        pb::OpaqueRoute {
            metadata: Some(routes::default_meta("opaq")),
            rules: vec![Rule {
                backends: Some(Distribution {
                    kind: Some(distribution::Kind::FirstAvailable(
                        distribution::FirstAvailable {
                            backends: vec![RouteBackend {
                                backend: Some(backend),
                                filters: Vec::new(),
                            }],
                        },
                    )),
                }),
                filters: Vec::new(),
            }],
        }
    }

    /// The HTTPRoutes whose parent is this Service port, oldest first, or the default route.
    fn service_routes(&self, svc: &ObjKey, port: u16) -> Vec<pb::HttpRoute> {
        let mut attached: Vec<_> = self
            .policy
            .routes
            .iter()
            .filter(|(key, route)| {
                route.spec.parent_refs.iter().any(|p| {
                    p.kind.as_deref() == Some(SERVICE_KIND)
                        && p.group
                            .as_deref()
                            .is_none_or(|g| g.is_empty() || g == CORE_GROUP)
                        && p.name == svc.name
                        && p.namespace.as_deref().unwrap_or(&key.ns) == svc.ns
                        && p.port.is_none_or(|p| p == i32::from(port))
                })
            })
            .collect();
        if attached.is_empty() {
            return vec![self.default_http_route(svc, port)];
        }
        attached.sort_by(|a, b| (a.1.created, a.0).cmp(&(b.1.created, b.0)));
        attached
            .into_iter()
            .map(|(key, route)| pb::HttpRoute {
                metadata: Some(routes::resource_meta(
                    POLICY,
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
                    .map(|rule| self.route_rule(&key.ns, svc, port, rule))
                    .collect(),
            })
            .collect()
    }

    fn default_http_route(&self, svc: &ObjKey, port: u16) -> pb::HttpRoute {
        use pb::http_route::{Distribution, Rule, distribution};
        let backend = self.service_backend(svc, port, routes::default_meta("service"));
        let timeouts = self
            .services
            .get(svc)
            .and_then(|info| info.policy.timeouts.to_proto(None));
        #[allow(deprecated)]
        let rule = Rule {
            matches: vec![routes::prefix_match("/")],
            timeouts,
            backends: Some(Distribution {
                kind: Some(distribution::Kind::FirstAvailable(
                    distribution::FirstAvailable {
                        backends: vec![route_backend(backend, Vec::new())],
                    },
                )),
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
        parent: &ObjKey,
        port: u16,
        rule: &HttpRouteRule,
    ) -> pb::http_route::Rule {
        use pb::http_route::{Distribution, distribution};
        let backends = if rule.backend_refs.is_empty() {
            let backend = self.service_backend(parent, port, service_meta(parent, port));
            distribution::Kind::FirstAvailable(distribution::FirstAvailable {
                backends: vec![route_backend(backend, Vec::new())],
            })
        } else {
            distribution::Kind::RandomAvailable(distribution::RandomAvailable {
                backends: rule
                    .backend_refs
                    .iter()
                    .map(|b| {
                        let ns = b.namespace.as_deref().unwrap_or(route_ns);
                        let key = ObjKey::new(ns, b.name.clone());
                        let port = b.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(port);
                        let is_service = b.kind.as_deref().is_none_or(|k| k == SERVICE_KIND);
                        let (backend, filters) = if is_service && self.services.contains_key(&key) {
                            let backend =
                                self.service_backend(&key, port, service_meta(&key, port));
                            (backend, outbound_filters(routes::filters(&b.filters)))
                        } else {
                            invalid_backend(&key, port)
                        };
                        pb::http_route::WeightedRouteBackend {
                            backend: Some(route_backend(backend, filters)),
                            weight: b.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(1),
                        }
                    })
                    .collect(),
            })
        };
        let route_request = rule
            .timeouts
            .as_ref()
            .and_then(|t| t.request.as_deref())
            .and_then(|t| parse_duration(t).ok())
            .filter(|t| !t.is_zero());
        let timeouts = self
            .services
            .get(parent)
            .map(|info| info.policy.timeouts)
            .unwrap_or_default()
            .to_proto(route_request);
        #[allow(deprecated)]
        pb::http_route::Rule {
            matches: routes::matches(&rule.matches),
            filters: outbound_filters(routes::filters(&rule.filters)),
            backends: Some(Distribution {
                kind: Some(backends),
            }),
            request_timeout: route_request.map(routes::duration),
            timeouts,
            ..Default::default()
        }
    }
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

/// A backend that does not exist: every request routed to it fails with 500.
fn invalid_backend(svc: &ObjKey, port: u16) -> (pb::Backend, Vec<pb::http_route::Filter>) {
    let backend = pb::Backend {
        metadata: Some(service_meta(svc, port)),
        queue: Some(queue()),
        kind: None,
    };
    let fail = pb::http_route::Filter {
        kind: Some(pb::http_route::filter::Kind::FailureInjector(
            linkerd2_proxy_api::http_route::HttpFailureInjector {
                status: 500,
                message: format!("Service {}/{} not found", svc.ns, svc.name),
                ratio: None,
            },
        )),
    };
    (backend, vec![fail])
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
