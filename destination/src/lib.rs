//! Service discovery and policy for `linkerd2-proxy`: the destination controller.
//!
//! This crate owns one index of the cluster's Services, EndpointSlices, Pods, Nodes,
//! ServiceProfiles, TrafficSplits and policy resources, fed by Kubernetes watches, and the gRPC
//! services the proxy asks: `Destination.Get` (endpoints with identities and protocol hints),
//! `Destination.GetProfile` (routes, timeouts, retries, traffic splits), and on the policy listener
//! `InboundServerPolicies` (who may reach a pod's port, how) and `OutboundPolicies` (how to
//! route to a Service). Subscribers hold watch receivers of shared snapshots, so they
//! always see the latest state and a slow reader never holds up the others.
//!
//! Layers: [`index`] (kube watches, no tonic) → [`discover::Discover`] and
//! [`policy::DiscoverPolicy`] → [`grpc`] (tonic, no kube); `serve` wires them together with the shared admin server (`oxlink-admin`).

mod args;
pub mod discover;
mod frame;
pub mod grpc;
pub mod index;
mod metrics;
pub mod policy;
mod ports;
mod serve;

#[cfg(test)]
mod test_util;

pub use self::{
    args::Args,
    metrics::Metrics,
    ports::PortSet,
    serve::{Running, StartError, Transport, spawn, spawn_with},
};
