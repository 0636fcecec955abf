//! `io.linkerd.proxy.destination.Destination`: Get and GetProfile over the discovery trait.
//!
//! Each stream holds a watch receiver and the last snapshot it sent; it waits for the next
//! change or for shutdown, whichever comes first, and sends the updates from what it last sent
//! to the latest state. Updates between consecutive versions are built and protobuf-encoded
//! once in the index and shared by every stream, so this module routes the two methods itself
//! and frames those bytes as they are (the generated server would encode every message again
//! for every stream, into a buffer each stream keeps). Requests are checked up front: a path that is not a
//! cluster name (or, for Get, is an IP) is INVALID_ARGUMENT, which the proxy does not retry.

// The policy services frame pre-encoded messages through tonic with this codec; Destination
// frames them itself (below), without a per-stream encode buffer.
mod codec;
pub mod inbound;
pub mod outbound;
mod target;

#[cfg(test)]
mod tests;

use self::target::{ClusterName, Host, context_token, parse_cluster_name, parse_path};
use crate::{
    discover::{
        Discover, DiscoverError, EndpointsFilter, EndpointsRx, EndpointsSnapshot, ProfileRx,
        ProfileTarget,
    },
    metrics::Metrics,
};
use futures::{StreamExt, stream::BoxStream};
use http_body_util::BodyExt;
use hyper::body::Frame;
use linkerd2_proxy_api::destination as pb;
use prost::Message;
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::sync::watch;
use tonic::{
    Status,
    codegen::{Body, BoxFuture, Bytes, StdError, http},
    server::NamedService,
};

/// A stream of messages encoded once and shared.
type EncodedStream = BoxStream<'static, Result<Bytes, Status>>;

/// The Destination service: a discovery implementation, the shutdown signal its streams
/// watch, and metrics.
#[derive(Debug)]
pub struct DestinationGrpc<D> {
    discover: Arc<D>,
    cluster_domain: Arc<str>,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

/// The tonic service for [`DestinationGrpc`], speaking `io.linkerd.proxy.destination.Destination`.
#[derive(Debug)]
pub struct DestinationServer<D>(Arc<DestinationGrpc<D>>);

impl<D> Clone for DestinationServer<D> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<D: Discover> DestinationGrpc<D> {
    /// Streams end when `shutdown` turns true (or its sender is dropped).
    pub fn new(
        discover: Arc<D>,
        cluster_domain: &str,
        shutdown: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            discover,
            cluster_domain: cluster_domain.into(),
            shutdown,
            metrics,
        }
    }

    pub fn svc(self) -> DestinationServer<D> {
        DestinationServer(Arc::new(self))
    }

    fn get(&self, dst: pb::GetDestination) -> Result<EncodedStream, Status> {
        let (host, port) = parse_path(&dst.path)?;
        let Host::Name(name) = host else {
            return Err(Status::invalid_argument(
                "IP queries are not supported by the Get API",
            ));
        };
        let (service, hostname) = match parse_cluster_name(&name, &self.cluster_domain)? {
            ClusterName::Service(service) => (service, None),
            ClusterName::Pod { hostname, service } => (service, Some(hostname)),
        };
        let node = context_token(&dst.context_token).node_name;
        let filter = EndpointsFilter {
            port,
            hostname,
            node,
        };
        let rx = self.discover.endpoints(&service, &filter).map_err(status)?;
        tracing::debug!(path = %dst.path, "Get");
        Ok(endpoint_stream(
            rx,
            self.shutdown.clone(),
            self.metrics.clone(),
        ))
    }

    fn get_profile(&self, dst: pb::GetDestination) -> Result<EncodedStream, Status> {
        let (host, port) = parse_path(&dst.path)?;
        let target = match host {
            Host::Ip(ip) => ProfileTarget::Addr(SocketAddr::new(ip, port)),
            Host::Name(name) => match parse_cluster_name(&name, &self.cluster_domain)? {
                ClusterName::Service(service) => ProfileTarget::Service(service, port),
                ClusterName::Pod { hostname, service } => ProfileTarget::Pod {
                    service,
                    hostname,
                    port,
                },
            },
        };
        let client_ns = context_token(&dst.context_token).ns;
        let rx = self
            .discover
            .profile(&target, client_ns.as_deref())
            .map_err(status)?;
        tracing::debug!(path = %dst.path, ?client_ns, "GetProfile");
        Ok(profile_stream(
            rx,
            self.shutdown.clone(),
            self.metrics.clone(),
        ))
    }
}

/// The status a lookup's failure is answered with. The proxy retries neither
/// INVALID_ARGUMENT nor FAILED_PRECONDITION.
fn status(error: DiscoverError) -> Status {
    match error {
        DiscoverError::ServiceNotFound(_) => Status::not_found(error.to_string()),
        DiscoverError::ExternalName(_) => Status::invalid_argument(error.to_string()),
        DiscoverError::ConflictingClusterIp { .. } => {
            tracing::warn!(%error, "GetProfile");
            Status::failed_precondition(error.to_string())
        }
    }
}

// === impl DestinationServer ===

impl<D> NamedService for DestinationServer<D> {
    const NAME: &'static str = "io.linkerd.proxy.destination.Destination";
}

/// The service's name in metrics.
const SERVICE: &str = "io.linkerd.proxy.destination.Destination";

impl<D, B> tonic::codegen::Service<http::Request<B>> for DestinationServer<D>
where
    D: Discover,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (name, call): (_, fn(&DestinationGrpc<D>, _) -> _) = match req.uri().path() {
            "/io.linkerd.proxy.destination.Destination/Get" => ("Get", DestinationGrpc::get),
            "/io.linkerd.proxy.destination.Destination/GetProfile" => {
                ("GetProfile", DestinationGrpc::get_profile)
            }
            _ => {
                return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
            }
        };
        let grpc = self.0.clone();
        Box::pin(async move {
            let request = match read_request(req.into_body()).await {
                Ok(request) => request,
                Err(status) => return Ok(status.into_http()),
            };
            let metrics = &grpc.metrics;
            metrics.record_started(SERVICE, name);
            match call(&grpc, request) {
                Ok(stream) => Ok(streaming_response(stream)),
                Err(status) => {
                    metrics.record_handled(SERVICE, name, status.code());
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// The length-prefixed message header of gRPC: a compression flag and a big-endian length.
const HEADER_LEN: usize = 5;

/// Reads the request body: exactly one uncompressed message.
async fn read_request<B>(body: B) -> Result<pb::GetDestination, Status>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError> + Send + 'static,
{
    let bytes = body
        .collect()
        .await
        .map_err(|e| Status::internal(format!("reading the request: {}", e.into())))?
        .to_bytes();
    let (header, message) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or_else(|| Status::internal("Missing request message."))?;
    if header[0] != 0 {
        return Err(Status::unimplemented(
            "compressed requests are not supported",
        ));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len != message.len() {
        return Err(Status::invalid_argument(
            "the request body must be exactly one message",
        ));
    }
    pb::GetDestination::decode(message)
        .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
}

/// A streaming response whose messages are the shared encoded bytes themselves: each is sent
/// as its 5-byte header and then the bytes, with no per-stream encoding buffer (which would
/// keep the largest message a stream ever sent allocated for as long as the stream is open).
fn streaming_response(stream: EncodedStream) -> http::Response<tonic::body::Body> {
    let mut rsp = http::Response::new(tonic::body::Body::new(FramedBody {
        stream: Some(stream),
        message: None,
    }));
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    rsp
}

struct FramedBody {
    /// Taken when the stream has ended and its trailers were sent.
    stream: Option<EncodedStream>,
    /// A message whose header was sent, to send next.
    message: Option<Bytes>,
}

impl Body for FramedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        let status = match stream.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(message))) => {
                let mut header = [0u8; HEADER_LEN];
                header[1..].copy_from_slice(&(message.len() as u32).to_be_bytes());
                self.message = Some(message);
                return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(&header)))));
            }
            Poll::Ready(Some(Err(status))) => status,
            Poll::Ready(None) => Status::ok(""),
        };
        self.stream = None;
        let mut trailers = http::HeaderMap::new();
        status.add_header(&mut trailers)?;
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none() && self.message.is_none()
    }
}

/// Counts an open stream for as long as it lives, and as handled when it ends (for every
/// streaming API of this crate).
pub(crate) struct Open {
    metrics: Arc<Metrics>,
    service: &'static str,
    api: &'static str,
    method: &'static str,
    /// This API's `updates_sent` counter, looked up once rather than per update.
    sent: prometheus_client::metrics::counter::Counter,
}

impl Open {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        service: &'static str,
        api: &'static str,
        method: &'static str,
    ) -> Self {
        metrics
            .subscriptions
            .get_or_create(&Metrics::api(api))
            .inc();
        let sent = metrics
            .updates_sent
            .get_or_create(&Metrics::api(api))
            .clone();
        Self {
            metrics,
            service,
            api,
            method,
            sent,
        }
    }

    pub(crate) fn sent(&self) {
        self.sent.inc();
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics
            .subscriptions
            .get_or_create(&Metrics::api(self.api))
            .dec();
        self.metrics
            .record_handled(self.service, self.method, tonic::Code::Ok);
    }
}

/// Resolves when shutdown is signalled or its sender is gone.
async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

struct EndpointStream {
    rx: EndpointsRx,
    shutdown: watch::Receiver<bool>,
    last: Option<Arc<EndpointsSnapshot>>,
    pending: Arc<[Bytes]>,
    next: usize,
    open: Open,
}

fn endpoint_stream(
    rx: EndpointsRx,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> EncodedStream {
    let state = EndpointStream {
        rx,
        shutdown,
        last: None,
        pending: Arc::new([]),
        next: 0,
        open: Open::new(metrics, SERVICE, "get", "Get"),
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(update) = st.pending.get(st.next) {
                st.next += 1;
                st.open.sent();
                return Some((Ok(update.clone()), st));
            }
            if st.last.is_some() {
                tokio::select! {
                    biased;
                    _ = shutdown_signalled(&mut st.shutdown) => return None,
                    changed = st.rx.changed() => if changed.is_err() { return None },
                }
            }
            let snapshot = st.rx.borrow_and_update().clone();
            st.pending = snapshot.updates_since(st.last.as_deref());
            st.next = 0;
            st.last = Some(snapshot);
        }
    })
    .boxed()
}

fn profile_stream(
    rx: ProfileRx,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> EncodedStream {
    latest_stream(
        rx,
        shutdown,
        Open::new(metrics, SERVICE, "get_profile", "GetProfile"),
    )
}

/// A snapshot that carries its encoding, made once for every subscriber.
pub(crate) trait Encoded: Send + Sync + 'static {
    fn encoded(&self) -> &Bytes;
}

impl Encoded for crate::index::ProfileSnapshot {
    fn encoded(&self) -> &Bytes {
        &self.encoded
    }
}

impl<M: Send + Sync + 'static> Encoded for crate::index::policy::PolicySnapshot<M> {
    fn encoded(&self) -> &Bytes {
        &self.encoded
    }
}

/// The current snapshot, then the latest one after each change (never the ones in between),
/// until shutdown or the index drops the key; each one counted on `open`.
pub(crate) fn latest_stream<T: Encoded>(
    rx: watch::Receiver<Arc<T>>,
    shutdown: watch::Receiver<bool>,
    open: Open,
) -> EncodedStream {
    struct State<T> {
        rx: watch::Receiver<Arc<T>>,
        shutdown: watch::Receiver<bool>,
        started: bool,
        open: Open,
    }
    let state = State {
        rx,
        shutdown,
        started: false,
        open,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.started {
            tokio::select! {
                biased;
                _ = shutdown_signalled(&mut st.shutdown) => return None,
                changed = st.rx.changed() => if changed.is_err() { return None },
            }
        }
        st.started = true;
        let encoded = st.rx.borrow_and_update().encoded().clone();
        st.open.sent();
        Some((Ok(encoded), st))
    })
    .boxed()
}
