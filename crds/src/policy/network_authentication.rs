//! `NetworkAuthentication`: a set of client networks.

use super::{MAX_NETWORKS, Network};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Clients authenticated by their source address.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1alpha1",
    kind = "NetworkAuthentication",
    namespaced,
    shortname = "netauthn",
    shortname = "networkauthn",
    derive = "PartialEq",
    doc = "A list of authenticated client networks, referenced by AuthorizationPolicies."
)]
pub struct NetworkAuthenticationSpec {
    /// The client networks.
    #[schemars(length(max = MAX_NETWORKS))]
    pub networks: Vec<Network>,
}
