//! Certificates and TLS for every oxlink server and for the mesh's certificate authority.
//!
//! This crate owns PEM/DER decoding and encoding, trust bundles, the identity issuer (its
//! credentials, a certificate chain and key checked against the trust anchors, and the issuance
//! policy under which it signs a proxy's CSR into a leaf certificate with Linkerd's
//! validity rules), reloadable serving certificates for our gRPC and admission servers, and the
//! Certify client our own servers use to obtain their mesh identity. Fixed test certificates
//! live here too, behind a `test-util` feature, so that tests never mint their own.

mod bundle;
#[cfg(feature = "certify-client")]
mod certify;
mod credentials;
mod csr;
pub mod generate;
mod issuer;
pub mod pem;
mod serving;
mod time;

#[cfg(any(test, feature = "test-util"))]
pub mod fixtures;

#[cfg(feature = "certify-client")]
pub use self::certify::{CertifyClient, CertifyConfig, CertifyError, CertifyMetrics, refresh_in};
pub use self::time::utc_rfc3339;
pub use self::{
    bundle::{BundleError, ChainSummary, TrustBundle, VerifyError},
    credentials::{IssuerCredentials, IssuerError},
    csr::{CertificateRequest, CsrError},
    issuer::{
        DEFAULT_CLOCK_SKEW_ALLOWANCE, DEFAULT_ISSUANCE_LIFETIME, IssuancePolicy, Issuer, Leaf,
    },
    serving::{ServingCert, ServingError, server_config},
};
pub use rcgen::KeyPair;
pub use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer},
};
