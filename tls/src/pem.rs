//! PEM and DER codecs for certificates and private keys.

use oxlink_crds::names::encoding::base64;
use rcgen::KeyPair;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer,
    pem::{self, PemObject},
};

/// Why PEM input could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("invalid PEM: {0}")]
    Syntax(#[from] pem::Error),
    #[error("no CERTIFICATE block found")]
    NoCertificates,
    #[error("no private key block found")]
    NoKey,
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),
}

/// Every `CERTIFICATE` block of `pem`, in order. Other blocks are ignored; at least one
/// certificate is required.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(PemError::NoCertificates);
    }
    Ok(certs)
}

/// The first private key of `pem`: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(PemError::NoKey),
        Err(e) => Err(e.into()),
    }
}

/// Decodes a private key for signing. SEC1 EC keys are rewrapped as PKCS#8, which is all the
/// signing backend accepts.
pub fn key_pair(pem: &[u8]) -> Result<KeyPair, PemError> {
    let pkcs8 = match private_key(pem)? {
        PrivateKeyDer::Pkcs8(key) => key,
        PrivateKeyDer::Sec1(key) => sec1_to_pkcs8(key.secret_sec1_der())?,
        PrivateKeyDer::Pkcs1(_) => {
            return Err(PemError::UnsupportedKey(
                "RSA keys cannot sign mesh certificates".into(),
            ));
        }
        _ => return Err(PemError::UnsupportedKey("unknown key format".into())),
    };
    KeyPair::try_from(&pkcs8).map_err(|e| PemError::UnsupportedKey(e.to_string()))
}

/// Encodes one DER object as a PEM block with `label` (e.g. `CERTIFICATE`).
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 32);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Encodes certificates as concatenated `CERTIFICATE` blocks.
pub fn encode_certificates<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| encode("CERTIFICATE", c.as_ref()))
        .collect()
}

// === SEC1 → PKCS#8 ===

/// `id-ecPublicKey` (1.2.840.10045.2.1) and `prime256v1` (1.2.840.10045.3.1.7), DER-encoded.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Wraps a SEC1 `ECPrivateKey` on P-256 in a PKCS#8 `PrivateKeyInfo`. The curve parameters
/// that SEC1 encoders put inside the key (`[0]`) are dropped, since PKCS#8 carries them in the
/// algorithm identifier; a key on any other curve is refused.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<PrivatePkcs8KeyDer<'static>, PemError> {
    let bad = |why: &str| PemError::UnsupportedKey(format!("SEC1 key: {why}"));
    let (tag, body, rest) = der_tlv(sec1).ok_or_else(|| bad("not DER"))?;
    if tag != 0x30 || !rest.is_empty() {
        return Err(bad("not a SEQUENCE"));
    }
    let mut inner = Vec::with_capacity(body.len());
    let mut fields = body;
    while !fields.is_empty() {
        let (tag, value, rest) = der_tlv(fields).ok_or_else(|| bad("truncated"))?;
        let whole = &fields[..fields.len() - rest.len()];
        match tag {
            0xa0 => {
                if value != P256_OID {
                    return Err(bad("the curve is not P-256"));
                }
            }
            _ => inner.extend_from_slice(whole),
        }
        fields = rest;
    }
    let ec_private_key = der(0x30, &inner);
    let mut algorithm = EC_PUBLIC_KEY_OID.to_vec();
    algorithm.extend_from_slice(P256_OID);
    let mut info = vec![0x02, 0x01, 0x00];
    info.extend_from_slice(&der(0x30, &algorithm));
    info.extend_from_slice(&der(0x04, &ec_private_key));
    Ok(PrivatePkcs8KeyDer::from(der(0x30, &info)))
}

/// Splits one DER TLV off `input`: (tag, value, rest). Only single-byte tags.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, input) = input.split_first()?;
    let (len, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let len = input[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &input[n..])
    };
    if input.len() < len {
        return None;
    }
    Some((tag, &input[..len], &input[len..]))
}

fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, b64) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), b64);
        }
    }

    #[test]
    fn certificates_round_trip_through_encode() {
        let certs = certificates(fixtures::CHAINED_ISSUER_CRT.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        let again = certificates(encode_certificates(&certs).as_bytes()).unwrap();
        assert_eq!(certs, again);
    }

    #[test]
    fn sec1_and_pkcs8_keys_decode_to_the_same_key() {
        let pkcs8 = key_pair(fixtures::ISSUER_KEY.as_bytes()).unwrap();
        let sec1 = key_pair(fixtures::ISSUER_KEY_SEC1.as_bytes()).unwrap();
        assert_eq!(pkcs8.public_key_raw(), sec1.public_key_raw());
    }

    #[test]
    fn missing_blocks_are_reported() {
        assert!(matches!(
            certificates(b"nothing"),
            Err(PemError::NoCertificates)
        ));
        assert!(matches!(key_pair(b"nothing"), Err(PemError::NoKey)));
    }
}
