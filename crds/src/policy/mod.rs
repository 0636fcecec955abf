//! The `policy.linkerd.io` resources: which servers exist, who may reach them, how HTTP is
//! routed, rate-limited and let out of the cluster.

pub mod authorization_policy;
pub mod egress_network;
pub mod httproute;
pub mod meshtls_authentication;
pub mod network_authentication;
pub mod ratelimit_policy;
pub mod server;
pub mod server_authorization;

pub use self::{
    authorization_policy::{AuthorizationPolicy, AuthorizationPolicySpec},
    egress_network::{EgressNetwork, EgressNetworkSpec, EgressNetworkStatus, TrafficPolicy},
    httproute::{HttpRoute, HttpRouteSpec, HttpRouteStatus},
    meshtls_authentication::{MeshTlsAuthentication, MeshTlsAuthenticationSpec},
    network_authentication::{NetworkAuthentication, NetworkAuthenticationSpec},
    ratelimit_policy::{
        HttpLocalRateLimitPolicy, HttpLocalRateLimitPolicySpec, HttpLocalRateLimitPolicyStatus,
    },
    server::{AccessPolicy, ProxyProtocol, Server, ServerSpec},
    server_authorization::{ServerAuthorization, ServerAuthorizationSpec},
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kubernetes API group, possibly empty (the core group).
const GROUP_PATTERN: &str = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A DNS-1123 subdomain: a section name, a redirect's hostname.
const SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Kubernetes kind.
const KIND_PATTERN: &str = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$";
/// A DNS-1123 label: namespace, ServiceAccount and Server names.
const LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A mesh identity, or a `*`-prefixed suffix match of one.
const IDENTITY_PATTERN: &str =
    r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A reference to a resource in the referrer's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalTargetRef {
    /// The referent's API group; empty or unset means the core group.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: Option<String>,

    /// The referent's kind.
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,

    /// The referent's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to a resource, in the referrer's namespace unless `namespace` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NamespacedTargetRef {
    /// The referent's API group; empty or unset means the core group.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: Option<String>,

    /// The referent's kind.
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,

    /// The referent's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The referent's namespace; unset means the referrer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub namespace: Option<String>,
}

/// The most networks one resource lists (bounds the cost of the CIDR checks).
pub(crate) const MAX_NETWORKS: u32 = 128;

/// A client network, as a CIDR with exceptions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Network {
    /// The network, e.g. `10.0.0.0/8`; a bare address means a single host.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "isCIDR(self) || isIP(self)",
        "message": "must be a CIDR such as 10.0.0.0/8 or an IP address",
    }]))]
    #[schemars(length(min = 1, max = 64))]
    pub cidr: String,

    /// Networks or addresses inside `cidr` that are excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NETWORKS))]
    pub except: Vec<String>,
}
