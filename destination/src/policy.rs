//! The seam between the index and the policy gRPC services: what a policy lookup asks for and
//! what it gets.

use crate::index::SharedIndex;
pub use crate::index::{
    ObjKey,
    policy::{InboundRx, OutboundRx, OutboundTarget, PolicyError, PolicySnapshot},
};

/// Looks up inbound and outbound policies as watch receivers holding the latest policy.
pub trait DiscoverPolicy: Send + Sync + 'static {
    /// The policy of `port` on `pod`; fails if the pod is not indexed.
    fn inbound(&self, pod: &ObjKey, port: u16) -> Result<InboundRx, PolicyError>;

    /// The policy of a Service port; fails if the target is no Service.
    fn outbound(&self, target: &OutboundTarget) -> Result<OutboundRx, PolicyError>;
}

impl DiscoverPolicy for SharedIndex {
    fn inbound(&self, pod: &ObjKey, port: u16) -> Result<InboundRx, PolicyError> {
        if let Some(rx) = self.read().existing_inbound(pod, port) {
            return Ok(rx);
        }
        self.write().watch_inbound(pod, port)
    }

    fn outbound(&self, target: &OutboundTarget) -> Result<OutboundRx, PolicyError> {
        if let Some(rx) = self.read().existing_outbound(target)? {
            return Ok(rx);
        }
        self.write().watch_outbound(target)
    }
}
