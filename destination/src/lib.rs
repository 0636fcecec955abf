//! Service discovery and policy for `linkerd2-proxy`: the destination controller.
//!
//! This crate owns one index of the cluster's Services, EndpointSlices, Pods, ServiceProfiles
//! and policy resources, fed by Kubernetes watches, and the gRPC services the proxy asks:
//! `Destination.Get` (endpoints with identities and protocol hints), `Destination.GetProfile`
//! (routes, timeouts, retries), `InboundServerPolicies` and `OutboundPolicies`. Subscribers hold
//! watch receivers of shared, pre-encoded snapshots, so they always see the latest state and a
//! slow reader never holds up the others.
