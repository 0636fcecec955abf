use super::*;
use crate::{
    admission::{BoxFuture, Cluster, LookupError, StaticConfig},
    inject::Owner,
    values::Values,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use oxlink_admin::serve::Limits;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::{collections::BTreeMap, time::Duration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct EveryNamespaceEnabled;

impl Cluster for EveryNamespaceEnabled {
    fn namespace_annotations<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, LookupError>> {
        Box::pin(async {
            Ok(BTreeMap::from([(
                "linkerd.io/inject".to_string(),
                "enabled".to_string(),
            )]))
        })
    }

    fn owner<'a>(
        &'a self,
        _: &'a str,
        controller: &'a OwnerReference,
    ) -> BoxFuture<'a, Result<Owner, LookupError>> {
        let owner = Owner {
            kind: controller.kind.clone(),
            name: controller.name.clone(),
        };
        Box::pin(async move { Ok(owner) })
    }
}

struct Running {
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    roots: rustls::RootCertStore,
    admission: Arc<Admission>,
    _running: crate::serve::Running,
}

async fn start(max_body_bytes: usize) -> Running {
    start_with(max_body_bytes, Limits::WEBHOOK).await
}

async fn start_with(max_body_bytes: usize, limits: Limits) -> Running {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let serving = Arc::new(ServingCert::default());
    serving
        .set_chain(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();

    let config = StaticConfig {
        values: Arc::new(Values::default()),
        trust_anchors_pem: oxlink_tls::fixtures::ANCHOR_CRT.into(),
    };
    let admission = Admission::new(
        Injector::new(
            Arc::new(EveryNamespaceEnabled),
            Arc::new(config),
            "linkerd".into(),
        ),
        max_body_bytes,
    );
    let admission_handle = admission.clone();
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, admin_addr) = (https.local_addr().unwrap(), admin.local_addr().unwrap());
    let running = crate::serve::spawn(
        admission.clone(),
        tls_config(serving).unwrap(),
        limits,
        https,
        Some(admin),
        oxlink_admin::Tasks::default(),
    )
    .unwrap();
    Running {
        addr,
        admin: admin_addr,
        roots,
        admission: admission_handle,
        _running: running,
    }
}

async fn tls_connect(server: &Running) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(server.roots.clone())
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends one HTTP/1.1 request over TLS and returns (status, body).
async fn https(server: &Running, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    exchange(tls_connect(server).await, method, path, body).await
}

async fn http(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    exchange(tcp, "GET", path, b"").await
}

async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (and close) before reading a body it refuses.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn review() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "web",
            "operation": "CREATE",
            "object": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}},
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn serves_reviews_health_and_errors_over_tls() {
    let server = start(64 * 1024).await;
    assert_eq!(https(&server, "GET", "/live", b"").await.0, 200);
    assert_eq!(https(&server, "GET", "/ready", b"").await.0, 200);

    let (status, body) = https(&server, "POST", "/inject", &review()).await;
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["response"]["uid"], "u-1");
    assert_eq!(response["response"]["allowed"], true);
    assert_eq!(response["response"]["patchType"], "JSONPatch");

    let (status, body) = https(&server, "POST", "/inject", b"{not json").await;
    assert_eq!(status, 400);
    assert!(body.contains("not an AdmissionReview"), "{body}");

    let (status, body) = https(&server, "POST", "/inject", &vec![b' '; 100 * 1024]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than 65536 bytes"), "{body}");

    assert_eq!(https(&server, "GET", "/inject", b"").await.0, 405);
    assert_eq!(https(&server, "GET", "/metrics", b"").await.0, 404);

    let (status, metrics) = http(server.admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("proxy_inject_admission_requests_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "proxy_inject_admission_responses_total{result=\"injected\",skip_reason=\"\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(http(server.admin, "/live").await.0, 200);
    assert_eq!(http(server.admin, "/ready").await.0, 200);
    server.admission.set_ready(false);
    assert_eq!(http(server.admin, "/ready").await.0, 503);
    assert_eq!(https(&server, "GET", "/ready", b"").await.0, 503);
    assert_eq!(http(server.admin, "/inject").await.0, 404);
}

fn profile_review(path_regex: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-2",
            "kind": {"group": "linkerd.io", "version": "v1alpha2", "kind": "ServiceProfile"},
            "namespace": "web",
            "operation": "CREATE",
            "object": {
                "metadata": {"name": "web.web.svc.cluster.local"},
                "spec": {"routes": [{"name": "r", "condition": {"pathRegex": path_regex}}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn validates_service_profiles_and_policy_on_their_own_routes() {
    let server = start(64 * 1024).await;
    let (status, body) = https(
        &server,
        "POST",
        "/validate/serviceprofile",
        &profile_review("/[^/]+"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["response"]["uid"], "u-2");
    assert_eq!(response["response"]["allowed"], true);

    let (status, body) = https(
        &server,
        "POST",
        "/validate/serviceprofile",
        &profile_review("/("),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["response"]["allowed"], false);
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.routes[0].condition.pathRegex: invalid regular expression"),
        "{message}"
    );

    // The policy route does not check ServiceProfiles.
    let (status, body) = https(&server, "POST", "/validate/policy", &profile_review("/(")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"allowed\":true"), "{body}");

    let (status, body) = https(&server, "POST", "/validate/policy", b"[]").await;
    assert_eq!(status, 400);
    assert!(body.contains("not an AdmissionReview"), "{body}");
    assert_eq!(https(&server, "GET", "/validate/policy", b"").await.0, 405);

    let (_, metrics) = http(server.admin, "/metrics").await;
    for line in [
        "validator_admission_requests_total{webhook=\"serviceprofile\"} 2",
        "validator_admission_requests_total{webhook=\"policy\"} 2",
        "validator_admission_responses_total{webhook=\"serviceprofile\",kind=\"ServiceProfile\",result=\"allowed\"} 1",
        "validator_admission_responses_total{webhook=\"serviceprofile\",kind=\"ServiceProfile\",result=\"denied\"} 1",
        "validator_admission_responses_total{webhook=\"policy\",kind=\"ServiceProfile\",result=\"ignored\"} 1",
        "validator_admission_responses_total{webhook=\"policy\",kind=\"\",result=\"bad_request\"} 1",
        "validator_admission_duration_seconds_count{webhook=\"policy\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn a_request_head_or_body_that_does_not_arrive_in_time_is_refused() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(300),
        request_body_timeout: Duration::from_millis(300),
        ..Limits::WEBHOOK
    };
    let server = start_with(64 * 1024, limits).await;
    let patience = Duration::from_secs(10);

    // Half a request head, then nothing: the connection is closed.
    let mut slow = tls_connect(&server).await;
    slow.write_all(b"POST /inject HTTP/1.1\r\nhost: local")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(patience, slow.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "a client that never finished its request head was kept"
    );

    // A whole head, half the body: 408, and the metrics count the refused request.
    let mut slow = tls_connect(&server).await;
    slow.write_all(
        b"POST /inject HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"apiVersion\"",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(patience, slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 300ms"), "{answer}");

    // A TCP client that never starts TLS is closed too; honest clients are served.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let read = tokio::time::timeout(patience, silent.read(&mut [0u8; 8])).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent client was kept"
    );
    assert_eq!(https(&server, "GET", "/live", b"").await.0, 200);
    let (_, metrics) = http(server.admin, "/metrics").await;
    assert!(
        metrics.contains("server_connections_refused_total{server=\"proxy_injector\",reason=\"handshake_timeout\"} 1"),
        "{metrics}"
    );
}
