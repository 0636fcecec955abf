//! GRPCRoutes with a Service or EgressNetwork parent, as the outbound policy's gRPC routes:
//! matches on service, method and headers, request-header filters, weighted backends, and the
//! parent's timeouts and retries unless the route has its own.

use super::{
    gateway::GrpcRouteInfo,
    outbound::{BackendRef, INVALID_BACKEND_STATUS, Invalid, Resolved, route_order, weight},
    parent::Parent,
    retry::{GrpcCode, Retry},
    routes,
};
use crate::index::Index;
use kube::Resource;
use linkerd2_proxy_api::{grpc_route as grpc, outbound as pb};
use oxlink_crds::{
    gateway::{
        GrpcRoute,
        grpc_route::{GrpcFilterType, GrpcRouteFilter, GrpcRouteMatch, GrpcRouteRule},
    },
    names::groups::GATEWAY,
};

impl Index {
    /// The GRPCRoutes that attach to `parent`, oldest first (then by name); empty when there
    /// are none.
    pub(super) fn grpc_routes(&self, parent: Parent<'_>) -> Vec<pb::GrpcRoute> {
        let mut attached: Vec<_> = self
            .policy
            .gateway
            .grpc
            .iter()
            .filter(|(key, route)| parent.named_by(&route.spec.parent_refs, &key.ns))
            .collect();
        attached
            .sort_by(|a, b| route_order((GATEWAY, a.0, a.1.created), (GATEWAY, b.0, b.1.created)));
        attached
            .into_iter()
            .map(|(key, route)| pb::GrpcRoute {
                metadata: Some(routes::resource_meta(
                    GATEWAY,
                    &GrpcRoute::kind(&()),
                    &key.ns,
                    &key.name,
                    0,
                )),
                hosts: routes::host_matches(&route.spec.hostnames),
                rules: route
                    .spec
                    .rules
                    .iter()
                    .map(|rule| self.grpc_rule(&key.ns, parent, route, rule))
                    .collect(),
            })
            .collect()
    }

    fn grpc_rule(
        &self,
        route_ns: &str,
        parent: Parent<'_>,
        route: &GrpcRouteInfo,
        rule: &GrpcRouteRule,
    ) -> pb::grpc_route::Rule {
        use pb::grpc_route::{Distribution, WeightedRouteBackend, distribution};
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
                                Resolved::Backend(backend) => (backend, filters(&b.filters)),
                                Resolved::Invalid(Invalid { backend, message }) => {
                                    (backend, vec![grpc_failure(message)])
                                }
                            };
                        WeightedRouteBackend {
                            backend: Some(route_backend(backend, filters)),
                            weight: weight(b.weight),
                        }
                    })
                    .collect(),
            })
        };
        let (parent_retries, parent_timeouts) = self.parent_defaults(parent);
        let timeouts = route.timeouts.for_rule(None, parent_timeouts);
        // The route's own retry annotations replace the parent's.
        let retry = route
            .retries
            .grpc
            .as_ref()
            .or_else(|| parent_retries.and_then(|r| r.grpc.as_ref()));
        #[allow(deprecated)]
        pb::grpc_route::Rule {
            matches: matches(&rule.matches),
            filters: filters(&rule.filters),
            backends: Some(Distribution {
                kind: Some(backends),
            }),
            timeouts: timeouts.to_proto(),
            request_timeout: timeouts.request.map(routes::duration),
            retry: retry.map(Retry::<GrpcCode>::to_grpc),
            ..Default::default()
        }
    }
}

/// A rule's matches; a rule without any matches every call.
fn matches(list: &[GrpcRouteMatch]) -> Vec<grpc::GrpcRouteMatch> {
    if list.is_empty() {
        return vec![grpc::GrpcRouteMatch::default()];
    }
    list.iter()
        .map(|m| grpc::GrpcRouteMatch {
            rpc: m.method.as_ref().map(|method| grpc::GrpcRpcMatch {
                service: method.service.clone().unwrap_or_default(),
                method: method.method.clone().unwrap_or_default(),
            }),
            headers: routes::header_matches(&m.headers),
        })
        .collect()
}

/// The filters the proxy applies to gRPC routes: request-header changes. A response-header
/// filter has no gRPC form and is skipped.
fn filters(list: &[GrpcRouteFilter]) -> Vec<pb::grpc_route::Filter> {
    use pb::grpc_route::filter::Kind;
    list.iter()
        .filter_map(|f| match f.kind {
            GrpcFilterType::RequestHeaderModifier => {
                let (add, set, remove) = routes::headers(f.request_header_modifier.as_ref()?);
                Some(pb::grpc_route::Filter {
                    kind: Some(Kind::RequestHeaderModifier(
                        linkerd2_proxy_api::http_route::RequestHeaderModifier { add, set, remove },
                    )),
                })
            }
            GrpcFilterType::ResponseHeaderModifier => {
                tracing::debug!("skipping a response header filter on a gRPC route");
                None
            }
        })
        .collect()
}

#[allow(deprecated)]
fn route_backend(
    backend: pb::Backend,
    filters: Vec<pb::grpc_route::Filter>,
) -> pb::grpc_route::RouteBackend {
    pb::grpc_route::RouteBackend {
        backend: Some(backend),
        filters,
        request_timeout: None,
    }
}

/// Fails every call with `message`.
fn grpc_failure(message: String) -> pb::grpc_route::Filter {
    pb::grpc_route::Filter {
        kind: Some(pb::grpc_route::filter::Kind::FailureInjector(
            grpc::GrpcFailureInjector {
                code: INVALID_BACKEND_STATUS,
                message,
                ratio: None,
            },
        )),
    }
}
