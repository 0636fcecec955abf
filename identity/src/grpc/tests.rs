//! The service over a real socket, with a real tonic client speaking linkerd2-proxy-api.

use super::*;
use crate::{
    serve::{serve_grpc, spawn_self_certificate},
    test_support::{DB, Harness, WEB},
};
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use oxlink_tls::{ServingCert, fixtures, server_config};
use std::{net::SocketAddr, time::SystemTime};
use tokio::net::TcpListener;
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

const SELF: &str = "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local";

async fn start(h: &Harness, tls: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = tls.then(|| {
        let cert = Arc::new(ServingCert::default());
        spawn_self_certificate(h.issuer.clone(), SELF.into(), cert.clone());
        Arc::new(server_config(cert, Some(&fixtures::anchors())).unwrap())
    });
    let svc = IdentityGrpc::new(h.certifier.clone()).svc();
    let connections = oxlink_admin::serve::ServerMetrics::unregistered("identity");
    tokio::spawn(async move {
        let limits = oxlink_admin::serve::Limits::GRPC;
        serve_grpc(
            listener,
            svc,
            tls,
            &limits,
            connections,
            std::future::pending(),
        )
        .await
    });
    addr
}

async fn plain_client(addr: SocketAddr) -> IdentityClient<Channel> {
    IdentityClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn tls_endpoint(addr: SocketAddr, server_name: &str) -> Endpoint {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(fixtures::ANCHOR_CRT))
        .domain_name(server_name);
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
}

fn certify_request(identity: &str, token: &str) -> api::CertifyRequest {
    let (_, csr) = fixtures::csr(identity);
    api::CertifyRequest {
        identity: identity.into(),
        token: token.as_bytes().to_vec(),
        certificate_signing_request: csr,
    }
}

fn verify(rsp: &api::CertifyResponse, name: &str) {
    let leaf = rsp.leaf_certificate.clone().into();
    let intermediates = rsp
        .intermediate_certificates
        .iter()
        .map(|c| c.clone().into())
        .collect::<Vec<oxlink_tls::CertificateDer<'static>>>();
    fixtures::anchors()
        .verify_leaf(&leaf, &intermediates, name, SystemTime::now())
        .unwrap();
    let valid_until = rsp.valid_until.unwrap();
    assert!(valid_until.seconds > prost_types::Timestamp::from(SystemTime::now()).seconds);
}

async fn certify_over(channel: Channel) -> Result<api::CertifyResponse, Status> {
    IdentityClient::new(channel)
        .certify(certify_request(WEB, "web-token"))
        .await
        .map(Response::into_inner)
}

#[tokio::test]
async fn certifies_over_h2c() {
    let h = Harness::new();
    let mut client = plain_client(start(&h, false).await).await;
    let rsp = client
        .certify(certify_request(WEB, "web-token\n"))
        .await
        .unwrap()
        .into_inner();
    verify(&rsp, WEB);
    assert_eq!(rsp.intermediate_certificates.len(), 1);
}

#[tokio::test]
async fn refusals_carry_their_status_codes_over_the_wire() {
    let h = Harness::new();
    let mut client = plain_client(start(&h, false).await).await;
    let mut garbage = certify_request(WEB, "web-token");
    garbage.certificate_signing_request = b"garbage".to_vec();
    for (req, code) in [
        (garbage, Code::InvalidArgument),
        (certify_request(WEB, "forged"), Code::InvalidArgument),
        (certify_request(WEB, "db-token"), Code::FailedPrecondition),
        (certify_request(DB, "web-token"), Code::FailedPrecondition),
        (api::CertifyRequest::default(), Code::InvalidArgument),
    ] {
        let status = client.certify(req).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
    h.assert_nothing_issued();
}

#[tokio::test]
async fn unavailable_over_the_wire_without_an_issuer() {
    let h = Harness::without_issuer();
    let mut client = plain_client(start(&h, false).await).await;
    let status = client
        .certify(certify_request(WEB, "web-token"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "cert issuer not ready yet");
}

#[tokio::test]
async fn certifies_over_tls_with_its_own_identity() {
    let h = Harness::new();
    let addr = start(&h, true).await;
    // Like a proxy: TLS 1.3, no client certificate, the server name verified to the anchors.
    let channel = tls_endpoint(addr, SELF).connect().await.unwrap();
    verify(&certify_over(channel).await.unwrap(), WEB);
}

#[tokio::test]
async fn tls_clients_refuse_another_server_name() {
    let h = Harness::new();
    let addr = start(&h, true).await;
    let wrong = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local";
    let result = match tls_endpoint(addr, wrong).connect().await {
        Ok(channel) => certify_over(channel)
            .await
            .map(drop)
            .map_err(|s| s.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(result.is_err());
    h.assert_nothing_issued();
}

#[tokio::test]
async fn tls_serving_follows_issuer_rotation() {
    let h = Harness::new();
    let addr = start(&h, true).await;
    let channel = tls_endpoint(addr, SELF).connect().await.unwrap();
    certify_over(channel).await.unwrap();
    h.issuer.set(fixtures::issuer_2());
    let issuer_2 = fixtures::issuer_2().credentials().chain()[0].to_vec();
    // New connections, and the leaves they get, follow the new issuer.
    let rsp = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let channel = tls_endpoint(addr, SELF).connect().await.unwrap();
            let rsp = certify_over(channel).await.unwrap();
            if rsp.intermediate_certificates[0] == issuer_2 {
                return rsp;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    verify(&rsp, WEB);
}

#[tokio::test]
async fn a_client_that_never_completes_the_tls_handshake_is_closed_and_others_are_served() {
    use oxlink_admin::serve::{Limits, ServerMetrics};
    use tokio::io::AsyncReadExt;
    let h = Harness::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cert = Arc::new(ServingCert::default());
    spawn_self_certificate(h.issuer.clone(), SELF.into(), cert.clone());
    let tls = Arc::new(server_config(cert, Some(&fixtures::anchors())).unwrap());
    let svc = IdentityGrpc::new(h.certifier.clone()).svc();
    let connections = ServerMetrics::unregistered("identity");
    let c = connections.clone();
    tokio::spawn(async move {
        let limits = Limits {
            handshake_timeout: std::time::Duration::from_millis(300),
            ..Limits::GRPC
        };
        serve_grpc(listener, svc, Some(tls), &limits, c, std::future::pending()).await
    });
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        silent.read(&mut [0u8; 16]),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a client that never sent a ClientHello was kept"
    );
    assert_eq!(connections.refused_total("handshake_timeout"), 1);
    let channel = tls_endpoint(addr, SELF).connect().await.unwrap();
    certify_over(channel).await.unwrap();
}
