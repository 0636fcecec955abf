//! The client against an in-process Identity server over TLS that signs CSRs with the issuer
//! fixture, records the tokens it is sent, and can be told to refuse or to sign another name.

use super::*;
use crate::{CertificateRequest, Issuer, KeyPair, fixtures, server_config};
use linkerd2_proxy_api::identity::identity_server::{Identity, IdentityServer};
use parking_lot::Mutex;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

const IDENTITY_NAME: &str =
    "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local";
const OUR_NAME: &str = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Sign,
    Refuse,
    /// Signs the CSR's key for another name.
    WrongName,
}

struct TestIdentity {
    issuer: Issuer,
    mode: Mutex<Mode>,
    tokens: Mutex<Vec<Vec<u8>>>,
}

#[tonic::async_trait]
impl Identity for TestIdentity {
    async fn certify(
        &self,
        req: Request<linkerd2_proxy_api::identity::CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let req = req.into_inner();
        self.tokens.lock().push(req.token);
        let csr = CertificateRequest::from_der(&req.certificate_signing_request)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        csr.check_identity(&req.identity)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let now = SystemTime::now();
        let leaf = match *self.mode.lock() {
            Mode::Refuse => return Err(Status::failed_precondition("token rejected")),
            Mode::Sign => self.issuer.sign(&csr, now),
            Mode::WrongName => self
                .issuer
                .sign_for("someone.else.cluster.local", &csr, now),
        }
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(CertifyResponse {
            leaf_certificate: leaf.certificate.to_vec(),
            intermediate_certificates: leaf.intermediates.iter().map(|c| c.to_vec()).collect(),
            valid_until: Some(leaf.not_after.into()),
        }))
    }
}

struct Fixture {
    addr: SocketAddr,
    identity: Arc<TestIdentity>,
    token: PathBuf,
    _dir: TempDir,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the Identity server on 127.0.0.1:0, presenting a certificate for
/// [`IDENTITY_NAME`] from the issuer fixture, and writes `token` to a file.
async fn start(token: &str) -> Fixture {
    let issuer = fixtures::issuer();
    let key = KeyPair::generate().unwrap();
    let leaf = issuer
        .sign_for(IDENTITY_NAME, &key, SystemTime::now())
        .unwrap();
    let cert = Arc::new(ServingCert::default());
    cert.set(&leaf, PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = Arc::new(TestIdentity {
        issuer,
        mode: Mutex::new(Mode::Sign),
        tokens: Mutex::default(),
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(cert, None).unwrap()));
    // One handshake at a time is enough for these tests.
    let incoming =
        futures::stream::unfold((listener, acceptor), |(listener, acceptor)| async move {
            loop {
                let (tcp, _) = listener.accept().await.ok()?;
                if let Ok(tls) = acceptor.accept(tcp).await {
                    return Some((Ok::<_, std::io::Error>(tls), (listener, acceptor)));
                }
            }
        });
    let svc = IdentityServer::from_arc(identity.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    let dir = std::env::temp_dir().join(format!(
        "oxlink-tls-certify-{}-{}",
        std::process::id(),
        addr.port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let token_path = dir.join("token");
    std::fs::write(&token_path, token).unwrap();
    Fixture {
        addr,
        identity,
        token: token_path,
        _dir: TempDir(dir),
    }
}

impl Fixture {
    fn config(&self) -> CertifyConfig {
        CertifyConfig {
            identity_addr: self.addr.to_string(),
            identity_server_name: IDENTITY_NAME.into(),
            anchors: fixtures::anchors(),
            name: OUR_NAME.into(),
            token_path: self.token.clone(),
        }
    }

    fn client(&self) -> CertifyClient {
        CertifyClient::new(self.config()).unwrap()
    }

    fn set_mode(&self, mode: Mode) {
        *self.identity.mode.lock() = mode;
    }

    fn tokens(&self) -> Vec<String> {
        self.identity
            .tokens
            .lock()
            .iter()
            .map(|t| String::from_utf8(t.clone()).unwrap())
            .collect()
    }
}

/// The chain the server presents to a client that trusts the anchors and expects `name`.
async fn presented(cert: Arc<ServingCert>, name: &str) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(server_config(cert, None).unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await;
    });
    let roots = fixtures::anchors().root_store();
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(
            rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
            tcp,
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn certifies_over_tls_and_installs_the_chain() {
    let fx = start("token-1\n").await;
    let client = fx.client();
    let cert = Arc::new(ServingCert::default());
    let before = SystemTime::now();
    let valid_until = client.certify(client.channel(), &cert).await.unwrap();
    assert!(cert.is_set());
    assert!(valid_until > before + Duration::from_secs(23 * 3600));
    // The token is sent byte for byte, newline included.
    assert_eq!(fx.tokens(), ["token-1\n"]);
    // A client that trusts the anchors accepts the installed chain for our name only.
    presented(cert.clone(), OUR_NAME).await.unwrap();
    let err = presented(cert, IDENTITY_NAME).await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn reads_the_token_file_for_every_request() {
    let fx = start("token-1").await;
    let client = fx.client();
    let cert = ServingCert::default();
    let channel = client.channel();
    client.certify(channel.clone(), &cert).await.unwrap();
    std::fs::write(&fx.token, "token-2").unwrap();
    client.certify(channel, &cert).await.unwrap();
    assert_eq!(fx.tokens(), ["token-1", "token-2"]);
}

#[tokio::test]
async fn a_missing_or_empty_token_sends_nothing() {
    let fx = start("").await;
    let client = fx.client();
    let cert = ServingCert::default();
    let err = client.certify(client.channel(), &cert).await.unwrap_err();
    assert!(matches!(err, CertifyError::EmptyToken(_)), "{err}");
    std::fs::remove_file(&fx.token).unwrap();
    let err = client.certify(client.channel(), &cert).await.unwrap_err();
    assert!(matches!(err, CertifyError::Token { .. }), "{err}");
    assert!(fx.tokens().is_empty());
    assert!(!cert.is_set());
}

#[tokio::test]
async fn identity_must_present_its_own_name() {
    let fx = start("token").await;
    let client = CertifyClient::new(CertifyConfig {
        identity_server_name: "linkerd-identity.other.serviceaccount.identity.other.cluster.local"
            .into(),
        ..fx.config()
    })
    .unwrap();
    let cert = ServingCert::default();
    let err = client.certify(client.channel(), &cert).await.unwrap_err();
    let CertifyError::Rpc(status) = &err else {
        panic!("expected a transport failure, got {err}");
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{err}");
    // The server never saw the request, so the token did not leave.
    assert!(fx.tokens().is_empty());
    assert!(!cert.is_set());
}

#[tokio::test]
async fn identity_must_chain_to_our_anchors() {
    let fx = start("token").await;
    let client = CertifyClient::new(CertifyConfig {
        anchors: TrustBundle::from_pem(fixtures::OTHER_ANCHOR_CRT.as_bytes()).unwrap(),
        ..fx.config()
    })
    .unwrap();
    let cert = ServingCert::default();
    let err = client.certify(client.channel(), &cert).await.unwrap_err();
    assert!(matches!(err, CertifyError::Rpc(_)), "{err}");
    assert!(fx.tokens().is_empty());
    assert!(!cert.is_set());
}

#[tokio::test]
async fn a_refusal_or_a_wrong_answer_leaves_the_certificate_alone() {
    let fx = start("token").await;
    let client = fx.client();
    let cert = Arc::new(ServingCert::default());
    fx.set_mode(Mode::Refuse);
    let err = client.certify(client.channel(), &cert).await.unwrap_err();
    let CertifyError::Rpc(status) = &err else {
        panic!("expected the refusal, got {err}");
    };
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(!cert.is_set());

    fx.set_mode(Mode::WrongName);
    let err = client.certify(client.channel(), &cert).await.unwrap_err();
    assert!(
        matches!(err, CertifyError::Verify(VerifyError::Name { .. })),
        "{err}"
    );
    assert!(!cert.is_set());

    // A good certificate stays when a later renewal fails.
    fx.set_mode(Mode::Sign);
    client.certify(client.channel(), &cert).await.unwrap();
    fx.set_mode(Mode::WrongName);
    client.certify(client.channel(), &cert).await.unwrap_err();
    presented(cert, OUR_NAME).await.unwrap();
}

#[tokio::test]
async fn run_installs_a_certificate_and_reports_its_expiry() {
    let fx = start("token").await;
    fx.set_mode(Mode::Refuse);
    let cert = Arc::new(ServingCert::default());
    let mut registry = Registry::default();
    let metrics = CertifyMetrics::register(&mut registry);
    let task = tokio::spawn(fx.client().run(cert.clone(), metrics.clone()));
    // Refused first: retried with backoff until identity signs.
    poll("a first Certify", || !fx.tokens().is_empty()).await;
    assert_eq!(metrics.expiry_timestamp(), 0);
    fx.set_mode(Mode::Sign);
    poll("the certificate installed", || cert.is_set()).await;
    let expiry = metrics.expiry_timestamp();
    let in_a_day = SystemTime::now() + Duration::from_secs(24 * 3600);
    let in_a_day = in_a_day.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(
        (in_a_day - 120..=in_a_day + 120).contains(&expiry),
        "{expiry}"
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(&format!(
            "identity_cert_expiration_timestamp_seconds {expiry}"
        )),
        "{text}"
    );
    assert!(text.contains("identity_cert_refresh_total 1"), "{text}");
    assert!(
        text.contains("identity_cert_refresh_failures_total "),
        "{text}"
    );
    task.abort();
}

#[test]
fn bad_configuration_is_refused_up_front() {
    let config = CertifyConfig {
        identity_addr: "127.0.0.1:8080".into(),
        identity_server_name: IDENTITY_NAME.into(),
        anchors: fixtures::anchors(),
        name: OUR_NAME.into(),
        token_path: "/nonexistent".into(),
    };
    for addr in ["127.0.0.1", "identity:8080/path", "not an address:1", ""] {
        let err = CertifyClient::new(CertifyConfig {
            identity_addr: addr.into(),
            ..config.clone()
        })
        .unwrap_err();
        assert!(matches!(err, CertifyError::Addr { .. }), "{addr}: {err}");
    }
    for name in ["", "bad name", "a..b", "10.0.0.1"] {
        let err = CertifyClient::new(CertifyConfig {
            name: name.into(),
            ..config.clone()
        })
        .unwrap_err();
        assert!(matches!(err, CertifyError::Name { .. }), "{name:?}: {err}");
    }
    let err = CertifyClient::new(CertifyConfig {
        identity_server_name: "".into(),
        ..config.clone()
    })
    .unwrap_err();
    assert!(matches!(err, CertifyError::Name { .. }), "{err}");
    assert_eq!(CertifyClient::new(config).unwrap().name(), OUR_NAME);
}

#[test]
fn renews_at_seventy_percent_of_the_remaining_lifetime() {
    let now = SystemTime::now();
    let h = Duration::from_secs(3600);
    assert_eq!(refresh_in(now + 10 * h, now), 7 * h);
    assert_eq!(refresh_in(now + 100 * h, now), 24 * h);
    assert_eq!(refresh_in(now + Duration::from_secs(5), now), MIN_REFRESH);
    assert_eq!(refresh_in(now - h, now), MIN_REFRESH);
}

/// Polls `done` every 20ms; panics, naming `what`, if it does not hold within 10s.
async fn poll(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after 10s waiting for {what}"));
}
