//! The seam between the index and the policy gRPC services: what a policy lookup asks for and
//! what it gets.

use crate::index::SharedIndex;
pub use crate::index::{
    ObjKey,
    policy::{InboundRx, OutboundRx, OutboundTarget, PolicyError, PolicySnapshot, Workload},
};

/// Looks up inbound and outbound policies as watch receivers holding the latest policy.
pub trait DiscoverPolicy: Send + Sync + 'static {
    /// The policy of `port` on a pod or an ExternalWorkload; fails if it is not indexed.
    fn inbound(&self, workload: &Workload, port: u16) -> Result<InboundRx, PolicyError>;

    /// The policy of a Service port; fails if the target is no Service.
    fn outbound(&self, target: &OutboundTarget) -> Result<OutboundRx, PolicyError>;
}

impl DiscoverPolicy for SharedIndex {
    fn inbound(&self, workload: &Workload, port: u16) -> Result<InboundRx, PolicyError> {
        if let Some(rx) = self.read().existing_workload(workload, port) {
            return Ok(rx);
        }
        self.write().watch_workload(workload, port)
    }

    fn outbound(&self, target: &OutboundTarget) -> Result<OutboundRx, PolicyError> {
        if let Some(rx) = self.read().existing_outbound(target)? {
            return Ok(rx);
        }
        self.write().watch_outbound(target)
    }
}
