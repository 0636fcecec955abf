//! `io.linkerd.proxy.inbound.InboundServerPolicies`: GetPort and WatchPort over the policy
//! discovery trait, and the machinery both policy services share.
//!
//! Like Destination, the policy services send messages encoded once in the index: they route
//! their two methods themselves (one unary, one server-streaming) with the pre-encoded codec.
//! A watch sends the current policy at once, then the latest policy after every change, until
//! the client goes away or the server shuts down.

use super::{Open, codec::PreEncodedCodec, latest_stream};
use crate::{
    metrics::Metrics,
    policy::{DiscoverPolicy, ObjKey, PolicyError, PolicySnapshot, Workload},
};
use futures::stream::BoxStream;
use linkerd2_proxy_api::inbound as pb;
use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::sync::watch;
use tonic::{
    Request, Response, Status,
    codegen::{Body, BoxFuture, Bytes, StdError, http},
    server::{Grpc, NamedService, ServerStreamingService, UnaryService},
};

type EncodedStream = BoxStream<'static, Result<Bytes, Status>>;
pub type SnapshotRx<M> = watch::Receiver<Arc<PolicySnapshot<M>>>;

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

/// A policy service: its API, the shutdown signal its streams watch, and metrics.
#[derive(Debug)]
pub struct PolicyServer<A>(Arc<Shared<A>>);

#[derive(Debug)]
struct Shared<A> {
    api: A,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

impl<A> Clone for PolicyServer<A> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<A: PolicyApi> PolicyServer<A> {
    pub(super) fn new(api: A, shutdown: watch::Receiver<bool>, metrics: Arc<Metrics>) -> Self {
        Self(Arc::new(Shared {
            api,
            shutdown,
            metrics,
        }))
    }
}

impl<A: PolicyApi> NamedService for PolicyServer<A> {
    const NAME: &'static str = A::SERVICE;
}

impl<A, B> tonic::codegen::Service<http::Request<B>> for PolicyServer<A>
where
    A: PolicyApi,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(A::SERVICE))
            .and_then(|p| p.strip_prefix('/'));
        let shared = self.0.clone();
        match method {
            Some(m) if m == A::GET => Box::pin(async move {
                let mut grpc = Grpc::new(PreEncodedCodec::<A::Request>::default());
                Ok(grpc.unary(Get(shared), req).await)
            }),
            Some(m) if m == A::WATCH => Box::pin(async move {
                let mut grpc = Grpc::new(PreEncodedCodec::<A::Request>::default());
                Ok(grpc.server_streaming(Watch(shared), req).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

struct Get<A>(Arc<Shared<A>>);

impl<A: PolicyApi> UnaryService<A::Request> for Get<A> {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, req: Request<A::Request>) -> Self::Future {
        let Shared { api, metrics, .. } = &*self.0;
        metrics.record_started(A::SERVICE, A::GET);
        let result = api
            .lookup(req.into_inner())
            .map(|rx| Response::new(rx.borrow().encoded.clone()));
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        metrics.record_handled(A::SERVICE, A::GET, code);
        Box::pin(std::future::ready(result))
    }
}

struct Watch<A>(Arc<Shared<A>>);

impl<A: PolicyApi> ServerStreamingService<A::Request> for Watch<A> {
    type Response = Bytes;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<Response<EncodedStream>, Status>;

    fn call(&mut self, req: Request<A::Request>) -> Self::Future {
        let Shared {
            api,
            shutdown,
            metrics,
        } = &*self.0;
        metrics.record_started(A::SERVICE, A::WATCH);
        let result = match api.lookup(req.into_inner()) {
            Ok(rx) => Ok(Response::new(snapshot_stream::<A>(
                rx,
                shutdown.clone(),
                metrics.clone(),
            ))),
            Err(status) => {
                metrics.record_handled(A::SERVICE, A::WATCH, status.code());
                Err(status)
            }
        };
        Box::pin(std::future::ready(result))
    }
}

/// The current policy, then the latest one after each change.
fn snapshot_stream<A: PolicyApi>(
    rx: SnapshotRx<A::Message>,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> EncodedStream {
    latest_stream(
        rx,
        shutdown,
        Open::new(metrics, A::SERVICE, A::API, A::WATCH),
    )
}

// === inbound ===

/// The inbound API over a policy discovery implementation.
#[derive(Debug)]
pub struct Inbound<D>(pub Arc<D>);

pub type InboundServer<D> = PolicyServer<Inbound<D>>;

/// The inbound policy service over `discover`; streams end when `shutdown` turns true.
pub fn inbound_server<D: DiscoverPolicy>(
    discover: Arc<D>,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> InboundServer<D> {
    PolicyServer::new(Inbound(discover), shutdown, metrics)
}

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
    let invalid =
        |why: &str| Status::invalid_argument(format!("invalid workload {workload:?}: {why}"));
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
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !name_ok(&ns) || !name_ok(&name) {
        return Err(invalid("namespace and workload must be Kubernetes names"));
    }
    Ok(kind(ObjKey::new(ns, name)))
}

#[cfg(test)]
mod tests;
