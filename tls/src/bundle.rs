//! Trust bundles: the mesh's trust anchors, and verification of chains against them.

use crate::{pem, time::unix};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use std::time::SystemTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The certificates a proxy trusts (`LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS`, the
/// `linkerd-identity-trust-roots` ConfigMap's `ca-bundle.crt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustBundle {
    anchors: Vec<CertificateDer<'static>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("trust bundle: {0}")]
    Pem(#[from] pem::PemError),
    #[error("trust anchor {index}: {reason}")]
    Anchor { index: usize, reason: String },
}

/// Why a leaf chain does not verify against a bundle.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the leaf certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("the chain does not verify to the trust anchors: {0}")]
    Chain(String),
    #[error("the leaf is not valid for {name}: {reason}")]
    Name { name: String, reason: String },
}

/// What a person wants to see of a certificate (for `oxlink identity inspect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub is_ca: bool,
}

// === impl TrustBundle ===

impl TrustBundle {
    /// Parses a PEM bundle. Every block must be a certificate usable as a trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, BundleError> {
        Self::from_der(pem::certificates(pem)?)
    }

    pub fn from_der(anchors: Vec<CertificateDer<'static>>) -> Result<Self, BundleError> {
        for (index, der) in anchors.iter().enumerate() {
            X509Certificate::from_der(der).map_err(|e| BundleError::Anchor {
                index,
                reason: e.to_string(),
            })?;
            webpki::anchor_from_trusted_cert(der).map_err(|e| BundleError::Anchor {
                index,
                reason: format!("{e:?}"),
            })?;
        }
        Ok(Self { anchors })
    }

    pub fn anchors(&self) -> &[CertificateDer<'static>] {
        &self.anchors
    }

    pub fn to_pem(&self) -> String {
        pem::encode_certificates(&self.anchors)
    }

    /// The anchors as a rustls root store, for TLS clients and client-certificate verifiers.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for der in &self.anchors {
            // Every anchor was checked to be usable in `from_der`.
            let _ = roots.add(der.clone());
        }
        roots
    }

    /// Verifies a CA chain (an issuer first, then any intermediates) to the anchors at `now`:
    /// the same check an issuer passes when it is loaded.
    pub fn verify_ca_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
    ) -> Result<(), String> {
        let parsed = chain
            .iter()
            .map(|der| {
                X509Certificate::from_der(der)
                    .map(|(_, c)| c)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let anchors = self
            .anchors
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
            .collect::<Vec<_>>();
        if parsed.is_empty() {
            return Err("no certificate".into());
        }
        let path = verify_path(&parsed, &anchors)?;
        let t = unix(now);
        for cert in path {
            let v = cert.validity();
            if t < v.not_before.timestamp() || t > v.not_after.timestamp() {
                return Err(format!("{} is not valid at this time", cert.subject()));
            }
        }
        Ok(())
    }

    /// Verifies a leaf and its intermediates the way a proxy does: the chain leads to one of
    /// the anchors at `now`, with the serverAuth usage, and the leaf is valid for `name`.
    pub fn verify_leaf(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &str,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let anchors = self
            .anchors
            .iter()
            .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
            .collect::<Vec<_>>();
        let ee = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| VerifyError::Parse(format!("{e:?}")))?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            unix(now).max(0).unsigned_abs(),
        ));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            time,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| VerifyError::Chain(format!("{e:?}")))?;
        let server_name = ServerName::try_from(name).map_err(|e| VerifyError::Name {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        ee.verify_is_valid_for_subject_name(&server_name)
            .map_err(|e| VerifyError::Name {
                name: name.to_string(),
                reason: format!("{e:?}"),
            })
    }
}

// === impl ChainSummary ===

impl ChainSummary {
    /// Summarizes each certificate of a PEM chain, in order.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, BundleError> {
        pem::certificates(pem)?
            .iter()
            .enumerate()
            .map(|(index, der)| {
                Self::from_der(der).map_err(|reason| BundleError::Anchor { index, reason })
            })
            .collect()
    }

    pub fn from_der(der: &CertificateDer<'_>) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_names,
            not_before: crate::time::from_unix(cert.validity().not_before.timestamp()),
            not_after: crate::time::from_unix(cert.validity().not_after.timestamp()),
            is_ca: cert.is_ca(),
        })
    }
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
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn parses_ecdsa_and_rsa_anchors() {
        let pem = format!("{}{}", fixtures::ANCHOR_CRT, fixtures::RSA_ANCHOR_CRT);
        let bundle = TrustBundle::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(bundle.anchors().len(), 2);
        assert_eq!(bundle.root_store().len(), 2);
        assert_eq!(
            TrustBundle::from_pem(bundle.to_pem().as_bytes()).unwrap(),
            bundle
        );
    }

    #[test]
    fn refuses_an_empty_or_broken_bundle() {
        assert!(TrustBundle::from_pem(b"").is_err());
        let broken = crate::pem::encode("CERTIFICATE", b"not a certificate");
        assert!(matches!(
            TrustBundle::from_pem(broken.as_bytes()),
            Err(BundleError::Anchor { index: 0, .. })
        ));
    }

    #[test]
    fn summarizes_a_chain() {
        let summary = ChainSummary::from_pem(fixtures::ISSUER_CRT.as_bytes()).unwrap();
        assert_eq!(summary.len(), 1);
        assert!(summary[0].is_ca);
        assert!(
            summary[0]
                .subject
                .contains("identity.linkerd.cluster.local")
        );
    }
}
