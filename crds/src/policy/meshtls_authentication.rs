//! `MeshTLSAuthentication`: a set of client mesh identities.

use super::{GROUP_PATTERN, KIND_PATTERN};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Clients authenticated by their mesh TLS identity.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1alpha1",
    kind = "MeshTLSAuthentication",
    root = "MeshTlsAuthentication",
    namespaced,
    shortname = "meshtlsauthn",
    derive = "PartialEq",
    doc = "A list of authenticated client identities, referenced by AuthorizationPolicies."
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.identities) != has(self.identityRefs)",
    "message": "exactly one of identities or identityRefs must be set",
}]))]
pub struct MeshTlsAuthenticationSpec {
    /// Client identities; `*` matches all and `*.suffix` matches a domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub identities: Option<Vec<MeshIdentity>>,

    /// Clients by ServiceAccount, or every ServiceAccount of a Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub identity_refs: Option<Vec<IdentityRef>>,
}

/// A mesh identity string (a DNS-like name or a SPIFFE ID), or a `*`-prefixed suffix match.
///
/// Unlike ServerAuthorization's, Linkerd's schema puts no pattern on these, so SPIFFE IDs
/// (`spiffe://trust.domain/path`) are accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct MeshIdentity(pub String);

/// A ServiceAccount or Namespace whose workloads' identities are authenticated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdentityRef {
    /// The referent's API group; empty or unset means the core group.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: Option<String>,

    /// `ServiceAccount` or `Namespace`.
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,

    /// The referent's name; unset means every resource of the kind in the namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,

    /// The referent's namespace; unset means the authentication's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub namespace: Option<String>,
}
