//! Wiring: the watches that feed the index, the gRPC server (native TLS with a certificate from
//! identity, or plaintext behind a sidecar) and the admin server, started and stopped together.

use crate::{
    grpc::{DestinationGrpc, GrpcService, PolicyService, Unidentified, serve, split_by_identity},
    index::{self, Index, SharedIndex, policy::spawn_gateway_watch, spawn_watch},
    metrics::Metrics,
};
use k8s_openapi::api::{
    core::v1::{Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use oxlink_admin::{Readiness, Tasks, serve_admin};
use oxlink_crds::{
    ExternalWorkload, ServiceProfile, TrafficSplit, gateway,
    policy::{
        AuthorizationPolicy, EgressNetwork, HttpLocalRateLimitPolicy, HttpRoute,
        MeshTlsAuthentication, NetworkAuthentication, Server, ServerAuthorization,
    },
};
use oxlink_tls::{
    CertifyClient, CertifyConfig, CertifyError, CertifyMetrics, ServerConfig, ServingCert,
    ServingError, plain_incoming, server_config, tls_incoming,
};
use prometheus_client::registry::Registry;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;

/// How the gRPC listener talks to proxies.
#[derive(Clone, Debug)]
pub enum Transport {
    /// h2c, for a server behind a proxy sidecar that terminates mesh TLS (`--plaintext`).
    Plaintext,
    /// Mesh TLS with a certificate obtained from identity and renewed by
    /// [`CertifyClient`]; not ready until it holds one. Clients may present a mesh certificate.
    Tls(CertifyConfig),
    /// Mesh TLS as [`Transport::Tls`], serving only clients that present a mesh certificate
    /// (`--require-client-identity`): every request of any other client is answered
    /// UNAUTHENTICATED.
    TlsRequiringClientIdentity(CertifyConfig),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listener address: {0}")]
    Addr(#[from] std::io::Error),
    #[error(transparent)]
    Certify(#[from] CertifyError),
    #[error(transparent)]
    Tls(#[from] ServingError),
}

/// A started destination server. Dropping it stops every task.
pub struct Running {
    pub grpc_addr: SocketAddr,
    /// The policy listener's address, if policy is served.
    pub policy_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub ready: Readiness,
    pub index: SharedIndex,
    pub metrics: Arc<Metrics>,
    /// The TLS configuration every gRPC listener serves with (none in plaintext mode).
    pub tls: Option<Arc<ServerConfig>>,
    tasks: Tasks,
}

/// [`spawn_with`] in plaintext mode, without the policy listener.
pub fn spawn(
    client: kube::Client,
    config: index::Config,
    grpc: TcpListener,
    admin: Option<TcpListener>,
) -> Result<Running, StartError> {
    spawn_with(client, config, Transport::Plaintext, grpc, None, admin)
}

/// Starts destination for the cluster `client` talks to: watches Services, EndpointSlices,
/// Pods, Nodes, ServiceProfiles, Servers and TrafficSplits (if their CRD is installed), and serves Destination on `grpc` (over
/// `transport`) and the admin endpoints on `admin`. With a `policy` listener it also watches
/// the policy kinds and ExternalWorkloads (readiness waits for them too) and serves the inbound
/// and outbound policy APIs there, over the same transport.
pub fn spawn_with(
    client: kube::Client,
    config: index::Config,
    transport: Transport,
    grpc: TcpListener,
    policy: Option<TcpListener>,
    admin: Option<TcpListener>,
) -> Result<Running, StartError> {
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
        // The SMI extension's CRD is optional, as the Gateway API's are.
        spawn_gateway_watch::<TrafficSplit>(
            client.clone(),
            index.clone(),
            ready.latch("the TrafficSplit watch has not synced"),
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
    oxlink_kube::metrics::register(&mut registry);
    let (certify, require_client_identity) = match transport {
        Transport::Plaintext => (None, false),
        Transport::Tls(certify) => (Some(certify), false),
        Transport::TlsRequiringClientIdentity(certify) => (Some(certify), true),
    };
    let tls = match certify {
        None => None,
        Some(certify) => {
            let anchors = certify.anchors.clone();
            let cert = Arc::new(ServingCert::default());
            let held = cert.clone();
            ready.require("no certificate from identity yet", move || held.is_set());
            let client = CertifyClient::new(certify)?;
            tasks.background(client.run(cert.clone(), CertifyMetrics::register(&mut registry)));
            Some(Arc::new(server_config(cert, Some(&anchors))?))
        }
    };
    let grpc_addr = grpc.local_addr()?;
    let destination = DestinationGrpc::new(
        Arc::new(index.clone()),
        &cluster_domain,
        tasks.flag(),
        metrics.clone(),
    );
    let listen = Listen {
        tls: tls.clone(),
        require_client_identity,
    };
    serve_grpc(&mut tasks, Arc::new(destination), grpc, &listen);
    let policy_addr = match policy {
        Some(listener) => Some(serve_policy(
            &mut tasks,
            listener,
            &index,
            &cluster_domain,
            &metrics,
            &listen,
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
    tracing::info!(%grpc_addr, ?policy_addr, ?admin_addr, tls = tls.is_some(), require_client_identity, "destination started");
    Ok(Running {
        grpc_addr,
        policy_addr,
        admin_addr,
        ready,
        index,
        metrics,
        tls,
        tasks,
    })
}

/// The watches of the kinds beyond Get/GetProfile's core (Servers are watched above): the
/// policy kinds, ExternalWorkloads, which only policy-era control planes install, and the
/// Gateway API routes, if the cluster has their CRDs.
fn spawn_policy_watches(
    client: &kube::Client,
    index: &SharedIndex,
    ready: &Readiness,
) -> [tokio::task::JoinHandle<()>; 10] {
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
        watch(
            spawn_watch::<HttpLocalRateLimitPolicy>,
            "the HTTPLocalRateLimitPolicy watch has not synced",
        ),
        watch(
            spawn_watch::<EgressNetwork>,
            "the EgressNetwork watch has not synced",
        ),
        watch(
            spawn_gateway_watch::<gateway::HttpRoute>,
            "the Gateway API HTTPRoute watch has not synced",
        ),
        watch(
            spawn_gateway_watch::<gateway::GrpcRoute>,
            "the GRPCRoute watch has not synced",
        ),
    ]
}

/// Serves InboundServerPolicies and OutboundPolicies on `listener`, with the same transport as
/// Destination.
fn serve_policy(
    tasks: &mut Tasks,
    listener: TcpListener,
    index: &SharedIndex,
    cluster_domain: &str,
    metrics: &Arc<Metrics>,
    listen: &Listen,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let policy = PolicyService::new(
        Arc::new(index.clone()),
        cluster_domain,
        tasks.flag(),
        metrics.clone(),
    );
    serve_grpc(tasks, Arc::new(policy), listener, listen);
    Ok(addr)
}

/// How both gRPC listeners serve: over TLS with `tls` (h2c without), and whether a client must
/// present a mesh certificate.
#[derive(Clone)]
struct Listen {
    tls: Option<Arc<ServerConfig>>,
    require_client_identity: bool,
}

/// Serves `service` on `listener` until shutdown: over TLS with `listen.tls`, as h2c without.
/// Both gRPC listeners are served through here with the same `listen`, so both present the one
/// certificate from identity and both refuse unidentified clients alike.
fn serve_grpc<S: GrpcService>(
    tasks: &mut Tasks,
    service: Arc<S>,
    listener: TcpListener,
    listen: &Listen,
) {
    match listen.tls.clone() {
        Some(config) if listen.require_client_identity => {
            // The verifier has checked any certificate presented against the trust anchors.
            let (identified, unidentified) =
                split_by_identity(tls_incoming(listener, config), |tls| {
                    tls.get_ref().1.peer_certificates().is_some()
                });
            let refuse = Arc::new(Unidentified::new(service.shutdown()));
            tasks.server(serve(service, identified, tasks.signal()));
            tasks.server(serve(refuse, unidentified, tasks.signal()));
        }
        Some(config) => tasks.server(serve(
            service,
            tls_incoming(listener, config),
            tasks.signal(),
        )),
        None => tasks.server(serve(service, plain_incoming(listener), tasks.signal())),
    }
}

impl Running {
    /// Ends every stream, lets the servers finish (up to `grace`), and stops the watches.
    pub async fn shutdown(self, grace: Duration) {
        self.tasks.shutdown(grace).await;
    }
}

#[cfg(test)]
mod tests;
