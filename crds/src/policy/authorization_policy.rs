//! `AuthorizationPolicy`: authorizes clients that satisfy every referenced authentication.

use super::{LocalTargetRef, NamespacedTargetRef};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Authorizes clients of a target (a Server, a route, or a whole namespace).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1alpha1",
    kind = "AuthorizationPolicy",
    namespaced,
    shortname = "authzpolicy",
    derive = "PartialEq",
    doc = "Authorizes clients to communicate with Linkerd-proxied server resources."
)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// What the policy applies to: a Server, an HTTPRoute or GRPCRoute, or a Namespace.
    pub target_ref: LocalTargetRef,

    /// Authentications a client must all satisfy: MeshTLSAuthentication,
    /// NetworkAuthentication or ServiceAccount references. Empty authorizes every client.
    pub required_authentication_refs: Vec<NamespacedTargetRef>,
}
