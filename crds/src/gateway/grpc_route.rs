//! `GRPCRoute` (`gateway.networking.k8s.io/v1`): routes gRPC calls by service, method and
//! headers.

use crate::policy::httproute::{HeaderModifier, Hostname, HttpHeaderMatch, ParentReference};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Routes gRPC calls for the parents it attaches to.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GRPCRoute",
    root = "GrpcRoute",
    plural = "grpcroutes",
    namespaced,
    derive = "PartialEq",
    doc = "A Gateway API GRPCRoute; the mesh reads it when a Service is its parent."
)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// What the route attaches to; outbound policy reads Service parents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub parent_refs: Vec<ParentReference>,

    /// Host header values the route matches; unset matches every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<Hostname>,

    /// Matchers, filters and backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub rules: Vec<GrpcRouteRule>,
}

/// Calls matching any of `matches` are filtered and sent to `backendRefs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// Conditions, any of which selects the rule; unset matches every call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<GrpcRouteMatch>,

    /// Processing applied to matched calls, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub filters: Vec<GrpcRouteFilter>,

    /// Where matched calls go, split by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub backend_refs: Vec<GrpcBackendRef>,
}

/// Conditions on a call; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrpcRouteMatch {
    /// The gRPC service and method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,

    /// Request headers, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HttpHeaderMatch>,
}

/// A condition on the called service and method; an unset one matches any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.service) || has(self.method)",
    "message": "one or both of service and method must be specified",
}]))]
pub struct GrpcMethodMatch {
    /// How `service` and `method` are compared; unset means `Exact`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<GrpcMethodMatchType>,

    /// The fully qualified service, e.g. `pkg.Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub service: Option<String>,

    /// The method name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub method: Option<String>,
}

/// How a gRPC service and method are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum GrpcMethodMatchType {
    /// Exactly.
    #[default]
    Exact,
    /// A regular expression.
    RegularExpression,
}

/// A processing step for matched calls; `type` names which field holds its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteFilter {
    /// Which filter this is.
    #[serde(rename = "type")]
    pub kind: GrpcFilterType,

    /// Settings of a `RequestHeaderModifier` filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,

    /// Settings of a `ResponseHeaderModifier` filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
}

/// The GRPCRoute filters the mesh reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum GrpcFilterType {
    /// Changes request headers.
    RequestHeaderModifier,
    /// Changes response headers (the proxy cannot apply it to gRPC routes; skipped).
    ResponseHeaderModifier,
}

/// A backend (a Service port) for matched calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcBackendRef {
    /// The backend's API group; empty or unset means the core group (a Service).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub group: Option<String>,

    /// The backend's kind; unset means `Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: Option<String>,

    /// The backend's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The backend's namespace; unset means the route's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// The Service port.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// This backend's share of the rule's traffic; unset means 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub weight: Option<i32>,

    /// Filters applied only to calls sent to this backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub filters: Vec<GrpcRouteFilter>,
}
