//! `HTTPLocalRateLimitPolicy`: per-proxy request rate limits on a Server.

use super::{LocalTargetRef, NamespacedTargetRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Limits the HTTP request rate that each proxy of a Server accepts.
// The printer columns repeat `type_` values, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1alpha1",
    kind = "HTTPLocalRateLimitPolicy",
    root = "HttpLocalRateLimitPolicy",
    plural = "httplocalratelimitpolicies",
    namespaced,
    status = "HttpLocalRateLimitPolicyStatus",
    derive = "PartialEq",
    doc = "Limits the rate of HTTP requests each proxy of a Server accepts.",
    printcolumn(
        name = "Target_kind",
        type_ = "string",
        description = "The resource kind to which the rate-limit applies",
        json_path = ".spec.targetRef.kind"
    ),
    printcolumn(
        name = "Target_name",
        type_ = "string",
        description = "The resource name to which the rate-limit applies",
        json_path = ".spec.targetRef.name"
    ),
    printcolumn(
        name = "Total_RPS",
        type_ = "integer",
        format = "int32",
        description = "The overall rate-limit",
        json_path = ".spec.total.requestsPerSecond"
    ),
    printcolumn(
        name = "Identity_RPS",
        type_ = "integer",
        format = "int32",
        description = "The rate-limit per identity",
        json_path = ".spec.identity.requestsPerSecond"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HttpLocalRateLimitPolicySpec {
    /// The Server the limits apply to.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.kind == 'Server'",
        "message": "only a Server can be rate-limited",
    }]))]
    pub target_ref: LocalTargetRef,

    /// A limit on all requests together; unset means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Limit>,

    /// A limit for each client identity; unset means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Limit>,

    /// Limits for specific clients, instead of `identity`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
}

/// A rate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// Requests per second.
    #[schemars(range(min = 0))]
    pub requests_per_second: i64,
}

/// A rate for specific clients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    /// Requests per second.
    #[schemars(range(min = 0))]
    pub requests_per_second: i64,

    /// The clients (ServiceAccounts) this rate applies to.
    pub client_refs: Vec<NamespacedTargetRef>,
}

/// What the control plane observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpLocalRateLimitPolicyStatus {
    /// Conditions such as `Accepted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The target the conditions are about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalTargetRef>,
}
