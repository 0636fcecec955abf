//! `io.linkerd.proxy.destination.Destination`: Get and GetProfile over the discovery trait.
//!
//! Each stream holds a watch receiver and the last snapshot it sent; on each change it sends
//! the updates from what it last sent to the latest state. Updates between consecutive
//! versions are built, encoded and framed once in the index and shared by every stream, and
//! Destination has its own HTTP/2 server (`server`) that writes those bytes as they are, one
//! task per connection driving all of that connection's streams. Requests are checked up
//! front: a path that is not a cluster name (or, for Get, is an IP) is INVALID_ARGUMENT, which
//! the proxy does not retry.

mod identified;
pub mod inbound;
pub mod outbound;
mod server;
mod target;

#[cfg(test)]
pub(crate) use self::identified::REFUSED;
pub(crate) use self::identified::{Unidentified, split_by_identity};
pub use self::inbound::PolicyService;
pub(crate) use self::server::{GrpcService, serve};

#[cfg(test)]
mod churn_tests;
#[cfg(test)]
mod tests;

use self::target::{ClusterName, Host, context_token, parse_cluster_name, parse_path};
use crate::{
    discover::{
        Discover, DiscoverError, EndpointsFilter, EndpointsRx, ProfileRx, ProfileTarget,
        Subscription,
    },
    metrics::Metrics,
};
use futures::{StreamExt, stream::BoxStream};
use linkerd2_proxy_api::destination as pb;
use prost::bytes::Bytes;
use std::{net::SocketAddr, sync::Arc};
use tokio::sync::watch;
use tonic::Status;

/// A stream of messages encoded once and shared.
type EncodedStream = BoxStream<'static, Result<Bytes, Status>>;

/// The Destination service: a discovery implementation, the shutdown signal that ends its
/// streams, and metrics. [`DestinationGrpc::serve`] serves it.
#[derive(Debug)]
pub struct DestinationGrpc<D> {
    discover: Arc<D>,
    cluster_domain: Arc<str>,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
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

    /// The endpoints receiver a Get subscribes to; [`server`] streams it.
    fn get(&self, dst: pb::GetDestination) -> Result<EndpointsRx, Status> {
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
        let node = context_token(&dst.context_token)?.node_name;
        let filter = EndpointsFilter {
            port,
            hostname,
            node,
        };
        let rx = self.discover.endpoints(&service, &filter).map_err(status)?;
        tracing::debug!(path = %dst.path, "Get");
        Ok(rx)
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
        let client_ns = context_token(&dst.context_token)?.ns;
        let rx = self
            .discover
            .profile(&target, client_ns.as_deref())
            .map_err(status)?;
        tracing::debug!(path = %dst.path, ?client_ns, "GetProfile");
        Ok(profile_stream(rx, self.metrics.clone()))
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

/// The service's name in metrics.
const SERVICE: &str = "io.linkerd.proxy.destination.Destination";

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

fn profile_stream(rx: ProfileRx, metrics: Arc<Metrics>) -> EncodedStream {
    latest_stream(rx, Open::new(metrics, SERVICE, "get_profile", "GetProfile"))
}

/// A snapshot that carries its message framed for the wire, made once for every subscriber.
pub(crate) trait Framed: Send + Sync + 'static {
    fn framed(&self) -> &Bytes;
}

impl Framed for crate::index::ProfileSnapshot {
    fn framed(&self) -> &Bytes {
        &self.framed
    }
}

impl<M: Send + Sync + 'static> Framed for crate::index::policy::PolicySnapshot<M> {
    fn framed(&self) -> &Bytes {
        &self.framed
    }
}

/// The current snapshot, then the latest one after each change (never the ones in between),
/// until the index drops the key; each one counted on `open`. (Shutdown ends it from the
/// outside: the connection serving it ends every stream.)
pub(crate) fn latest_stream<T: Framed>(rx: Subscription<Arc<T>>, open: Open) -> EncodedStream {
    futures::stream::unfold((rx, open, false), |(mut rx, open, started)| async move {
        if started && rx.changed().await.is_err() {
            return None;
        }
        let framed = rx.borrow_and_update().framed().clone();
        open.sent();
        Some((Ok(framed), (rx, open, true)))
    })
    .boxed()
}
