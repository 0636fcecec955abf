use super::*;
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener},
};

const MANIFEST: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: example/web:1
";

/// Answers one request on a plain or TLS stream: 200 with the manifest on `/web.yaml`, 404
/// otherwise.
fn answer(stream: &mut dyn ReadWrite) {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => return,
        }
    }
    let request = String::from_utf8_lossy(&request);
    let (status, body) = if request.starts_with("GET /web.yaml ") {
        ("200 OK", MANIFEST)
    } else {
        ("404 Not Found", "no such file\n")
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A server on 127.0.0.1 answering `requests` requests, over TLS when `tls` is given.
fn serve(requests: usize, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            match &tls {
                None => answer(&mut stream),
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    answer(&mut tls);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
        }
    });
    addr
}

/// A CA and a certificate for 127.0.0.1 that it signed: the server's configuration, and roots
/// that trust the CA.
fn tls() -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let key = oxlink_tls::pem::private_key(key.serialize_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (Arc::new(config), roots)
}

#[test]
fn fetches_a_manifest_over_http_and_https() {
    let addr = serve(1, None);
    assert_eq!(fetch(&format!("http://{addr}/web.yaml")).unwrap(), MANIFEST);

    let (config, roots) = tls();
    let addr = serve(1, Some(config));
    assert_eq!(
        fetch_with(&format!("https://{addr}/web.yaml"), roots).unwrap(),
        MANIFEST
    );
}

#[test]
fn the_inject_command_reads_urls() {
    let addr = serve(1, None);
    let url = format!("http://{addr}/web.yaml");
    let cli = <crate::Cli as clap::Parser>::try_parse_from([
        "oxlink",
        "inject",
        "--ignore-cluster",
        &url,
    ])
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    match cli.command {
        crate::Command::Inject(a) => a
            .run(&cli.cluster, &mut &b""[..], &mut out, &mut err)
            .unwrap(),
        _ => unreachable!(),
    }
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("linkerd.io/inject: enabled"), "{out}");
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "\ndeployment \"web\" annotated\n\n"
    );
}

#[test]
fn unreachable_and_failing_urls_are_precise_errors() {
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/web.yaml");
    let error = format!("{:#}", fetch(&url).unwrap_err());
    assert!(
        error.starts_with(&format!("could not fetch {url}: ")),
        "{error}"
    );
    assert!(error.contains("Connection refused"), "{error}");

    let addr = serve(1, None);
    let url = format!("http://{addr}/missing.yaml");
    let error = format!("{:#}", fetch(&url).unwrap_err());
    assert_eq!(
        error,
        format!("could not fetch {url}: the server answered 404 Not Found")
    );

    // A certificate that the roots do not trust.
    let (config, _) = tls();
    let addr = serve(1, Some(config));
    let url = format!("https://{addr}/web.yaml");
    let error = format!(
        "{:#}",
        fetch_with(&url, rustls::RootCertStore::empty()).unwrap_err()
    );
    assert!(error.contains("invalid peer certificate"), "{error}");

    let error = format!("{:#}", fetch("http://").unwrap_err());
    assert!(error.contains("\"http://\" is not a valid URL"), "{error}");
}
