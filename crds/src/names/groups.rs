//! API groups of the custom resources.
//!
//! The `#[kube(group = …)]` attributes on the types must spell these literally (the derive takes
//! a string literal); a unit test checks that every type's `group()` is one of these constants.

/// ServiceProfile.
pub const LINKERD: &str = "linkerd.io";
/// Server, ServerAuthorization, AuthorizationPolicy, MeshTLSAuthentication,
/// NetworkAuthentication, HTTPRoute, EgressNetwork, HTTPLocalRateLimitPolicy.
pub const POLICY: &str = "policy.linkerd.io";
/// ExternalWorkload.
pub const WORKLOAD: &str = "workload.linkerd.io";
/// TrafficSplit (the SMI extension's group).
pub const SPLIT: &str = "split.smi-spec.io";
/// The Gateway API, whose HTTPRoute and GRPCRoute policy resources may target.
pub const GATEWAY: &str = "gateway.networking.k8s.io";
/// The Kubernetes core group (Service, Namespace, ServiceAccount), empty by convention.
pub const CORE: &str = "";
