//! `--require-client-identity` over real mesh TLS: certificates from the fixture issuer, the
//! proxy's client (tonic) with and without a certificate, both gRPC listeners.

use super::*;
use crate::test_util::*;
use linkerd2_proxy_api::{
    destination::{GetDestination, destination_client::DestinationClient},
    inbound::{PortSpec, inbound_server_policies_client::InboundServerPoliciesClient},
};
use oxlink_tls::{CertificateRequest, Leaf, fixtures, pem};
use serde_json::json;
use std::time::SystemTime;
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

const SERVER: &str = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local";
const CLIENT: &str = "web.ns.serviceaccount.identity.linkerd.cluster.local";

/// A certificate for `name` from the fixture issuer, as identity issues them, and its key.
fn certified(name: &str) -> (Leaf, oxlink_tls::KeyPair) {
    let (key, csr) = fixtures::csr(name);
    let csr = CertificateRequest::from_der(&csr).unwrap();
    (
        fixtures::issuer().sign(&csr, SystemTime::now()).unwrap(),
        key,
    )
}

/// Destination and policy over mesh TLS; their addresses.
async fn start(tasks: &mut Tasks, require_client_identity: bool) -> (SocketAddr, SocketAddr) {
    let index = mk_index();
    index.write().apply(&mk_service(
        "web",
        "10.96.0.10",
        &[("http", 80, json!(8080))],
    ));
    index.write().apply(&mk_pod("web-1", "10.0.0.1", true));
    let cert = Arc::new(ServingCert::default());
    let (leaf, key) = certified(SERVER);
    let key = pem::private_key(key.serialize_pem().as_bytes()).unwrap();
    cert.set(&leaf, key).unwrap();
    let limits = Limits::GRPC;
    let listen = Listener {
        name: "the Destination gRPC server",
        limits: &limits,
        tls: Some(Arc::new(
            server_config(cert, Some(&fixtures::anchors())).unwrap(),
        )),
        require_client_identity,
        connections: ServerMetrics::unregistered("destination"),
    };
    let metrics = Arc::new(Metrics::default());
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let destination = DestinationGrpc::new(
        Arc::new(index.clone()),
        "cluster.local",
        tasks.flag(),
        metrics.clone(),
    );
    listen.clone().serve(tasks, Arc::new(destination), grpc);
    let policy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let policy_addr =
        serve_policy(tasks, policy, &index, "cluster.local", &metrics, listen).unwrap();
    (grpc_addr, policy_addr)
}

/// A TLS connection that verifies the server's name, presenting a mesh certificate if `meshed`.
async fn connect(addr: SocketAddr, meshed: bool) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(fixtures::ANCHOR_CRT))
        .domain_name(SERVER);
    if meshed {
        let (leaf, key) = certified(CLIENT);
        let chain = std::iter::once(&leaf.certificate).chain(&leaf.intermediates);
        tls = tls.identity(Identity::from_pem(
            pem::encode_certificates(chain),
            key.serialize_pem(),
        ));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// GetProfile, Get and WatchPort on the two listeners: each answer's first message, or its
/// status.
async fn ask(grpc: SocketAddr, policy: SocketAddr, meshed: bool) -> [Result<(), tonic::Status>; 3] {
    let mut destination = DestinationClient::new(connect(grpc, meshed).await);
    let request = GetDestination {
        path: "web.ns.svc.cluster.local:80".into(),
        ..Default::default()
    };
    let profile = match destination.get_profile(request.clone()).await {
        Ok(rsp) => rsp
            .into_inner()
            .message()
            .await
            .map(|m| assert!(m.is_some())),
        Err(status) => Err(status),
    };
    let endpoints = match destination.get(request).await {
        Ok(rsp) => rsp
            .into_inner()
            .message()
            .await
            .map(|m| assert!(m.is_some())),
        Err(status) => Err(status),
    };
    let mut inbound = InboundServerPoliciesClient::new(connect(policy, meshed).await);
    let spec = PortSpec {
        workload: "ns:web-1".into(),
        port: 8080,
    };
    let watch = match inbound.watch_port(spec).await {
        Ok(rsp) => rsp
            .into_inner()
            .message()
            .await
            .map(|m| assert!(m.is_some())),
        Err(status) => Err(status),
    };
    [profile, endpoints, watch]
}

#[tokio::test]
async fn require_client_identity_refuses_clients_without_a_mesh_certificate() {
    let mut tasks = Tasks::default();
    let (grpc, policy) = start(&mut tasks, true).await;
    for answer in ask(grpc, policy, true).await {
        answer.expect("a meshed client is served");
    }
    for answer in ask(grpc, policy, false).await {
        let status = answer.expect_err("a client without a certificate is refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), crate::grpc::REFUSED);
    }
    // The refusal is per connection: meshed clients are still served.
    for answer in ask(grpc, policy, true).await {
        answer.expect("a meshed client is served");
    }
    tasks.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn client_identity_is_optional_by_default() {
    let mut tasks = Tasks::default();
    let (grpc, policy) = start(&mut tasks, false).await;
    for meshed in [false, true] {
        for answer in ask(grpc, policy, meshed).await {
            answer.unwrap_or_else(|status| panic!("meshed={meshed}: {status:?}"));
        }
    }
    tasks.shutdown(std::time::Duration::from_secs(1)).await;
}
