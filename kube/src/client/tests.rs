use super::*;
use hyper_util::{rt::TokioIo, server::conn::auto};
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering::SeqCst},
};

/// What the API server stand-in saw.
#[derive(Default)]
struct Seen {
    open: AtomicUsize,
    http2: AtomicUsize,
    http1: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// A TLS server offering h2 and http/1.1 that answers `{}` after 20ms, as `api.test`.
async fn api_server() -> (kube::Config, Arc<Seen>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["api.test".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, s) = (acceptor.clone(), s.clone());
            s.open.fetch_add(1, SeqCst);
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let seen = s.clone();
                    let svc = hyper::service::service_fn(move |req: Request<_>| {
                        let s = seen.clone();
                        async move {
                            let version = if req.version() == http::Version::HTTP_2 {
                                &s.http2
                            } else {
                                &s.http1
                            };
                            version.fetch_add(1, SeqCst);
                            let now = s.in_flight.fetch_add(1, SeqCst) + 1;
                            s.most_in_flight.fetch_max(now, SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            s.in_flight.fetch_sub(1, SeqCst);
                            let body = http_body_util::Full::new(&b"{}"[..]);
                            Ok::<_, std::convert::Infallible>(Response::new(body))
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                }
                s.open.fetch_sub(1, SeqCst);
            });
        }
    });
    let mut config = kube::Config::new(format!("https://127.0.0.1:{port}").parse().unwrap());
    config.root_cert = Some(vec![cert.cert.der().to_vec()]);
    config.tls_server_name = Some("api.test".into());
    (config, seen)
}

#[tokio::test]
async fn concurrent_requests_share_one_http2_connection_and_wait_for_a_slot() {
    let (config, seen) = api_server().await;
    let options = Options {
        max_in_flight: 16,
        ..Options::default()
    };
    let client = client_with(config, &options).unwrap();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let client = client.clone();
        requests.spawn(async move {
            let req = Request::get("/version").body(Vec::new()).unwrap();
            client.request_text(req).await
        });
    }
    while let Some(done) = requests.join_next().await {
        assert_eq!(done.unwrap().unwrap(), "{}");
    }
    assert_eq!((seen.http2.load(SeqCst), seen.http1.load(SeqCst)), (200, 0));
    let most = seen.most_in_flight.load(SeqCst);
    assert!(most <= 16, "{most} requests in flight at once");
    // Connections started alongside the first one, before ALPN said h2, are dropped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.open.load(SeqCst) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.open.load(SeqCst), 1, "connections left open");

    // The connection still serves.
    let req = Request::get("/version").body(Vec::new()).unwrap();
    assert_eq!(client.request_text(req).await.unwrap(), "{}");
    assert_eq!(seen.open.load(SeqCst), 1);
}
