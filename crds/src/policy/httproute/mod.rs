//! `HTTPRoute` (`policy.linkerd.io`): Gateway API-shaped HTTP routes attached to a Server
//! (inbound) or a Service (outbound).
//!
//! Served as `v1beta3` (storage), `v1beta2`, `v1beta1` and `v1alpha1`, with one schema.

mod filters;
mod matches;

pub use self::{filters::*, matches::*};

use super::{GROUP_PATTERN, KIND_PATTERN, LABEL_PATTERN, SUBDOMAIN_PATTERN};
use crate::served::Served;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Gateway API duration: `1h`, `10s`, `1m30s`, `500ms`.
const GATEWAY_DURATION_PATTERN: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";
/// A hostname, possibly with a leading wildcard label.
const HOSTNAME_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Routes HTTP requests for the parents it attaches to.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1beta3",
    kind = "HTTPRoute",
    root = "HttpRoute",
    plural = "httproutes",
    namespaced,
    status = "HttpRouteStatus",
    derive = "PartialEq",
    doc = "Routes HTTP requests by hostname, path, header, query parameter or method, \
           with filters, backends and timeouts.",
    printcolumn(name = "Hostnames", type_ = "string", json_path = ".spec.hostnames"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// What the route attaches to: Servers (inbound) or Services (outbound).
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
    pub rules: Vec<HttpRouteRule>,
}

/// A hostname, possibly with a leading wildcard label (`*.example.com`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Hostname(
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_PATTERN))] pub String,
);

/// A resource the route attaches to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// The parent's API group (`policy.linkerd.io` for a Server, empty for a Service).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: Option<String>,

    /// The parent's kind: `Server` or `Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: Option<String>,

    /// The parent's namespace; unset means the route's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL_PATTERN))]
    pub namespace: Option<String>,

    /// The parent's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// A section of the parent, e.g. a listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SUBDOMAIN_PATTERN))]
    pub section_name: Option<String>,

    /// A port of the parent (a Service port for outbound routes).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Requests matching any of `matches` are filtered and sent to `backendRefs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Conditions, any of which selects the rule; unset matches every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<HttpRouteMatch>,

    /// Processing applied to matched requests, in order. `ResponseHeaderModifier` is a
    /// backend's filter only: Linkerd's schema refuses it here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [{
        "rule": "self.all(f, f.type != 'ResponseHeaderModifier')",
        "message": "a rule's filters are RequestHeaderModifier or RequestRedirect; ResponseHeaderModifier belongs in a backendRef's filters",
    }]))]
    pub filters: Vec<HttpRouteFilter>,

    /// Where matched requests go, split by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub backend_refs: Vec<HttpBackendRef>,

    /// Timeouts for matched requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
}

/// A backend (a Service port) for matched requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// The backend's API group; empty or unset means the core group (a Service).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: Option<String>,

    /// The backend's kind; unset means `Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: Option<String>,

    /// The backend's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The backend's namespace; unset means the route's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL_PATTERN))]
    pub namespace: Option<String>,

    /// The Service port.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// This backend's share of the rule's traffic; unset means 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub weight: Option<i32>,

    /// Filters applied only to requests sent to this backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub filters: Vec<HttpRouteFilter>,
}

/// How long requests may take.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s') && duration(self.backendRequest) > duration(self.request))",
    "message": "backendRequest timeout cannot be longer than request timeout",
}]))]
pub struct HttpRouteTimeouts {
    /// The whole request, retries included; `0s` disables the timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GATEWAY_DURATION_PATTERN))]
    pub request: Option<String>,

    /// Each attempt to a backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GATEWAY_DURATION_PATTERN))]
    pub backend_request: Option<String>,
}

/// What the controllers that own the parents observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpRouteStatus {
    /// One entry per parent a controller has processed.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub parents: Vec<RouteParentStatus>,
}

/// The status of the route for one parent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent.
    pub parent_ref: ParentReference,

    /// The controller that wrote this entry, e.g. `linkerd.io/policy-controller`.
    #[schemars(length(min = 1, max = 253))]
    pub controller_name: String,

    /// Conditions such as `Accepted` and `ResolvedRefs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub conditions: Vec<Condition>,
}

/// Older versions, served with the same schema.
pub(crate) const SERVED: &[Served] = &[
    Served::new("v1alpha1"),
    Served::new("v1beta1"),
    Served::new("v1beta2"),
];

#[cfg(test)]
mod tests;
