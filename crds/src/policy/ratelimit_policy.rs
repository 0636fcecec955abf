//! `HTTPLocalRateLimitPolicy`: per-proxy request rate limits on a Server.

use super::{LABEL_PATTERN, LocalTargetRef, NamespacedTargetRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator};
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
    /// Requests per second: at least 1, and at most 2^32 - 1 (Linkerd reads it as a `u32`).
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub requests_per_second: i64,
}

/// A rate for specific clients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    /// Requests per second: at least 1, and at most 2^32 - 1 (Linkerd reads it as a `u32`).
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub requests_per_second: i64,

    /// The clients (ServiceAccounts) this rate applies to.
    #[schemars(schema_with = "client_refs")]
    pub client_refs: Vec<NamespacedTargetRef>,
}

/// An override's clients: Linkerd bounds their namespace as a DNS label (1-63 characters),
/// unlike the namespace of other policy references.
fn client_refs(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<NamespacedTargetRef>>();
    if let Some(namespace) = schema
        .pointer_mut("/items/properties/namespace")
        .and_then(|n| n.as_object_mut())
    {
        namespace.insert("minLength".into(), 1.into());
        namespace.insert("maxLength".into(), 63.into());
        namespace.insert("pattern".into(), LABEL_PATTERN.into());
    }
    schema
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    fn schema() -> Value {
        let crd = serde_json::to_value(HttpLocalRateLimitPolicy::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    }

    #[test]
    fn rates_are_positive_u32s_as_linkerd_reads_them() {
        let spec = schema();
        for rate in [
            &spec["properties"]["total"]["properties"]["requestsPerSecond"],
            &spec["properties"]["identity"]["properties"]["requestsPerSecond"],
            &spec["properties"]["overrides"]["items"]["properties"]["requestsPerSecond"],
        ] {
            assert_eq!(rate["minimum"], json!(1.0), "{rate}");
            assert_eq!(rate["maximum"], json!(4294967295.0), "{rate}");
        }
    }

    #[test]
    fn override_client_namespaces_are_dns_labels() {
        let spec = schema();
        let namespace = &spec["properties"]["overrides"]["items"]["properties"]["clientRefs"]["items"]
            ["properties"]["namespace"];
        assert_eq!(namespace["maxLength"], 63, "{namespace}");
        assert_eq!(namespace["minLength"], 1, "{namespace}");
        assert_eq!(namespace["pattern"], LABEL_PATTERN, "{namespace}");
    }
}
