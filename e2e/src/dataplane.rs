//! The real data plane on localkube: whether pods run for real (the pod runtime of
//! `e2e/pod-runtime` runs), commands run inside a pod's network namespace as a `kubectl exec`
//! would, and the proxies' metrics.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use std::{net::IpAddr, path::PathBuf, process::Command, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Whether pods run for real on the suite's cluster, or why not: the runtime writes
/// `pod-runtime.ready` into the cluster's directory while it runs them.
pub fn runtime() -> std::result::Result<(), String> {
    let dir = std::env::var_os(crate::localkube::DIR_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} is not set: not on localkube", crate::localkube::DIR_ENV))?;
    match dir.join("pod-runtime.ready").exists() {
        true => Ok(()),
        false => Err(
            "the pod runtime does not run: pods are status only (it needs root, iptables, \
             OXLINK_PROXY_BIN and OXLINK_PROXY_INIT_BIN)"
                .into(),
        ),
    }
}

/// One request's outcome, as `oxlink-testapp get` prints it.
#[derive(Debug, serde::Deserialize)]
pub struct Reply {
    pub status: Option<u16>,
    pub served_by: Option<String>,
    pub ms: Option<f64>,
    pub error: Option<String>,
}

/// Runs `oxlink-testapp ARGS` inside the pod's network namespace (so its traffic goes through
/// the pod's proxy, as the pod's own would), with the pod's resolver.
pub fn testapp(pod: &Pod, args: &[&str]) -> Result<String> {
    let uid = pod.metadata.uid.as_deref().context("the pod has no UID")?;
    let ns = oxlink_pod_runtime::net::netns_name(uid);
    let bin = PathBuf::from(oxlink_pod_runtime::STATE_DIR).join("bin/oxlink-testapp");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&bin)
        .args(args)
        .output()
        .context("running ip netns exec")?;
    if !out.status.success() {
        bail!(
            "oxlink-testapp {args:?} in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `count` sequential GETs of `url` from inside the pod.
pub fn get(pod: &Pod, url: &str, count: u32) -> Result<Vec<Reply>> {
    let out = testapp(
        pod,
        &["get", url, "--count", &count.to_string(), "--timeout", "5s"],
    )?;
    out.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {l:?}")))
        .collect()
}

/// The Prometheus text a proxy serves on its admin port.
pub async fn proxy_metrics(ip: IpAddr) -> Result<String> {
    http_get(ip, 4191, "/metrics")
        .await
        .context("the proxy's admin port")
}

/// The body of a plain HTTP/1.0 GET from the host that must answer 200 within 10s.
pub async fn http_get(ip: IpAddr, port: u16, path: &str) -> Result<String> {
    let fetch = async {
        let mut conn = TcpStream::connect((ip, port)).await?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: e2e\r\n\r\n").as_bytes())
            .await?;
        let mut body = String::new();
        conn.read_to_string(&mut body).await?;
        anyhow::Ok(body)
    };
    let text = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .with_context(|| format!("GET {ip}:{port}{path} did not answer within 10s"))??;
    match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_string())
        }
        _ => bail!("GET {ip}:{port}{path} answered {:?}", text.lines().next()),
    }
}

/// The pod labelled `app=APP` among `pods`.
pub fn pod_by_app(
    pods: &[k8s_openapi::api::core::v1::Pod],
    app: &str,
) -> Result<k8s_openapi::api::core::v1::Pod> {
    pods.iter()
        .find(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str)
                == Some(app)
        })
        .cloned()
        .with_context(|| format!("no {app} pod"))
}

/// The lines of a metrics text with this name that carry every one of `labels`.
pub fn series<'a>(text: &'a str, name: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .collect()
}

/// The sum of the values of those lines.
pub fn sum(lines: &[&str]) -> f64 {
    lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The certificate chain a proxy serves to a TLS client asking for `server_name` (its own
/// identity) on `ip:port`: the proxy's inbound side terminates TLS for its own name. Nothing is
/// verified here; the caller judges the chain.
pub async fn served_certificates(
    ip: IpAddr,
    port: u16,
    server_name: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::{
        DigitallySignedStruct, SignatureScheme,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        pki_types::{CertificateDer, ServerName, UnixTime},
    };
    use std::sync::Arc;

    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string())?;
    let handshake = async {
        let tcp = TcpStream::connect((ip, port)).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        anyhow::Ok(
            tls.get_ref()
                .1
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .map(|c| c.clone().into_owned())
                .collect::<Vec<_>>(),
        )
    };
    tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .with_context(|| format!("the TLS handshake with {ip}:{port} did not finish within 10s"))?
}
