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
use oxlink_admin::{
    Admin, Readiness, Tasks,
    serve::{Limits, ServerMetrics, accept},
    serve_admin,
};
use oxlink_crds::{
    ExternalWorkload, ServiceProfile, TrafficSplit, gateway,
    policy::{
        AuthorizationPolicy, EgressNetwork, HttpLocalRateLimitPolicy, HttpRoute,
        MeshTlsAuthentication, NetworkAuthentication, Server, ServerAuthorization,
    },
};
use oxlink_tls::{
    CertifyClient, CertifyConfig, CertifyError, CertifyMetrics, ServerConfig, ServingCert,
    ServingError, server_config,
};
use prometheus_client::registry::Registry;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;

/// Starts one watch: `spawn_watch::<K>` or `spawn_gateway_watch::<K>`.
type Spawn = fn(kube::Client, SharedIndex, oxlink_admin::Latch) -> tokio::task::JoinHandle<()>;

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

/// [`spawn_with`] in plaintext mode with the default limits, without the policy listener.
pub fn spawn(
    client: kube::Client,
    config: index::Config,
    grpc: TcpListener,
    admin: Option<TcpListener>,
) -> Result<Running, StartError> {
    spawn_with(
        client,
        config,
        Transport::Plaintext,
        Limits::GRPC,
        grpc,
        None,
        admin,
    )
}

/// Starts destination for the cluster `client` talks to: watches Services, EndpointSlices,
/// Pods, Nodes, ServiceProfiles, Servers and TrafficSplits (if their CRD is installed), and serves Destination on `grpc` (over
/// `transport`) and the admin endpoints on `admin`. With a `policy` listener it also watches
/// the policy kinds and ExternalWorkloads (readiness waits for them too) and serves the inbound
/// and outbound policy APIs there, over the same transport. Both gRPC listeners serve within
/// `limits`.
pub fn spawn_with(
    client: kube::Client,
    config: index::Config,
    transport: Transport,
    limits: Limits,
    grpc: TcpListener,
    policy: Option<TcpListener>,
    admin: Option<TcpListener>,
) -> Result<Running, StartError> {
    let cluster_domain = config.cluster_domain.clone();
    let index = Index::shared(config);
    let ready = Readiness::default();
    let mut tasks = Tasks::default();
    let core: [(Spawn, &'static str, &'static str); 7] = [
        (
            spawn_watch::<Service>,
            "the Service watch",
            "the Service watch has not synced",
        ),
        (
            spawn_watch::<EndpointSlice>,
            "the EndpointSlice watch",
            "the EndpointSlice watch has not synced",
        ),
        (
            spawn_watch::<Pod>,
            "the Pod watch",
            "the Pod watch has not synced",
        ),
        (
            spawn_watch::<Node>,
            "the Node watch",
            "the Node watch has not synced",
        ),
        (
            spawn_watch::<ServiceProfile>,
            "the ServiceProfile watch",
            "the ServiceProfile watch has not synced",
        ),
        (
            spawn_watch::<Server>,
            "the Server watch",
            "the Server watch has not synced",
        ),
        // The SMI extension's CRD is optional, as the Gateway API's are.
        (
            spawn_gateway_watch::<TrafficSplit>,
            "the TrafficSplit watch",
            "the TrafficSplit watch has not synced",
        ),
    ];
    let watches = core
        .into_iter()
        .chain(policy.is_some().then(policy_watches).into_iter().flatten());
    for (spawn, name, unsynced) in watches {
        tasks.adopt(
            name,
            spawn(client.clone(), index.clone(), ready.latch(unsynced)),
        );
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
            tasks.background(
                "the certificate renewal",
                client.run(cert.clone(), CertifyMetrics::register(&mut registry)),
            );
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
    let connections = ServerMetrics::register(&mut registry, "destination");
    let listener = Listener {
        name: "the Destination gRPC server",
        limits: &limits,
        tls: tls.clone(),
        require_client_identity,
        connections: connections.clone(),
    };
    listener
        .clone()
        .serve(&mut tasks, Arc::new(destination), grpc);
    let policy_addr = match policy {
        Some(policy) => Some(serve_policy(
            &mut tasks,
            policy,
            &index,
            &cluster_domain,
            &metrics,
            Listener {
                name: "the policy gRPC server",
                connections: connections.for_server("policy"),
                ..listener
            },
        )?),
        None => None,
    };
    let admin_addr = match admin {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let admin = Admin {
                registry: Arc::new(registry),
                ready: ready.clone(),
                live: tasks.liveness(),
                on_scrape: None,
                connections: connections.for_server("admin"),
            };
            tasks.server(
                "the admin server",
                serve_admin(listener, admin, tasks.signal()),
            );
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
/// Gateway API routes, if the cluster has their CRDs. Each with its task's name and what
/// `/ready` says until it has synced.
fn policy_watches() -> [(Spawn, &'static str, &'static str); 10] {
    [
        (
            spawn_watch::<ServerAuthorization>,
            "the ServerAuthorization watch",
            "the ServerAuthorization watch has not synced",
        ),
        (
            spawn_watch::<AuthorizationPolicy>,
            "the AuthorizationPolicy watch",
            "the AuthorizationPolicy watch has not synced",
        ),
        (
            spawn_watch::<MeshTlsAuthentication>,
            "the MeshTLSAuthentication watch",
            "the MeshTLSAuthentication watch has not synced",
        ),
        (
            spawn_watch::<NetworkAuthentication>,
            "the NetworkAuthentication watch",
            "the NetworkAuthentication watch has not synced",
        ),
        (
            spawn_watch::<HttpRoute>,
            "the HTTPRoute watch",
            "the HTTPRoute watch has not synced",
        ),
        (
            spawn_watch::<ExternalWorkload>,
            "the ExternalWorkload watch",
            "the ExternalWorkload watch has not synced",
        ),
        (
            spawn_watch::<HttpLocalRateLimitPolicy>,
            "the HTTPLocalRateLimitPolicy watch",
            "the HTTPLocalRateLimitPolicy watch has not synced",
        ),
        (
            spawn_watch::<EgressNetwork>,
            "the EgressNetwork watch",
            "the EgressNetwork watch has not synced",
        ),
        (
            spawn_gateway_watch::<gateway::HttpRoute>,
            "the Gateway API HTTPRoute watch",
            "the Gateway API HTTPRoute watch has not synced",
        ),
        (
            spawn_gateway_watch::<gateway::GrpcRoute>,
            "the GRPCRoute watch",
            "the GRPCRoute watch has not synced",
        ),
    ]
}

/// Serves InboundServerPolicies and OutboundPolicies on `listener`, with the same transport and
/// limits as Destination.
fn serve_policy(
    tasks: &mut Tasks,
    listener: TcpListener,
    index: &SharedIndex,
    cluster_domain: &str,
    metrics: &Arc<Metrics>,
    with: Listener<'_>,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let policy = PolicyService::new(
        Arc::new(index.clone()),
        cluster_domain,
        tasks.flag(),
        metrics.clone(),
    );
    with.serve(tasks, Arc::new(policy), listener);
    Ok(addr)
}

/// How both gRPC listeners serve: over TLS with `tls` (both present the one certificate from
/// identity), as h2c without, within `limits`.
#[derive(Clone)]
struct Listener<'a> {
    name: &'static str,
    limits: &'a Limits,
    tls: Option<Arc<ServerConfig>>,
    /// Whether a client must present a mesh certificate (`--require-client-identity`).
    require_client_identity: bool,
    connections: ServerMetrics,
}

impl Listener<'_> {
    /// Serves `service` on `listener` until shutdown; with `require_client_identity`, the
    /// connections that presented no certificate get UNAUTHENTICATED on every request.
    fn serve<S: GrpcService>(self, tasks: &mut Tasks, service: Arc<S>, listener: TcpListener) {
        let incoming = accept(
            listener,
            self.limits,
            self.tls.clone(),
            self.connections.clone(),
        );
        let limits = self.limits.clone();
        if self.tls.is_some() && self.require_client_identity {
            let (identified, unidentified) =
                split_by_identity(incoming, |conn| conn.presented_certificate());
            let refuse = Arc::new(Unidentified::new(service.shutdown()));
            let (signal, connections) = (tasks.signal(), self.connections.clone());
            let refused_limits = limits.clone();
            tasks.server(self.name, async move {
                serve(refuse, unidentified, &refused_limits, connections, signal).await
            });
            let signal = tasks.signal();
            tasks.server(self.name, async move {
                serve(service, identified, &limits, self.connections, signal).await
            });
            return;
        }
        let signal = tasks.signal();
        tasks.server(self.name, async move {
            serve(service, incoming, &limits, self.connections, signal).await
        });
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
