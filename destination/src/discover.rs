//! The seam between the index and the gRPC services: what a lookup asks for and what it gets.
//!
//! The gRPC layer sees only this trait, so its tests can serve any implementation and the
//! index never learns about tonic.

pub use crate::index::{
    EndpointsFilter, EndpointsSnapshot, EndpointsState, ObjKey, ProfileSnapshot, ProfileTarget,
    Subscription,
};
use crate::index::{Index, ServiceKind, SharedIndex, SubKey};
use std::{net::IpAddr, sync::Arc};

/// A Get's subscription: the endpoints of one Service port and filter.
pub type EndpointsRx = Subscription<Arc<EndpointsSnapshot>>;
/// A GetProfile's subscription.
pub type ProfileRx = Subscription<Arc<ProfileSnapshot>>;

/// Looks up endpoints and profiles as watch receivers holding the latest state. A key is held
/// only as long as a subscription to it lives (see [`Subscription`]).
pub trait Discover: Send + Sync + 'static {
    /// The endpoints of a Service port; fails if the Service does not exist or has no
    /// endpoints to discover.
    fn endpoints(
        &self,
        svc: &ObjKey,
        filter: &EndpointsFilter,
    ) -> Result<EndpointsRx, DiscoverError>;

    /// The profile of a Service or an address, as a client in `client_ns` sees it. An unknown
    /// target gets a default profile; fails only for a cluster IP that several Services claim.
    fn profile(
        &self,
        target: &ProfileTarget,
        client_ns: Option<&str>,
    ) -> Result<ProfileRx, DiscoverError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("service {}/{} not found", .0.ns, .0.name)]
    ServiceNotFound(ObjKey),
    #[error("service {}/{} is an ExternalName service, which has no endpoints", .0.ns, .0.name)]
    ExternalName(ObjKey),
    #[error(
        "found {} services with conflicting cluster IP {ip}: {}",
        services.len(),
        services.iter().map(|s| format!("{}/{}", s.ns, s.name)).collect::<Vec<_>>().join(", ")
    )]
    ConflictingClusterIp { ip: IpAddr, services: Vec<ObjKey> },
}

fn check_cluster_ip(index: &Index, target: &ProfileTarget) -> Result<(), DiscoverError> {
    let ProfileTarget::Addr(addr) = target else {
        return Ok(());
    };
    match index.conflicting_services(addr.ip()) {
        Some(services) => Err(DiscoverError::ConflictingClusterIp {
            ip: addr.ip(),
            services,
        }),
        None => Ok(()),
    }
}

fn check_service(index: &Index, svc: &ObjKey) -> Result<(), DiscoverError> {
    match index.service_kind(svc) {
        None => Err(DiscoverError::ServiceNotFound(svc.clone())),
        Some(ServiceKind::ExternalName) => Err(DiscoverError::ExternalName(svc.clone())),
        Some(ServiceKind::Endpoints) => Ok(()),
    }
}

impl Discover for SharedIndex {
    fn endpoints(
        &self,
        svc: &ObjKey,
        filter: &EndpointsFilter,
    ) -> Result<EndpointsRx, DiscoverError> {
        let key = SubKey::Endpoints(svc.clone(), filter.clone());
        let existing = {
            // Most lookups join an existing subscription under the read lock.
            let index = self.read();
            check_service(&index, svc)?;
            index.existing_endpoints(svc, filter)
        };
        let rx = match existing {
            Some(rx) => rx,
            None => {
                let mut index = self.write();
                check_service(&index, svc)?;
                index.watch_endpoints(svc, filter)
            }
        };
        Ok(Subscription::new(rx, self, key))
    }

    fn profile(
        &self,
        target: &ProfileTarget,
        client_ns: Option<&str>,
    ) -> Result<ProfileRx, DiscoverError> {
        let key = SubKey::profile(target, client_ns);
        let existing = {
            let index = self.read();
            check_cluster_ip(&index, target)?;
            index.existing_profile(target, client_ns)
        };
        let rx = match existing {
            Some(rx) => rx,
            None => {
                let mut index = self.write();
                check_cluster_ip(&index, target)?;
                index.watch_profile(target, client_ns)
            }
        };
        Ok(Subscription::new(rx, self, key))
    }
}
