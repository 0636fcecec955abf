//! The mesh issuer: its credentials and the issuance policy that dates the leaves it signs for
//! proxies.

use crate::{
    credentials::{IssuerCredentials, IssuerError},
    csr::CertificateRequest,
    time::{from_unix, to_offset, unix},
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::CertificateDer;
use std::time::{Duration, SystemTime};

/// How leaves are dated (Linkerd's `identity.issuer.issuanceLifetime` and
/// `identity.issuer.clockSkewAllowance`): applied only where leaves are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuancePolicy {
    pub lifetime: Duration,
    pub clock_skew: Duration,
}

/// Credentials that sign leaves under an issuance policy.
#[derive(Debug)]
pub struct Issuer {
    credentials: IssuerCredentials,
    policy: IssuancePolicy,
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

/// The lifetime of issued leaves unless configured: Linkerd's default, and the chart's
/// `identity.issuer.issuanceLifetime`.
pub const DEFAULT_ISSUANCE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// How far leaves are backdated (and extended) for clock skew unless configured: Linkerd's
/// default, and the chart's `identity.issuer.clockSkewAllowance`.
pub const DEFAULT_CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(20);

impl Default for IssuancePolicy {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_ISSUANCE_LIFETIME,
            clock_skew: DEFAULT_CLOCK_SKEW_ALLOWANCE,
        }
    }
}

// === impl Issuer ===

impl Issuer {
    pub fn new(credentials: IssuerCredentials, policy: IssuancePolicy) -> Self {
        Self {
            credentials,
            policy,
        }
    }

    pub fn credentials(&self) -> &IssuerCredentials {
        &self.credentials
    }

    pub fn policy(&self) -> IssuancePolicy {
        self.policy
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
        self.credentials.check_valid(now)?;
        let not_before = now - self.policy.clock_skew;
        let not_after =
            (now + self.policy.lifetime + self.policy.clock_skew).min(self.credentials.not_after());
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
            .signed_by(key, self.credentials.signer())
            .map_err(|e| IssuerError::Sign(e.to_string()))?;
        Ok(Leaf {
            certificate: cert.der().clone(),
            intermediates: self.credentials.chain().to_vec(),
            // Certificates carry whole seconds.
            not_before: from_unix(unix(not_before)),
            not_after: from_unix(unix(not_after)),
        })
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

#[cfg(test)]
mod tests;
