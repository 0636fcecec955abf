//! Minting a trust anchor and an issuer, and inspecting chains: what `oxlink identity` does.

use crate::{
    bundle::{ChainSummary, TrustBundle},
    credentials::{IssuerCredentials, IssuerError},
    issuer::DEFAULT_CLOCK_SKEW_ALLOWANCE,
    pem::{self, PemError},
    time::to_offset,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::time::{Duration, SystemTime};

/// Linkerd's names for the two CAs of a trust domain `cluster.local`.
pub const DEFAULT_ANCHOR_NAME: &str = "root.linkerd.cluster.local";
pub const DEFAULT_ISSUER_NAME: &str = "identity.linkerd.cluster.local";

/// A CA certificate and its key, both PEM (the key PKCS#8, ECDSA P-256).
#[derive(Clone, Debug)]
pub struct GeneratedCa {
    pub crt_pem: String,
    pub key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("generating the key: {0}")]
    Key(rcgen::Error),
    #[error("signing the certificate: {0}")]
    Sign(rcgen::Error),
    #[error("the signing CA: {0}")]
    Signer(PemError),
    #[error("the signing CA certificate cannot be used: {0}")]
    SignerCertificate(rcgen::Error),
    #[error("the result does not verify: {0}")]
    Verify(IssuerError),
}

/// What `oxlink identity inspect` prints.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub certificates: Vec<ChainSummary>,
    /// With a bundle: whether the chain verifies to it (as an issuer chain when the first
    /// certificate is a CA, as a leaf for its first DNS name otherwise).
    pub verified: Option<Result<(), String>>,
}

/// A self-signed ECDSA P-256 root valid from `now` (backdated by Linkerd's 20s skew) for
/// `lifetime`, usable only to sign CAs and CRLs.
pub fn trust_anchor(
    common_name: &str,
    lifetime: Duration,
    now: SystemTime,
) -> Result<GeneratedCa, GenerateError> {
    let key = KeyPair::generate().map_err(GenerateError::Key)?;
    let params = ca_params(common_name, lifetime, now, BasicConstraints::Unconstrained);
    let crt = params.self_signed(&key).map_err(GenerateError::Sign)?;
    Ok(GeneratedCa {
        crt_pem: crt.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// An ECDSA P-256 issuer (path length 0) signed by the anchor, checked to load as an issuer
/// under that anchor.
pub fn issuer(
    anchor: &GeneratedCa,
    common_name: &str,
    lifetime: Duration,
    now: SystemTime,
) -> Result<GeneratedCa, GenerateError> {
    let anchor_certs =
        pem::certificates(anchor.crt_pem.as_bytes()).map_err(GenerateError::Signer)?;
    let anchor_key = pem::key_pair(anchor.key_pem.as_bytes()).map_err(GenerateError::Signer)?;
    let signer = rcgen::Issuer::from_ca_cert_der(&anchor_certs[0], anchor_key)
        .map_err(GenerateError::SignerCertificate)?;
    let key = KeyPair::generate().map_err(GenerateError::Key)?;
    let params = ca_params(common_name, lifetime, now, BasicConstraints::Constrained(0));
    let crt = params
        .signed_by(&key, &signer)
        .map_err(GenerateError::Sign)?;
    let generated = GeneratedCa {
        crt_pem: crt.pem(),
        key_pem: key.serialize_pem(),
    };
    let bundle = TrustBundle::from_der(anchor_certs).map_err(|e| {
        GenerateError::Verify(IssuerError::Untrusted {
            subject: common_name.into(),
            reason: e.to_string(),
        })
    })?;
    IssuerCredentials::from_pem(
        generated.crt_pem.as_bytes(),
        generated.key_pem.as_bytes(),
        &bundle,
        now,
    )
    .map_err(GenerateError::Verify)?;
    Ok(generated)
}

/// Summarizes a PEM chain and, with a PEM bundle, checks it against the bundle at `now`.
pub fn inspect(
    chain_pem: &[u8],
    bundle_pem: Option<&[u8]>,
    now: SystemTime,
) -> Result<Inspection, crate::BundleError> {
    let certificates = ChainSummary::from_pem(chain_pem)?;
    let verified = match bundle_pem {
        None => None,
        Some(bundle_pem) => {
            let bundle = TrustBundle::from_pem(bundle_pem)?;
            let chain = pem::certificates(chain_pem)?;
            Some(if certificates[0].is_ca {
                bundle.verify_ca_chain(&chain, now)
            } else {
                let name = certificates[0]
                    .dns_names
                    .first()
                    .cloned()
                    .unwrap_or_default();
                bundle
                    .verify_leaf(&chain[0], &chain[1..], &name, now)
                    .map_err(|e| e.to_string())
            })
        }
    };
    Ok(Inspection {
        certificates,
        verified,
    })
}

fn ca_params(
    common_name: &str,
    lifetime: Duration,
    now: SystemTime,
    constraints: BasicConstraints,
) -> CertificateParams {
    let skew = DEFAULT_CLOCK_SKEW_ALLOWANCE;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = to_offset(now - skew);
    params.not_after = to_offset(now + lifetime + skew);
    params.use_authority_key_identifier_extension = true;
    params
}

/// A proxy's end-entity key and CSR for the mesh identity `name`, as the proxy image's
/// entrypoint writes them into its identity directory: a fresh ECDSA P-256 key, and a DER CSR
/// whose common name and only DNS SAN are `name`.
pub fn key_and_csr(name: &str) -> Result<(KeyPair, Vec<u8>), rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    let csr = params.serialize_request(&key)?.der().to_vec();
    Ok((key, csr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateRequest, fixtures};

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    #[test]
    fn generated_cas_issue_verifiable_leaves() {
        let now = SystemTime::now();
        let anchor = trust_anchor(DEFAULT_ANCHOR_NAME, YEAR, now).unwrap();
        let issuer_ca = issuer(&anchor, DEFAULT_ISSUER_NAME, YEAR / 2, now).unwrap();
        let bundle = TrustBundle::from_pem(anchor.crt_pem.as_bytes()).unwrap();
        let credentials = IssuerCredentials::from_pem(
            issuer_ca.crt_pem.as_bytes(),
            issuer_ca.key_pem.as_bytes(),
            &bundle,
            now,
        )
        .unwrap();
        let issuer = crate::Issuer::new(credentials, crate::IssuancePolicy::default());
        let name = "web.default.serviceaccount.identity.linkerd.cluster.local";
        let csr = CertificateRequest::from_der(&fixtures::csr(name).1).unwrap();
        let leaf = issuer.sign(&csr, now).unwrap();
        bundle
            .verify_leaf(&leaf.certificate, &leaf.intermediates, name, now)
            .unwrap();

        let inspected = inspect(
            issuer_ca.crt_pem.as_bytes(),
            Some(anchor.crt_pem.as_bytes()),
            now,
        )
        .unwrap();
        assert_eq!(inspected.certificates.len(), 1);
        assert!(
            inspected.certificates[0]
                .subject
                .contains(DEFAULT_ISSUER_NAME)
        );
        assert_eq!(inspected.verified, Some(Ok(())));
    }

    #[test]
    fn inspect_reports_chains_that_do_not_verify() {
        let now = SystemTime::now();
        let inspected = inspect(
            fixtures::OTHER_ISSUER_CRT.as_bytes(),
            Some(fixtures::ANCHOR_CRT.as_bytes()),
            now,
        )
        .unwrap();
        assert!(matches!(inspected.verified, Some(Err(_))));
        let plain = inspect(fixtures::CHAINED_ISSUER_CRT.as_bytes(), None, now).unwrap();
        assert_eq!(plain.certificates.len(), 2);
        assert_eq!(plain.verified, None);
    }
}
