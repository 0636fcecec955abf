//! The issuer's credentials: an intermediate CA certificate chain and its key, verified against
//! the trust anchors. What `check`, `install` and a rotation need to judge an issuer; signing
//! adds the issuance policy ([`crate::Issuer`]).

use crate::{
    bundle::{TrustBundle, verify_path},
    pem::{self, PemError},
    time::{from_unix, unix},
};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use rustls::pki_types::CertificateDer;
use std::{fmt, time::SystemTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A verified issuer certificate chain and key (Linkerd's `crt.pem` and `key.pem`, or
/// `tls.crt` and `tls.key`).
pub struct IssuerCredentials {
    /// The issuer's certificate first, then the rest of its `crt.pem` (leaf→root order).
    chain: Vec<CertificateDer<'static>>,
    signer: rcgen::Issuer<'static, KeyPair>,
    subject: String,
    /// The validity window shared by every certificate from the issuer to its anchor.
    not_before: SystemTime,
    not_after: SystemTime,
}

/// Why an issuer was refused, or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("issuer certificate: {0}")]
    Certificate(PemError),
    #[error("issuer key: {0}")]
    Key(PemError),
    #[error("certificate {index} of the issuer chain cannot be parsed: {reason}")]
    Parse { index: usize, reason: String },
    #[error("the issuer key must be ECDSA P-256")]
    UnsupportedKey,
    #[error("the issuer certificate ({0}) is not a CA")]
    NotCa(String),
    #[error("the issuer key does not belong to the issuer certificate ({0})")]
    KeyMismatch(String),
    #[error("the issuer certificate ({subject}) does not verify to the trust anchors: {reason}")]
    Untrusted { subject: String, reason: String },
    #[error("the issuer chain expired at {} (unix seconds)", unix(*.0))]
    Expired(SystemTime),
    #[error("the issuer chain is not valid before {} (unix seconds)", unix(*.0))]
    NotYetValid(SystemTime),
    #[error("signing failed: {0}")]
    Sign(String),
}

// === impl IssuerCredentials ===

impl IssuerCredentials {
    /// Loads credentials from PEM (`crt.pem`/`tls.crt` and `key.pem`/`tls.key`): the key must
    /// be ECDSA P-256 and belong to the first certificate, which must be a CA that verifies to
    /// `anchors` at `now`.
    pub fn from_pem(
        crt_pem: &[u8],
        key_pem: &[u8],
        anchors: &TrustBundle,
        now: SystemTime,
    ) -> Result<Self, IssuerError> {
        let chain = pem::certificates(crt_pem).map_err(IssuerError::Certificate)?;
        let key = pem::key_pair(key_pem).map_err(IssuerError::Key)?;
        Self::new(chain, key, anchors, now)
    }

    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: KeyPair,
        anchors: &TrustBundle,
        now: SystemTime,
    ) -> Result<Self, IssuerError> {
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(IssuerError::UnsupportedKey);
        }
        let parsed = chain
            .iter()
            .enumerate()
            .map(|(index, der)| {
                X509Certificate::from_der(der)
                    .map(|(_, c)| c)
                    .map_err(|e| IssuerError::Parse {
                        index,
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(cert) = parsed.first() else {
            return Err(IssuerError::Certificate(PemError::NoCertificates));
        };
        let subject = cert.subject().to_string();
        if !cert.is_ca() {
            return Err(IssuerError::NotCa(subject));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(IssuerError::KeyMismatch(subject));
        }
        let anchor_certs = anchors
            .anchors()
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
            .collect::<Vec<_>>();
        let path =
            verify_path(&parsed, &anchor_certs).map_err(|reason| IssuerError::Untrusted {
                subject: subject.clone(),
                reason,
            })?;
        let not_before = path
            .iter()
            .map(|c| from_unix(c.validity().not_before.timestamp()))
            .max()
            .unwrap_or(now);
        let not_after = path
            .iter()
            .map(|c| from_unix(c.validity().not_after.timestamp()))
            .min()
            .unwrap_or(now);
        drop(path);
        drop(anchor_certs);
        let signer =
            rcgen::Issuer::from_ca_cert_der(&chain[0], key).map_err(|e| IssuerError::Parse {
                index: 0,
                reason: e.to_string(),
            })?;
        drop(parsed);
        let credentials = Self {
            chain,
            signer,
            subject,
            not_before,
            not_after,
        };
        credentials.check_valid(now)?;
        Ok(credentials)
    }

    /// Fails unless every certificate from the issuer to its anchor is valid at `now`.
    pub fn check_valid(&self, now: SystemTime) -> Result<(), IssuerError> {
        if now > self.not_after {
            return Err(IssuerError::Expired(self.not_after));
        }
        if now < self.not_before {
            return Err(IssuerError::NotYetValid(self.not_before));
        }
        Ok(())
    }

    /// The issuer's chain as loaded (issuer first).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The earliest expiry from the issuer to its anchor; no leaf outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The issuer certificate and key that sign leaves.
    pub(crate) fn signer(&self) -> &rcgen::Issuer<'static, KeyPair> {
        &self.signer
    }
}

impl fmt::Debug for IssuerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerCredentials")
            .field("subject", &self.subject)
            .field("chain_len", &self.chain.len())
            .field("not_after", &unix(self.not_after))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
