//! Which keys Linkerd accepts: ECDSA P-256 for the issuer; ECDSA P-256 or RSA 2048/4096 for
//! trust anchors (`linkerd check`'s "using supported crypto algorithm").

use x509_parser::{
    oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
        OID_PKCS1_RSAENCRYPTION,
    },
    prelude::{FromDer, X509Certificate},
    public_key::PublicKey,
};

/// A certificate's public key, as far as the checks care.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// ECDSA on a curve of this many bits (0 when the curve is unknown).
    Ecdsa(u32),
    /// RSA of this many bits.
    Rsa(usize),
    Other(String),
}

fn key(der: &[u8]) -> Result<Key, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let bits = match curve {
            Some(c) if c == OID_EC_P256 => 256,
            Some(c) if c == OID_NIST_EC_P384 => 384,
            Some(c) if c == OID_NIST_EC_P521 => 521,
            _ => 0,
        };
        Ok(Key::Ecdsa(bits))
    } else if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => Ok(Key::Rsa(rsa.key_size())),
            _ => Err("the RSA public key does not parse".into()),
        }
    } else {
        Ok(Key::Other(alg.to_id_string()))
    }
}

fn p256_only(key: Key) -> Result<(), String> {
    match key {
        Key::Ecdsa(256) => Ok(()),
        Key::Ecdsa(bits) => Err(format!(
            "must use P-256 curve for public key, instead P-{bits} was used"
        )),
        Key::Rsa(_) => Err("must use ECDSA for public key algorithm, instead RSA was used".into()),
        Key::Other(alg) => Err(format!(
            "must use ECDSA for public key algorithm, instead {alg} was used"
        )),
    }
}

/// Linkerd's `CheckIssuerCertAlgoRequirements`: ECDSA P-256.
pub(crate) fn issuer(der: &[u8]) -> Result<(), String> {
    p256_only(key(der)?)
}

/// Linkerd's `CheckTrustAnchorAlgoRequirements`: ECDSA P-256, or RSA of 2048 or 4096 bits.
pub(crate) fn anchor(der: &[u8]) -> Result<(), String> {
    match key(der)? {
        Key::Rsa(2048 | 4096) => Ok(()),
        Key::Rsa(bits) => Err(format!(
            "must use RSA 2048 or 4096 bit public key, instead {bits} bit was used"
        )),
        other => p256_only(other),
    }
}
