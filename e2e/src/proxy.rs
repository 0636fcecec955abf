//! A simulated linkerd2-proxy, as far as identity goes: it makes a P-256 key and a DER CSR for
//! its identity, presents a ServiceAccount token, calls Certify over TLS while verifying the
//! server's identity against its trust anchors, and checks the answer the way the proxy does;
//! with that certificate it talks to destination over mesh TLS.

use anyhow::{Context, Result, bail, ensure};
use linkerd2_proxy_api::identity::{
    CertifyRequest, CertifyResponse, identity_client::IdentityClient,
};
use oxlink_tls::{CertificateDer, KeyPair, TrustBundle};
use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// One proxy's identity material.
pub struct SimulatedProxy {
    pub name: String,
    key: KeyPair,
    csr: Vec<u8>,
    anchors: TrustBundle,
}

/// What a successful Certify gave the proxy.
#[derive(Debug)]
pub struct Certified {
    pub leaf: CertificateDer<'static>,
    pub intermediates: Vec<CertificateDer<'static>>,
    pub valid_until: SystemTime,
}

impl SimulatedProxy {
    /// A proxy whose local identity is `name`, trusting `anchors_pem`.
    pub fn new(name: &str, anchors_pem: &str) -> Result<Self> {
        let (key, csr) = oxlink_tls::fixtures::csr(name);
        Ok(Self {
            name: name.to_string(),
            key,
            csr,
            anchors: TrustBundle::from_pem(anchors_pem.as_bytes())?,
        })
    }

    /// A TLS channel to identity at `addr`, verifying it as `server_name` (the proxy's
    /// `LINKERD2_PROXY_IDENTITY_SVC_NAME`).
    pub async fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<Channel> {
        self.connect_tls(addr, server_name, None).await
    }

    /// A TLS channel to a control-plane server at `addr` (destination's
    /// `LINKERD2_PROXY_DESTINATION_SVC_ADDR`), verifying it as `server_name` and presenting the
    /// certificate identity issued to this proxy, as a meshed proxy does.
    pub async fn connect_meshed(
        &self,
        addr: SocketAddr,
        server_name: &str,
        certified: &Certified,
    ) -> Result<Channel> {
        let chain = std::iter::once(&certified.leaf).chain(&certified.intermediates);
        let identity = Identity::from_pem(
            oxlink_tls::pem::encode_certificates(chain),
            self.key.serialize_pem(),
        );
        self.connect_tls(addr, server_name, Some(identity)).await
    }

    async fn connect_tls(
        &self,
        addr: SocketAddr,
        server_name: &str,
        identity: Option<Identity>,
    ) -> Result<Channel> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.anchors.to_pem()))
            .domain_name(server_name);
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("TLS to {addr} as {server_name}"))
    }

    /// A plaintext channel, as the proxy uses for a loopback identity address (identity in
    /// `--plaintext` mode behind a sidecar).
    pub async fn connect_plaintext(&self, addr: SocketAddr) -> Result<Channel> {
        Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("h2c to identity at {addr}"))
    }

    /// Calls Certify with `token` (sent byte for byte, like the token file) and verifies the
    /// answer. A refusal is returned as the status.
    pub async fn certify(
        &self,
        channel: Channel,
        token: &str,
    ) -> Result<std::result::Result<Certified, tonic::Status>> {
        self.certify_as(channel, &self.name, token, self.csr.clone())
            .await
    }

    /// Like [`Self::certify`] but with an arbitrary identity and CSR, to misbehave.
    pub async fn certify_as(
        &self,
        channel: Channel,
        identity: &str,
        token: &str,
        csr: Vec<u8>,
    ) -> Result<std::result::Result<Certified, tonic::Status>> {
        let rsp = IdentityClient::new(channel)
            .certify(CertifyRequest {
                identity: identity.to_string(),
                token: format!("{token}\n").into_bytes(),
                certificate_signing_request: csr,
            })
            .await;
        match rsp {
            Ok(rsp) => self.check(rsp.into_inner()).map(Ok),
            Err(status) => Ok(Err(status)),
        }
    }

    /// What the proxy checks: the chain verifies to the anchors, the leaf names this proxy and
    /// carries its key, and `valid_until` is in the future.
    fn check(&self, rsp: CertifyResponse) -> Result<Certified> {
        let leaf = CertificateDer::from(rsp.leaf_certificate);
        let intermediates = rsp
            .intermediate_certificates
            .into_iter()
            .map(CertificateDer::from)
            .collect::<Vec<_>>();
        let now = SystemTime::now();
        self.anchors
            .verify_leaf(&leaf, &intermediates, &self.name, now)
            .context("the returned chain")?;
        let raw = self.key.public_key_raw();
        ensure!(
            leaf.as_ref().windows(raw.len()).any(|w| w == raw),
            "the leaf does not carry the proxy's key"
        );
        let valid_until = rsp.valid_until.context("valid_until is set")?;
        let valid_until = SystemTime::try_from(valid_until).context("valid_until")?;
        if valid_until <= now {
            bail!("valid_until is in the past");
        }
        Ok(Certified {
            leaf,
            intermediates,
            valid_until,
        })
    }

    /// When the proxy would renew: at 70% of the remaining lifetime, within [10s, 24h].
    pub fn refresh_in(certified: &Certified) -> Duration {
        oxlink_tls::refresh_in(certified.valid_until, SystemTime::now())
    }

    /// A CSR for another name, signed by this proxy's key.
    pub fn csr_for(&self, name: &str) -> Vec<u8> {
        oxlink_tls::fixtures::csr_with(&[name], Some(name), &self.key)
    }
}
