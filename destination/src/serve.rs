//! Wiring: the watches that feed the index, the gRPC server and the admin server, started and
//! stopped together.

use crate::{
    grpc::{DestinationGrpc, inbound::inbound_server, outbound::outbound_server},
    index::{self, Index, SharedIndex, spawn_watch},
    metrics::Metrics,
};
use k8s_openapi::api::{
    core::v1::{Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use oxlink_admin::{Readiness, Tasks, serve_admin};
use oxlink_crds::{
    ExternalWorkload, ServiceProfile,
    policy::{
        AuthorizationPolicy, HttpRoute, MeshTlsAuthentication, NetworkAuthentication, Server,
        ServerAuthorization,
    },
};
use prometheus_client::registry::Registry;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// A started destination server. Dropping it stops every task.
pub struct Running {
    pub grpc_addr: SocketAddr,
    /// The policy listener's address, if policy is served.
    pub policy_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub ready: Readiness,
    pub index: SharedIndex,
    pub metrics: Arc<Metrics>,
    tasks: Tasks,
}

/// Starts destination for the cluster `client` talks to: watches Services, EndpointSlices,
/// Pods, Nodes, ServiceProfiles and Servers, and serves plaintext gRPC on `grpc` and the admin
/// endpoints on `admin`.
pub fn spawn(
    client: kube::Client,
    config: index::Config,
    grpc: TcpListener,
    admin: Option<TcpListener>,
) -> std::io::Result<Running> {
    spawn_with_policy(client, config, grpc, None, admin)
}

/// Like [`spawn`]; with a `policy` listener, also watches the policy kinds (readiness waits
/// for them too) and serves the inbound and outbound policy APIs on it.
pub fn spawn_with_policy(
    client: kube::Client,
    config: index::Config,
    grpc: TcpListener,
    policy: Option<TcpListener>,
    admin: Option<TcpListener>,
) -> std::io::Result<Running> {
    let cluster_domain = config.cluster_domain.clone();
    let index = Index::shared(config);
    let ready = Readiness::default();
    let mut tasks = Tasks::default();
    for watch in [
        spawn_watch::<Service>(
            client.clone(),
            index.clone(),
            ready.latch("the Service watch has not synced"),
        ),
        spawn_watch::<EndpointSlice>(
            client.clone(),
            index.clone(),
            ready.latch("the EndpointSlice watch has not synced"),
        ),
        spawn_watch::<Pod>(
            client.clone(),
            index.clone(),
            ready.latch("the Pod watch has not synced"),
        ),
        spawn_watch::<Node>(
            client.clone(),
            index.clone(),
            ready.latch("the Node watch has not synced"),
        ),
        spawn_watch::<ServiceProfile>(
            client.clone(),
            index.clone(),
            ready.latch("the ServiceProfile watch has not synced"),
        ),
        spawn_watch::<Server>(
            client.clone(),
            index.clone(),
            ready.latch("the Server watch has not synced"),
        ),
    ]
    .into_iter()
    .chain(
        policy
            .is_some()
            .then(|| spawn_policy_watches(&client, &index, &ready))
            .into_iter()
            .flatten(),
    ) {
        tasks.adopt(watch);
    }

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, index.clone());
    let grpc_addr = grpc.local_addr()?;
    let svc = DestinationGrpc::new(
        Arc::new(index.clone()),
        &cluster_domain,
        tasks.flag(),
        metrics.clone(),
    )
    .svc();
    let stopped = tasks.signal();
    tasks.server(async move {
        let result = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpIncoming::from(grpc).with_nodelay(Some(true)), stopped)
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "the gRPC server failed");
        }
    });
    let policy_addr = match policy {
        Some(listener) => Some(serve_policy(
            &mut tasks,
            listener,
            &index,
            &cluster_domain,
            &metrics,
        )?),
        None => None,
    };
    let admin_addr = match admin {
        Some(listener) => {
            let addr = listener.local_addr()?;
            tasks.server(serve_admin(
                listener,
                Arc::new(registry),
                ready.clone(),
                None,
                tasks.signal(),
            ));
            Some(addr)
        }
        None => None,
    };
    tracing::info!(%grpc_addr, ?policy_addr, ?admin_addr, "destination started");
    Ok(Running {
        grpc_addr,
        policy_addr,
        admin_addr,
        ready,
        index,
        metrics,
        tasks,
    })
}

/// The watches of the kinds beyond Get/GetProfile's core (Servers are watched above): the
/// policy kinds, and ExternalWorkloads, which only policy-era control planes install.
fn spawn_policy_watches(
    client: &kube::Client,
    index: &SharedIndex,
    ready: &Readiness,
) -> [tokio::task::JoinHandle<()>; 6] {
    type Spawn = fn(kube::Client, SharedIndex, oxlink_admin::Latch) -> tokio::task::JoinHandle<()>;
    let watch = |spawn: Spawn, unsynced: &'static str| {
        spawn(client.clone(), index.clone(), ready.latch(unsynced))
    };
    [
        watch(
            spawn_watch::<ServerAuthorization>,
            "the ServerAuthorization watch has not synced",
        ),
        watch(
            spawn_watch::<AuthorizationPolicy>,
            "the AuthorizationPolicy watch has not synced",
        ),
        watch(
            spawn_watch::<MeshTlsAuthentication>,
            "the MeshTLSAuthentication watch has not synced",
        ),
        watch(
            spawn_watch::<NetworkAuthentication>,
            "the NetworkAuthentication watch has not synced",
        ),
        watch(
            spawn_watch::<HttpRoute>,
            "the HTTPRoute watch has not synced",
        ),
        watch(
            spawn_watch::<ExternalWorkload>,
            "the ExternalWorkload watch has not synced",
        ),
    ]
}

/// Serves InboundServerPolicies and OutboundPolicies (plaintext gRPC) on `listener`.
fn serve_policy(
    tasks: &mut Tasks,
    listener: TcpListener,
    index: &SharedIndex,
    cluster_domain: &str,
    metrics: &Arc<Metrics>,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let discover = Arc::new(index.clone());
    let inbound = inbound_server(discover.clone(), tasks.flag(), metrics.clone());
    let outbound = outbound_server(discover, cluster_domain, tasks.flag(), metrics.clone());
    let stopped = tasks.signal();
    tasks.server(async move {
        let result = tonic::transport::Server::builder()
            .add_service(inbound)
            .add_service(outbound)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                stopped,
            )
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "the policy gRPC server failed");
        }
    });
    Ok(addr)
}

impl Running {
    /// Ends every stream, lets the servers finish (up to `grace`), and stops the watches.
    pub async fn shutdown(self, grace: Duration) {
        self.tasks.shutdown(grace).await;
    }
}
