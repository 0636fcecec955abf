//! `HTTPRoute` (`gateway.networking.k8s.io/v1`, also served as `v1beta1`): the Gateway API's
//! HTTP route, whose fields the mesh uses are the policy HTTPRoute's.

use crate::policy::httproute::{Hostname, HttpRouteRule, ParentReference};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Routes HTTP requests for the parents it attaches to.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    root = "HttpRoute",
    plural = "httproutes",
    namespaced,
    derive = "PartialEq",
    doc = "A Gateway API HTTPRoute; the mesh reads it when a Service is its parent."
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// What the route attaches to; outbound policy reads Service parents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub parent_refs: Vec<ParentReference>,

    /// Host header values the route matches; unset matches every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<Hostname>,

    /// Matchers, filters, backends and timeouts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub rules: Vec<HttpRouteRule>,
}
