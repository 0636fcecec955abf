//! `io.linkerd.proxy.inbound.InboundServerPolicies`: GetPort and WatchPort over the policy
//! discovery trait, and the machinery both policy services share.
//!
//! Like Destination, the policy services send messages framed once in the index, served by
//! the same HTTP/2 server (`server`): a Get answers with the current policy; a Watch sends it
//! at once, then the latest policy after every change, until the client goes away or the
//! server shuts down.

use super::{
    Open, latest_stream,
    outbound::Outbound,
    server::{GrpcService, Reply},
    target::{check_dns_label, check_dns_name, quoted},
};
use crate::{
    frame,
    index::Subscription,
    metrics::Metrics,
    policy::{DiscoverPolicy, ObjKey, PolicyError, PolicySnapshot, Workload},
};
use linkerd2_proxy_api::inbound as pb;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::Status;

pub type SnapshotRx<M> = Subscription<Arc<PolicySnapshot<M>>>;

/// One policy API: its names, its request, and how a request becomes a subscription.
pub trait PolicyApi: Send + Sync + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Message: Send + Sync + 'static;
    /// The gRPC service name.
    const SERVICE: &'static str;
    /// The unary method.
    const GET: &'static str;
    /// The server-streaming method.
    const WATCH: &'static str;
    /// The `api` label of the subscription metrics.
    const API: &'static str;

    fn lookup(&self, req: Self::Request) -> Result<SnapshotRx<Self::Message>, Status>;
}

/// Answers the Get and Watch methods of a [`PolicyApi`].
fn reply<A: PolicyApi>(
    api: &A,
    metrics: &Arc<Metrics>,
    method: &str,
    body: &[u8],
) -> Option<Reply> {
    let name = [A::GET, A::WATCH].into_iter().find(|m| *m == method)?;
    let request = match frame::decode::<A::Request>(body) {
        Ok(request) => request,
        Err(status) => return Some(Reply::Status(status)),
    };
    metrics.record_started(A::SERVICE, name);
    let reply = api.lookup(request).map(|rx| {
        if name == A::GET {
            metrics.record_handled(A::SERVICE, name, tonic::Code::Ok);
            Reply::Unary(rx.borrow().framed.clone())
        } else {
            let open = Open::new(metrics.clone(), A::SERVICE, A::API, A::WATCH);
            Reply::Stream(latest_stream(rx, open))
        }
    });
    Some(reply.unwrap_or_else(|status| {
        metrics.record_handled(A::SERVICE, name, status.code());
        Reply::Status(status)
    }))
}

/// The method named by `path` if `path` belongs to `A`.
fn method<A: PolicyApi>(path: &str) -> Option<&str> {
    path.strip_prefix('/')?
        .strip_prefix(A::SERVICE)?
        .strip_prefix('/')
}

/// Both policy APIs, as the policy listener serves them; streams end when `shutdown` turns
/// true.
#[derive(Debug)]
pub struct PolicyService<D> {
    inbound: Inbound<D>,
    outbound: Outbound<D>,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

impl<D: DiscoverPolicy> PolicyService<D> {
    pub fn new(
        discover: Arc<D>,
        cluster_domain: &str,
        shutdown: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inbound: Inbound(discover.clone()),
            outbound: Outbound::new(discover, cluster_domain),
            shutdown,
            metrics,
        }
    }
}

impl<D: DiscoverPolicy> GrpcService for PolicyService<D> {
    fn call(&self, path: &str, body: &[u8]) -> Option<Reply> {
        if let Some(m) = method::<Inbound<D>>(path) {
            return reply(&self.inbound, &self.metrics, m, body);
        }
        reply(
            &self.outbound,
            &self.metrics,
            method::<Outbound<D>>(path)?,
            body,
        )
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

// === inbound ===

/// The inbound API over a policy discovery implementation.
#[derive(Debug)]
pub struct Inbound<D>(pub Arc<D>);

impl<D: DiscoverPolicy> PolicyApi for Inbound<D> {
    type Request = pb::PortSpec;
    type Message = pb::Server;
    const SERVICE: &'static str = "io.linkerd.proxy.inbound.InboundServerPolicies";
    const GET: &'static str = "GetPort";
    const WATCH: &'static str = "WatchPort";
    const API: &'static str = "inbound";

    fn lookup(&self, spec: pb::PortSpec) -> Result<SnapshotRx<pb::Server>, Status> {
        let workload = parse_workload(&spec.workload)?;
        let port = u16::try_from(spec.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Status::invalid_argument(format!("invalid port {}", spec.port)))?;
        tracing::debug!(?workload, port, "inbound policy");
        self.0.inbound(&workload, port).map_err(not_found)
    }
}

pub(super) fn not_found(error: PolicyError) -> Status {
    Status::not_found(error.to_string())
}

/// The workload a proxy names itself by: `<ns>:<pod>` (older proxies),
/// `{"ns":"<ns>","pod":"<pod>"}` or `{"ns":"<ns>","external_workload":"<name>"}`.
pub(crate) fn parse_workload(workload: &str) -> Result<Workload, Status> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Json {
        ns: String,
        pod: Option<String>,
        external_workload: Option<String>,
    }
    let invalid = |why: &str| {
        Status::invalid_argument(format!("invalid workload {}: {why}", quoted(workload)))
    };
    let (ns, name, kind): (_, _, fn(ObjKey) -> Workload) = if workload.trim_start().starts_with('{')
    {
        let json: Json = serde_json::from_str(workload).map_err(|e| invalid(&e.to_string()))?;
        match (json.pod, json.external_workload) {
            (Some(pod), None) => (json.ns, pod, Workload::Pod),
            (None, Some(ext)) => (json.ns, ext, Workload::External),
            _ => return Err(invalid("expected exactly one of pod and external_workload")),
        }
    } else {
        let (ns, pod) = workload
            .split_once(':')
            .ok_or_else(|| invalid("expected <namespace>:<pod>"))?;
        (ns.to_string(), pod.to_string(), Workload::Pod)
    };
    // A namespace is a DNS label, a pod's or ExternalWorkload's name a DNS name.
    check_dns_label(&ns).map_err(|why| invalid(&format!("namespace: {why}")))?;
    check_dns_name(&name).map_err(|why| invalid(&format!("name: {why}")))?;
    Ok(kind(ObjKey::new(ns, name)))
}

#[cfg(test)]
mod tests;
