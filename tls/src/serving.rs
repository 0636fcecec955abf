//! Serving certificates for our TLS servers, replaceable while the server runs.

use crate::{bundle::TrustBundle, issuer::Leaf};
use parking_lot::RwLock;
use rustls::{
    ClientConfig, ServerConfig,
    client::ResolvesClientCert,
    crypto::ring as provider,
    pki_types::{CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use std::{fmt, sync::Arc};

/// The certificate a server presents. Starts empty (handshakes fail until one is set) and is
/// swapped in place on renewal, so existing listeners pick it up on their next handshake.
#[derive(Default)]
pub struct ServingCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("unsupported serving key: {0}")]
    Key(rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// A TLS 1.3 server configuration (ALPN `h2`) that presents `cert`. With `client_roots`,
/// client certificates are verified against them when presented but stay optional: a proxy
/// has none before its first Certify.
pub fn server_config(
    cert: Arc<ServingCert>,
    client_roots: Option<&TrustBundle>,
) -> Result<ServerConfig, ServingError> {
    let provider = Arc::new(provider::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ServingError::Config)?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots.root_store()), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| ServingError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A TLS 1.3 client configuration (ALPN `h2`) for mesh TLS to proxies: it presents `cert`
/// (our mesh identity) and accepts servers whose chain leads to `anchors`; the caller names the
/// identity it expects as the server name.
pub fn client_config(
    cert: Arc<ServingCert>,
    anchors: &TrustBundle,
) -> Result<ClientConfig, ServingError> {
    let provider = Arc::new(provider::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ServingError::Config)?
        .with_root_certificates(anchors.root_store())
        .with_client_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

// === impl ServingCert ===

impl ServingCert {
    /// Presents `leaf` (with its intermediates) and `key` from the next handshake on.
    pub fn set(&self, leaf: &Leaf, key: PrivateKeyDer<'static>) -> Result<(), ServingError> {
        let chain = std::iter::once(leaf.certificate.clone())
            .chain(leaf.intermediates.iter().cloned())
            .collect::<Vec<CertificateDer<'static>>>();
        self.set_chain(chain, key)
    }

    pub fn set_chain(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), ServingError> {
        let key = provider::sign::any_supported_type(&key).map_err(ServingError::Key)?;
        *self.current.write() = Some(Arc::new(CertifiedKey::new(chain, key)));
        Ok(())
    }

    pub fn is_set(&self) -> bool {
        self.current.read().is_some()
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().clone()
    }
}

/// The same certificate serves as our client certificate when we connect to proxies.
impl ResolvesClientCert for ServingCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.current.read().clone()
    }

    fn has_certs(&self) -> bool {
        self.is_set()
    }
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("set", &self.is_set())
            .finish()
    }
}
