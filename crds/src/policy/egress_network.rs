//! `EgressNetwork`: traffic leaving the cluster to a set of networks, and its default policy.

use super::{MAX_NETWORKS, Network};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Captures traffic to destinations outside the cluster.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1alpha1",
    kind = "EgressNetwork",
    namespaced,
    category = "policy",
    status = "EgressNetworkStatus",
    derive = "PartialEq",
    doc = "Captures traffic to egress destinations."
)]
#[serde(rename_all = "camelCase")]
pub struct EgressNetworkSpec {
    /// The verdict for traffic that no route attached to this network describes.
    pub traffic_policy: TrafficPolicy,

    /// The networks; unset means every address outside the cluster's networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NETWORKS))]
    pub networks: Vec<Network>,
}

/// The verdict for egress traffic that no route describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TrafficPolicy {
    /// Let it through.
    Allow,
    /// Refuse it.
    Deny,
}

/// What the control plane observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EgressNetworkStatus {
    /// Conditions such as `Accepted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
