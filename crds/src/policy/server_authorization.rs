//! `ServerAuthorization`: the original way of authorizing clients of a `Server`.
//!
//! Served as `v1beta1` (storage) and the deprecated `v1alpha1`, with one schema.

use super::{IDENTITY_PATTERN, LABEL_PATTERN, MAX_NETWORKS, Network};
use crate::served::Served;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Authorizes clients to reach servers in the same namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1beta1",
    kind = "ServerAuthorization",
    namespaced,
    shortname = "saz",
    shortname = "serverauthz",
    shortname = "srvauthz",
    derive = "PartialEq",
    doc = "Authorizes clients to communicate with servers in the same namespace.",
    printcolumn(
        name = "Server",
        type_ = "string",
        description = "The server that this grants access to",
        json_path = ".spec.server.name"
    )
)]
pub struct ServerAuthorizationSpec {
    /// The servers this authorization applies to.
    pub server: ServerSelector,

    /// The clients it authorizes.
    pub client: Client,
}

/// Servers in the authorization's namespace, by name or by label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.name) != has(self.selector)",
    "message": "exactly one of name or selector must be set",
}]))]
pub struct ServerSelector {
    /// A `Server`'s name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LABEL_PATTERN))]
    pub name: Option<String>,

    /// A label query over `Server`s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Who is authorized.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// Client networks; unset means the control plane's default (all, or the cluster's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NETWORKS))]
    pub networks: Vec<Network>,

    /// Authorizes clients without TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unauthenticated: bool,

    /// Authorizes meshed clients.
    #[serde(rename = "meshTLS", skip_serializing_if = "Option::is_none")]
    pub mesh_tls: Option<MeshTls>,
}

/// Meshed clients, by identity or ServiceAccount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshTls {
    /// Clients on TLS without an identity (such as proxies asking for their first certificate).
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        rename = "unauthenticatedTLS"
    )]
    pub unauthenticated_tls: bool,

    /// Client identities; `*` matches all and `*.suffix` matches a domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<Identity>,

    /// Client ServiceAccounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccountRef>,
}

/// A mesh identity string, or a `*`-prefixed suffix match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Identity(#[schemars(regex(pattern = IDENTITY_PATTERN))] pub String);

/// A ServiceAccount, in the authorization's namespace unless `namespace` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAccountRef {
    /// The ServiceAccount's name.
    #[schemars(regex(pattern = LABEL_PATTERN))]
    pub name: String,

    /// The ServiceAccount's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// The older version, served with the same schema.
pub(crate) const SERVED: &[Served] = &[Served::deprecated(
    "v1alpha1",
    "policy.linkerd.io/v1alpha1 ServerAuthorization is deprecated; use policy.linkerd.io/v1beta1 ServerAuthorization",
)];
