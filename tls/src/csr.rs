//! Certificate signing requests from proxies: parsing, proof of possession, name checks.

use rcgen::{PKCS_ECDSA_P256_SHA256, PublicKeyData, SignatureAlgorithm};
use x509_parser::{
    certification_request::X509CertificationRequest,
    extensions::{GeneralName, ParsedExtension},
    oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY},
    prelude::FromDer,
};

/// A parsed CSR whose signature has been verified with its own public key, which is an ECDSA
/// P-256 key. Holding one proves the requester holds the private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The uncompressed EC point of the requested key.
    public_key: Vec<u8>,
    common_names: Vec<String>,
    dns_names: Vec<String>,
    /// Email, IP, URI and other SAN kinds, described for error messages.
    other_names: Vec<String>,
}

/// Why a CSR was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("the CSR cannot be parsed: {0}")]
    Malformed(String),
    #[error("the CSR's signature does not verify with its public key (no proof of possession)")]
    BadSignature,
    #[error("the CSR's key must be ECDSA P-256, not {0}")]
    UnsupportedKey(String),
    #[error("the CSR must name exactly one DNS SAN, found {0:?}")]
    DnsNameCount(Vec<String>),
    #[error("the CSR's DNS SAN {found:?} is not the requested identity {requested:?}")]
    WrongName { requested: String, found: String },
    #[error(
        "the CSR's common name {found:?} is neither empty nor the requested identity {requested:?}"
    )]
    WrongCommonName { requested: String, found: String },
    #[error("the CSR must not carry email, IP or URI SANs, found {0:?}")]
    ForbiddenSan(Vec<String>),
}

// === impl CertificateRequest ===

impl CertificateRequest {
    /// Parses a DER CSR, verifies its signature with its own key and requires a P-256 key.
    pub fn from_der(der: &[u8]) -> Result<Self, CsrError> {
        let (rest, csr) = X509CertificationRequest::from_der(der)
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed("trailing bytes after the CSR".into()));
        }
        let info = &csr.certification_request_info;
        let spki = &info.subject_pki;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY
            || curve.as_ref() != Some(&OID_EC_P256)
        {
            let what = match curve {
                Some(curve) if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY => {
                    format!("an EC key on curve {curve}")
                }
                _ => format!("a key of algorithm {}", spki.algorithm.algorithm),
            };
            return Err(CsrError::UnsupportedKey(what));
        }
        csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

        let common_names = info
            .subject
            .iter_common_name()
            .map(|cn| {
                cn.as_str()
                    .map(str::to_string)
                    .map_err(|e| CsrError::Malformed(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut dns_names = Vec::new();
        let mut other_names = Vec::new();
        for ext in csr.requested_extensions().into_iter().flatten() {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                            other => other_names.push(other.to_string()),
                        }
                    }
                }
                ParsedExtension::ParseError { error } => {
                    return Err(CsrError::Malformed(format!("requested extension: {error}")));
                }
                _ => {}
            }
        }
        Ok(Self {
            public_key: spki.subject_public_key.data.to_vec(),
            common_names,
            dns_names,
            other_names,
        })
    }

    /// Checks that the CSR asks for `identity` and nothing else: exactly one DNS SAN, equal to
    /// it; a common name that is empty or equal to it; no email, IP or URI SANs.
    pub fn check_identity(&self, identity: &str) -> Result<(), CsrError> {
        let [dns] = self.dns_names.as_slice() else {
            return Err(CsrError::DnsNameCount(self.dns_names.clone()));
        };
        if dns != identity {
            return Err(CsrError::WrongName {
                requested: identity.to_string(),
                found: dns.clone(),
            });
        }
        match self.common_names.as_slice() {
            [] => {}
            [cn] if cn.is_empty() || cn == identity => {}
            found => {
                return Err(CsrError::WrongCommonName {
                    requested: identity.to_string(),
                    found: found.join(","),
                });
            }
        }
        if !self.other_names.is_empty() {
            return Err(CsrError::ForbiddenSan(self.other_names.clone()));
        }
        Ok(())
    }

    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// Whether the CSR carries a non-empty common name (copied into the leaf's subject).
    pub fn has_common_name(&self) -> bool {
        self.common_names.iter().any(|cn| !cn.is_empty())
    }
}

impl PublicKeyData for CertificateRequest {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

#[cfg(test)]
mod tests;
