//! `Server`: a port on a set of pods (or external workloads) that policy applies to.
//!
//! Served as `v1beta3` (storage), `v1beta2`, and the deprecated `v1beta1` and `v1alpha1`, with
//! one schema: manifests written for any of them apply unchanged.

use crate::{schema, served::Served};
use k8s_openapi::apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Selects a port on pods or external workloads.
// The printer columns repeat `type_` values, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1beta3",
    kind = "Server",
    namespaced,
    shortname = "srv",
    derive = "PartialEq",
    doc = "Describes a port on a set of pods or external workloads to which policy applies.",
    printcolumn(
        name = "Port",
        type_ = "string",
        description = "The port the server is listening on",
        json_path = ".spec.port"
    ),
    printcolumn(
        name = "Protocol",
        type_ = "string",
        description = "The protocol of the server",
        json_path = ".spec.proxyProtocol"
    ),
    printcolumn(
        name = "Access Policy",
        type_ = "string",
        description = "The policy for traffic that no authorization matches",
        json_path = ".spec.accessPolicy"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.podSelector) != has(self.externalWorkloadSelector)",
    "message": "exactly one of podSelector or externalWorkloadSelector must be set",
}]))]
pub struct ServerSpec {
    /// Selects pods in the server's namespace; an empty selector selects all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,

    /// Selects ExternalWorkloads in the server's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_workload_selector: Option<LabelSelector>,

    /// A port number, or the name of a port in the selected pods' spec.
    #[schemars(schema_with = "schema::port_or_name")]
    pub port: IntOrString,

    /// How the proxy treats inbound connections; supersedes the `opaque-ports` annotation.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,

    /// What happens to traffic that no authorization policy matches.
    #[serde(default)]
    pub access_policy: AccessPolicy,
}

/// How the proxy treats connections to a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ProxyProtocol {
    /// Detect HTTP, fall back to opaque TCP.
    #[default]
    #[serde(rename = "unknown")]
    Unknown,
    /// HTTP/1.x, without detection.
    #[serde(rename = "HTTP/1")]
    Http1,
    /// HTTP/2, without detection.
    #[serde(rename = "HTTP/2")]
    Http2,
    /// gRPC (HTTP/2), without detection.
    #[serde(rename = "gRPC")]
    Grpc,
    /// Opaque TCP: no detection, no HTTP features.
    #[serde(rename = "opaque")]
    Opaque,
    /// TLS passed through to the application.
    #[serde(rename = "TLS")]
    Tls,
}

/// The verdict for traffic that no authorization matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AccessPolicy {
    /// Refuse it.
    #[default]
    Deny,
    /// Allow meshed clients.
    AllAuthenticated,
    /// Allow everyone.
    AllUnauthenticated,
    /// Allow meshed clients from the cluster's networks.
    ClusterAuthenticated,
    /// Allow everyone from the cluster's networks.
    ClusterUnauthenticated,
    /// Allow everything but report what would have been refused.
    Audit,
}

/// Older versions, served with the same schema.
pub(crate) const SERVED: &[Served] = &[
    Served::deprecated(
        "v1alpha1",
        "policy.linkerd.io/v1alpha1 Server is deprecated; use policy.linkerd.io/v1beta3 Server",
    ),
    Served::deprecated(
        "v1beta1",
        "policy.linkerd.io/v1beta1 Server is deprecated; use policy.linkerd.io/v1beta3 Server",
    ),
    Served::new("v1beta2"),
];
