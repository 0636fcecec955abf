//! The Gateway API (`gateway.networking.k8s.io`) routes that outbound policy reads when they
//! name a Service as their parent: HTTPRoute (`v1`, also served as `v1beta1`) and GRPCRoute
//! (`v1`).
//!
//! Only the fields the mesh uses are modelled, with the policy HTTPRoute's types where the two
//! APIs agree. oxlink does not install these CRDs (Linkerd's `installGatewayAPI` defaults to
//! false): [`crds`] renders minimal ones from these types for clusters and tests without the
//! upstream bundle. A route using a feature the mesh does not implement (a `RequestMirror`
//! filter, say) does not deserialize and is skipped, as Linkerd skips routes it cannot convert.

pub mod grpc_route;
pub mod http_route;

pub use self::{
    grpc_route::{GrpcRoute, GrpcRouteSpec},
    http_route::{HttpRoute, HttpRouteSpec},
};

use crate::{install::with_served, names::annotations::API_APPROVED, served::Served};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// HTTPRoute's older served version.
const HTTP_ROUTE_SERVED: &[Served] = &[Served::new("v1beta1")];
/// The approval the upstream bundle (v1.1) cites; the API server requires one for a
/// `*.k8s.io` group.
const APPROVAL: &str = "https://github.com/kubernetes-sigs/gateway-api/pull/2997";

/// Minimal CRDs for the Gateway API routes, generated from these types (not the upstream
/// bundle): HTTPRoute `v1` + `v1beta1` and GRPCRoute `v1`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        with_served::<HttpRoute>(HTTP_ROUTE_SERVED),
        GrpcRoute::crd(),
    ];
    for crd in &mut crds {
        crd.metadata
            .annotations
            .get_or_insert_default()
            .insert(API_APPROVED.into(), APPROVAL.into());
    }
    crds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::groups;
    use kube::Resource;
    use serde_json::json;

    #[test]
    fn crds_name_the_gateway_group_and_versions() {
        assert_eq!(HttpRoute::group(&()), groups::GATEWAY);
        assert_eq!(GrpcRoute::group(&()), groups::GATEWAY);
        let crds = crds();
        let names: Vec<_> = crds
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "httproutes.gateway.networking.k8s.io",
                "grpcroutes.gateway.networking.k8s.io"
            ]
        );
        let versions = |i: usize| -> Vec<(String, bool)> {
            crds[i]
                .spec
                .versions
                .iter()
                .map(|v| (v.name.clone(), v.storage))
                .collect()
        };
        assert_eq!(
            versions(0),
            [("v1".to_string(), true), ("v1beta1".to_string(), false)]
        );
        assert_eq!(versions(1), [("v1".to_string(), true)]);
        for crd in &crds {
            let approved = crd.metadata.annotations.as_ref().unwrap().get(API_APPROVED);
            assert!(approved.is_some_and(|a| a.starts_with("https://")));
        }
    }

    #[test]
    fn routes_deserialize_from_gateway_manifests() {
        let route: GrpcRoute = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GRPCRoute",
            "metadata": {"namespace": "ns", "name": "r"},
            "spec": {
                "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 8080}],
                "rules": [{
                    "matches": [{
                        "method": {"service": "pkg.Svc", "method": "Get"},
                        "headers": [{"name": "x-user", "value": "a"}],
                    }],
                    "backendRefs": [{"name": "web", "port": 8080, "weight": 3}],
                }],
            },
        }))
        .unwrap();
        let rule = &route.spec.rules[0];
        let method = rule.matches[0].method.as_ref().unwrap();
        assert_eq!(method.kind, None);
        assert_eq!(method.service.as_deref(), Some("pkg.Svc"));
        assert_eq!(rule.backend_refs[0].weight, Some(3));

        let mirror = serde_json::from_value::<GrpcRoute>(json!({
            "metadata": {"namespace": "ns", "name": "r"},
            "spec": {"rules": [{"filters": [{"type": "RequestMirror"}]}]},
        }));
        assert!(
            mirror.is_err(),
            "an unsupported filter does not deserialize"
        );

        let http: HttpRoute = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "HTTPRoute",
            "metadata": {"namespace": "ns", "name": "r"},
            "spec": {
                "parentRefs": [{"kind": "Service", "name": "web"}],
                "rules": [{"matches": [{"path": {"type": "Exact", "value": "/a"}}]}],
            },
        }))
        .unwrap();
        assert_eq!(http.spec.parent_refs[0].name, "web");
    }
}
