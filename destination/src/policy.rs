//! The seam between the index and the policy gRPC services: what a policy lookup asks for and
//! what it gets.

pub use crate::index::{
    ObjKey,
    policy::{OutboundTarget, PolicyError, PolicySnapshot, Workload},
};
use crate::index::{SharedIndex, SubKey, Subscription, policy::PolicyKey};
use linkerd2_proxy_api::{inbound as inpb, outbound as outpb};
use std::sync::Arc;

/// An inbound policy subscription: one workload port.
pub type InboundRx = Subscription<Arc<PolicySnapshot<inpb::Server>>>;
/// An outbound policy subscription: one Service port or egress address.
pub type OutboundRx = Subscription<Arc<PolicySnapshot<outpb::OutboundPolicy>>>;

/// Looks up inbound and outbound policies as watch receivers holding the latest policy. A key
/// is held only as long as a subscription to it lives (see [`Subscription`]).
pub trait DiscoverPolicy: Send + Sync + 'static {
    /// The policy of `port` on a pod or an ExternalWorkload; fails if it is not indexed.
    fn inbound(&self, workload: &Workload, port: u16) -> Result<InboundRx, PolicyError>;

    /// The policy of a Service port; fails if the target is no Service.
    fn outbound(&self, target: &OutboundTarget) -> Result<OutboundRx, PolicyError>;
}

impl DiscoverPolicy for SharedIndex {
    fn inbound(&self, workload: &Workload, port: u16) -> Result<InboundRx, PolicyError> {
        let existing = self.read().existing_workload(workload, port);
        let rx = match existing {
            Some(rx) => rx,
            None => self.write().watch_workload(workload, port)?,
        };
        let key = SubKey::Policy(PolicyKey::Inbound(workload.clone(), port));
        Ok(Subscription::new(rx, self, key))
    }

    fn outbound(&self, target: &OutboundTarget) -> Result<OutboundRx, PolicyError> {
        // The key is resolved under the same lock the channel comes from, so it names the
        // entry the receiver belongs to even if the target's Service changes later.
        let existing = {
            let index = self.read();
            match index.existing_outbound(target)? {
                Some(rx) => Some((rx, index.outbound_key(target)?)),
                None => None,
            }
        };
        let (rx, key) = match existing {
            Some(found) => found,
            None => {
                let mut index = self.write();
                let rx = index.watch_outbound(target)?;
                (rx, index.outbound_key(target)?)
            }
        };
        Ok(Subscription::new(rx, self, SubKey::Policy(key)))
    }
}
