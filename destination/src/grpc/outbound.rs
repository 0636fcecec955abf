//! `io.linkerd.proxy.outbound.OutboundPolicies`: Get and Watch by a Service's cluster
//! address or by its cluster name. Another address gets the policy of the EgressNetwork that
//! contains it (for the client's namespace), or the `egress-fallback` policy (forward to the
//! original destination) if it is outside the cluster networks; any other target is NOT_FOUND,
//! which tells the proxy to synthesize its own policy.

use super::{
    inbound::{PolicyApi, SnapshotRx, not_found, parse_workload},
    target::{ClusterName, Host, parse_cluster_name, parse_path, quoted},
};
use crate::policy::{DiscoverPolicy, OutboundTarget};
use linkerd2_proxy_api::outbound as pb;
use std::{net::SocketAddr, sync::Arc};
use tonic::Status;

/// The outbound API over a policy discovery implementation.
#[derive(Debug)]
pub struct Outbound<D> {
    discover: Arc<D>,
    cluster_domain: Arc<str>,
}

impl<D> Outbound<D> {
    pub(super) fn new(discover: Arc<D>, cluster_domain: &str) -> Self {
        Self {
            discover,
            cluster_domain: cluster_domain.into(),
        }
    }
}

impl<D: DiscoverPolicy> PolicyApi for Outbound<D> {
    type Request = pb::TrafficSpec;
    type Message = pb::OutboundPolicy;
    const SERVICE: &'static str = "io.linkerd.proxy.outbound.OutboundPolicies";
    const GET: &'static str = "Get";
    const WATCH: &'static str = "Watch";
    const API: &'static str = "outbound";

    fn lookup(&self, spec: pb::TrafficSpec) -> Result<SnapshotRx<pb::OutboundPolicy>, Status> {
        use pb::traffic_spec::Target;
        let target = match spec.target {
            None => return Err(Status::invalid_argument("no target")),
            Some(Target::Addr(addr)) => {
                let addr = SocketAddr::try_from(addr)
                    .map_err(|_| Status::invalid_argument("invalid target address"))?;
                // The client's namespace picks the EgressNetworks that apply; without one,
                // only the global egress namespace's do.
                match parse_workload(&spec.source_workload) {
                    Ok(client) => OutboundTarget::AddrFrom {
                        addr,
                        source_ns: client.key().ns.clone(),
                    },
                    Err(_) => OutboundTarget::Addr(addr),
                }
            }
            Some(Target::Authority(authority)) => self.authority(&authority)?,
        };
        tracing::debug!(?target, "outbound policy");
        self.discover.outbound(&target).map_err(not_found)
    }
}

impl<D> Outbound<D> {
    /// `<svc>.<ns>.svc.<cluster-domain>[:port]` (port 80 by default); any other authority is
    /// not a Service we know.
    fn authority(&self, authority: &str) -> Result<OutboundTarget, Status> {
        let unknown = || Status::not_found(format!("no such service: {}", quoted(authority)));
        let (host, port) = parse_path(authority).map_err(|_| unknown())?;
        let Host::Name(name) = host else {
            return Err(unknown());
        };
        match parse_cluster_name(&name, &self.cluster_domain).map_err(|_| unknown())? {
            ClusterName::Service(svc) => Ok(OutboundTarget::Service(svc, port)),
            ClusterName::Pod { .. } => Err(unknown()),
        }
    }
}
