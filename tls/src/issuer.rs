//! The mesh issuer: an intermediate CA certificate chain and key that sign proxies' leaves.

use crate::{
    bundle::TrustBundle,
    csr::CertificateRequest,
    pem::{self, PemError},
    time::{from_unix, to_offset, unix},
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::CertificateDer;
use std::{
    fmt,
    time::{Duration, SystemTime},
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// How leaves are dated (Linkerd's `identity.issuer.issuanceLifetime` and
/// `identity.issuer.clockSkewAllowance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuerConfig {
    pub lifetime: Duration,
    pub clock_skew: Duration,
}

/// A loaded, verified issuer.
pub struct Issuer {
    /// The issuer's certificate first, then the rest of its `crt.pem` (leaf→root order).
    chain: Vec<CertificateDer<'static>>,
    signer: rcgen::Issuer<'static, KeyPair>,
    subject: String,
    /// The validity window shared by every certificate from the issuer to its anchor.
    not_before: SystemTime,
    not_after: SystemTime,
    config: IssuerConfig,
}

/// A signed leaf and the chain that a proxy needs to verify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub certificate: CertificateDer<'static>,
    /// The issuer's certificate first, then any certificates that followed it in `crt.pem`.
    pub intermediates: Vec<CertificateDer<'static>>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
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

/// The lifetime of issued leaves unless configured: Linkerd's default, and the chart's
/// `identity.issuer.issuanceLifetime`.
pub const DEFAULT_ISSUANCE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// How far leaves are backdated (and extended) for clock skew unless configured: Linkerd's
/// default, and the chart's `identity.issuer.clockSkewAllowance`.
pub const DEFAULT_CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(20);

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_ISSUANCE_LIFETIME,
            clock_skew: DEFAULT_CLOCK_SKEW_ALLOWANCE,
        }
    }
}

// === impl Issuer ===

impl Issuer {
    /// Loads an issuer from PEM (`crt.pem`/`tls.crt` and `key.pem`/`tls.key`): the key must be
    /// ECDSA P-256 and belong to the first certificate, which must be a CA that verifies to
    /// `anchors` at `now`.
    pub fn from_pem(
        crt_pem: &[u8],
        key_pem: &[u8],
        anchors: &TrustBundle,
        config: IssuerConfig,
        now: SystemTime,
    ) -> Result<Self, IssuerError> {
        let chain = pem::certificates(crt_pem).map_err(IssuerError::Certificate)?;
        let key = pem::key_pair(key_pem).map_err(IssuerError::Key)?;
        Self::new(chain, key, anchors, config, now)
    }

    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: KeyPair,
        anchors: &TrustBundle,
        config: IssuerConfig,
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
        let issuer = Self {
            chain,
            signer,
            subject,
            not_before,
            not_after,
            config,
        };
        issuer.check_valid(now)?;
        Ok(issuer)
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

    /// Signs a leaf for a verified CSR. The caller has checked the CSR's names
    /// ([`CertificateRequest::check_identity`]); the leaf copies its DNS SAN and common name.
    pub fn sign(&self, csr: &CertificateRequest, now: SystemTime) -> Result<Leaf, IssuerError> {
        let [name] = csr.dns_names() else {
            return Err(IssuerError::Sign(
                "the CSR must name exactly one DNS SAN".into(),
            ));
        };
        self.sign_key(name, csr.has_common_name(), csr, now)
    }

    /// Signs a leaf for `name` and a public key of our own (a server's own certificate).
    pub fn sign_for(
        &self,
        name: &str,
        key: &impl PublicKeyData,
        now: SystemTime,
    ) -> Result<Leaf, IssuerError> {
        self.sign_key(name, true, key, now)
    }

    fn sign_key(
        &self,
        name: &str,
        common_name: bool,
        key: &impl PublicKeyData,
        now: SystemTime,
    ) -> Result<Leaf, IssuerError> {
        self.check_valid(now)?;
        let not_before = now - self.config.clock_skew;
        let not_after = (now + self.config.lifetime + self.config.clock_skew).min(self.not_after);
        let mut params = CertificateParams::default();
        params.not_before = to_offset(not_before);
        params.not_after = to_offset(not_after);
        params.serial_number = Some(random_serial()?);
        params.distinguished_name = DistinguishedName::new();
        if common_name {
            params.distinguished_name.push(DnType::CommonName, name);
        }
        params.subject_alt_names = vec![SanType::DnsName(
            name.try_into()
                .map_err(|e: rcgen::Error| IssuerError::Sign(e.to_string()))?,
        )];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(key, &self.signer)
            .map_err(|e| IssuerError::Sign(e.to_string()))?;
        Ok(Leaf {
            certificate: cert.der().clone(),
            intermediates: self.chain.clone(),
            // Certificates carry whole seconds.
            not_before: from_unix(unix(not_before)),
            not_after: from_unix(unix(not_after)),
        })
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

    pub fn config(&self) -> IssuerConfig {
        self.config
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("subject", &self.subject)
            .field("chain_len", &self.chain.len())
            .field("not_after", &unix(self.not_after))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A positive, non-zero 128-bit serial number.
fn random_serial() -> Result<SerialNumber, IssuerError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IssuerError::Sign("no randomness for the serial number".into()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Walks from `chain[0]` through the rest of `chain` to one of `anchors`, checking each
/// signature and that each signer is a CA. Returns the path, anchor included.
pub(crate) fn verify_path<'c, 'a>(
    chain: &'c [X509Certificate<'a>],
    anchors: &'c [X509Certificate<'a>],
) -> Result<Vec<&'c X509Certificate<'a>>, String> {
    let mut current = &chain[0];
    let mut path = vec![current];
    // The issuer may itself be an anchor (Linkerd's CLI makes one root for both roles).
    if anchors.iter().any(|a| a.as_raw() == current.as_raw()) {
        return Ok(path);
    }
    for _ in 0..=chain.len() {
        let signed_by = |c: &X509Certificate<'_>| {
            c.subject() == current.issuer()
                && current.verify_signature(Some(c.public_key())).is_ok()
        };
        if let Some(anchor) = anchors.iter().find(|a| signed_by(a)) {
            path.push(anchor);
            return Ok(path);
        }
        let Some(next) = chain[1..].iter().find(|c| signed_by(c) && c.is_ca()) else {
            return Err(format!(
                "no trust anchor or CA in the chain signed {}",
                current.subject()
            ));
        };
        if path.iter().any(|p| p.as_raw() == next.as_raw()) {
            return Err("the chain loops".into());
        }
        path.push(next);
        current = next;
    }
    Err("the chain is too long".into())
}

#[cfg(test)]
mod tests;
