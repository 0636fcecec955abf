//! The Certify client our own servers use to obtain their mesh identity from identity, the way a
//! proxy does: a P-256 key and a CSR for our name, made once; a ServiceAccount token read from
//! its file for every request (projected tokens rotate); `Certify` over TLS, verifying identity's
//! server name against the trust anchors; the answer verified against the same anchors and
//! installed into a [`ServingCert`]; renewal at 70% of the certificate's remaining lifetime, with
//! backoff on failure.

use crate::{ServingCert, ServingError, TrustBundle, VerifyError};
use linkerd2_proxy_api::identity::{
    CertifyRequest, CertifyResponse, identity_client::IdentityClient,
};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Renew when this share of the certificate's remaining lifetime has passed.
const REFRESH_AT: f64 = 0.7;
/// Never renew more often than this, whatever the certificate's lifetime.
const MIN_REFRESH: Duration = Duration::from_secs(10);
/// Never wait longer than this between renewals.
const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// The first wait after a failure; it doubles with every further failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one Certify call (connection included) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where identity is, how to recognise it, and who we are.
#[derive(Clone, Debug)]
pub struct CertifyConfig {
    /// identity's gRPC address, `host:port`.
    pub identity_addr: String,
    /// The name identity's serving certificate must be valid for
    /// (`linkerd-identity.<ns>.serviceaccount.identity.<ns>.<trust-domain>`).
    pub identity_server_name: String,
    /// The mesh's trust anchors: identity's chain and ours must both lead to them.
    pub anchors: TrustBundle,
    /// The identity we ask for: `<sa>.<ns>.serviceaccount.identity.<control-ns>.<trust-domain>`.
    pub name: String,
    /// Our ServiceAccount token file, read again for every request.
    pub token_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    #[error("{name:?} cannot be a certificate's DNS name: {reason}")]
    Name { name: String, reason: String },
    #[error("identity address {addr:?}: {reason}")]
    Addr { addr: String, reason: String },
    #[error("generating the key and CSR: {0}")]
    Key(#[from] rcgen::Error),
    #[error("reading the ServiceAccount token {}: {source}", path.display())]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the ServiceAccount token file {} is empty", .0.display())]
    EmptyToken(PathBuf),
    #[error("Certify: {}: {}", .0.code(), .0.message())]
    Rpc(Box<tonic::Status>),
    #[error("identity's answer: {0}")]
    Response(String),
    #[error("identity's answer: {0}")]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Serving(#[from] ServingError),
}

/// What the client reports, named like the proxy's identity metrics.
#[derive(Debug, Default)]
pub struct CertifyMetrics {
    expiry: Gauge,
    refreshes: Counter,
    failures: Counter,
}

/// Obtains and renews one server's certificate.
#[derive(Debug)]
pub struct CertifyClient {
    config: CertifyConfig,
    endpoint: Endpoint,
    key: KeyPair,
    csr: Vec<u8>,
}

// === impl CertifyMetrics ===

impl CertifyMetrics {
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let metrics = Arc::new(Self::default());
        registry.register(
            "identity_cert_expiration_timestamp_seconds",
            "When the current certificate expires, in seconds since the epoch (0 until one is held)",
            metrics.expiry.clone(),
        );
        registry.register(
            "identity_cert_refresh",
            "Certificates obtained from identity",
            metrics.refreshes.clone(),
        );
        registry.register(
            "identity_cert_refresh_failures",
            "Certify attempts that failed",
            metrics.failures.clone(),
        );
        metrics
    }

    /// The current certificate's expiry in seconds since the epoch, 0 before the first.
    pub fn expiry_timestamp(&self) -> i64 {
        self.expiry.get()
    }
}

// === impl CertifyClient ===

impl CertifyClient {
    /// Makes our key and CSR and checks the configuration; nothing is sent yet.
    pub fn new(config: CertifyConfig) -> Result<Self, CertifyError> {
        dns_name(&config.name)?;
        dns_name(&config.identity_server_name)?;
        let (key, csr) =
            crate::generate::key_and_csr(&config.name).map_err(|e| CertifyError::Name {
                name: config.name.clone(),
                reason: e.to_string(),
            })?;
        let addr_error = |reason: String| CertifyError::Addr {
            addr: config.identity_addr.clone(),
            reason,
        };
        let uri = format!("https://{}", config.identity_addr);
        let authority = uri
            .parse::<tonic::codegen::http::Uri>()
            .map_err(|e| addr_error(e.to_string()))?;
        if authority.port_u16().is_none() || authority.path() != "/" {
            return Err(addr_error("expected host:port".into()));
        }
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(config.anchors.to_pem()))
            .domain_name(config.identity_server_name.clone());
        let endpoint = Endpoint::from_shared(uri)
            .and_then(|e| e.tls_config(tls))
            .map_err(|e| addr_error(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        Ok(Self {
            config,
            endpoint,
            key,
            csr,
        })
    }

    /// The identity this client asks for.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// A channel to identity that connects on first use and reconnects as needed. Must be
    /// called within a Tokio runtime.
    pub fn channel(&self) -> Channel {
        self.endpoint.connect_lazy()
    }

    /// One Certify round trip: reads the token, sends our CSR, verifies the answer and installs
    /// it into `cert`. Returns the certificate's `valid_until`. On error, `cert` is unchanged.
    pub async fn certify(
        &self,
        channel: Channel,
        cert: &ServingCert,
    ) -> Result<SystemTime, CertifyError> {
        let token = self.token()?;
        let rsp = IdentityClient::new(channel)
            .certify(CertifyRequest {
                identity: self.config.name.clone(),
                token,
                certificate_signing_request: self.csr.clone(),
            })
            .await
            .map_err(|status| CertifyError::Rpc(Box::new(status)))?
            .into_inner();
        let (chain, valid_until) = self.check(rsp, SystemTime::now())?;
        cert.set_chain(chain, PrivateKeyDer::Pkcs8(self.key.serialize_der().into()))?;
        Ok(valid_until)
    }

    /// Keeps `cert` holding a current certificate: certifies, waits until 70% of the
    /// certificate's remaining lifetime has passed, and again; after a failure it retries with
    /// exponential backoff (1s doubling to 60s). Runs until dropped.
    pub async fn run(self, cert: Arc<ServingCert>, metrics: Arc<CertifyMetrics>) {
        let channel = self.channel();
        let mut backoff = MIN_BACKOFF;
        loop {
            let wait = match self.certify(channel.clone(), &cert).await {
                Ok(valid_until) => {
                    backoff = MIN_BACKOFF;
                    metrics.refreshes.inc();
                    metrics.expiry.set(
                        valid_until
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                    );
                    let wait = refresh_in(valid_until, SystemTime::now());
                    tracing::info!(name = %self.config.name, ?valid_until, renew_in = ?wait, "certified by identity");
                    wait
                }
                Err(error) => {
                    metrics.failures.inc();
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tracing::warn!(name = %self.config.name, %error, retry_in = ?wait, "certify failed");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The token file's bytes, sent as they are (like the proxy does).
    fn token(&self) -> Result<Vec<u8>, CertifyError> {
        let path = &self.config.token_path;
        let token = std::fs::read(path).map_err(|source| CertifyError::Token {
            path: path.clone(),
            source,
        })?;
        if token.iter().all(u8::is_ascii_whitespace) {
            return Err(CertifyError::EmptyToken(path.clone()));
        }
        Ok(token)
    }

    /// What the proxy checks: the chain verifies to the anchors and names us, the leaf carries
    /// our key, and `valid_until` is in the future.
    fn check(
        &self,
        rsp: CertifyResponse,
        now: SystemTime,
    ) -> Result<(Vec<CertificateDer<'static>>, SystemTime), CertifyError> {
        let leaf = CertificateDer::from(rsp.leaf_certificate);
        let intermediates = rsp
            .intermediate_certificates
            .into_iter()
            .map(CertificateDer::from)
            .collect::<Vec<_>>();
        self.config
            .anchors
            .verify_leaf(&leaf, &intermediates, &self.config.name, now)?;
        let (_, parsed) = X509Certificate::from_der(&leaf)
            .map_err(|e| CertifyError::Response(format!("the leaf cannot be parsed: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != self.key.public_key_raw() {
            return Err(CertifyError::Response(
                "the leaf does not carry our key".into(),
            ));
        }
        let valid_until = rsp
            .valid_until
            .ok_or_else(|| CertifyError::Response("valid_until is not set".into()))?;
        let valid_until = SystemTime::try_from(valid_until)
            .map_err(|e| CertifyError::Response(format!("valid_until: {e}")))?;
        if valid_until <= now {
            return Err(CertifyError::Response(format!(
                "valid_until {} is not in the future",
                crate::utc_rfc3339(valid_until)
            )));
        }
        let chain = std::iter::once(leaf).chain(intermediates).collect();
        Ok((chain, valid_until))
    }
}

/// Checks that `name` is a DNS name (identities are never IP addresses).
fn dns_name(name: &str) -> Result<(), CertifyError> {
    let reason = match ServerName::try_from(name) {
        Ok(ServerName::DnsName(_)) => return Ok(()),
        Ok(_) => "an IP address is not an identity".to_string(),
        Err(e) => e.to_string(),
    };
    Err(CertifyError::Name {
        name: name.to_string(),
        reason,
    })
}

/// When to renew a certificate valid until `valid_until`: at 70% of its remaining lifetime,
/// within [10s, 24h].
pub fn refresh_in(valid_until: SystemTime, now: SystemTime) -> Duration {
    valid_until
        .duration_since(now)
        .unwrap_or_default()
        .mul_f64(REFRESH_AT)
        .clamp(MIN_REFRESH, MAX_REFRESH)
}

#[cfg(test)]
mod tests;
