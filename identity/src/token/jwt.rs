//! The compact JWS form of ServiceAccount tokens: decoding, and the signature checks that
//! kube-apiserver's keys need (RS256, ES256, ES384) with `ring`.

use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use serde::Deserialize;

/// A decoded token whose signature is not checked yet.
#[derive(Debug)]
pub(crate) struct Jwt<'a> {
    pub(crate) header: Header,
    pub(crate) claims: Claims,
    /// `base64url(header) "." base64url(claims)`: the signed bytes.
    signed: &'a [u8],
    signature: Vec<u8>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
}

/// The claims kube-apiserver puts in ServiceAccount tokens (and legacy Secret tokens, whose
/// `kubernetes.io` claim is absent).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) aud: Audience,
    #[serde(default)]
    pub(crate) exp: Option<i64>,
    #[serde(default)]
    pub(crate) nbf: Option<i64>,
    #[serde(default, rename = "kubernetes.io")]
    pub(crate) kubernetes: Option<KubernetesClaims>,
}

/// `aud` is a string or a list of strings (RFC 7519 §4.1.3).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct KubernetesClaims {
    pub(crate) namespace: String,
    pub(crate) serviceaccount: ObjectRef,
    #[serde(default)]
    pub(crate) pod: Option<ObjectRef>,
    #[serde(default)]
    pub(crate) secret: Option<ObjectRef>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ObjectRef {
    pub(crate) name: String,
    pub(crate) uid: String,
}

/// A public key of the service-account issuer, from its JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Jwk {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed SEC1 point on P-256.
    P256(Vec<u8>),
    /// An uncompressed SEC1 point on P-384.
    P384(Vec<u8>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("the token's {0} is not base64url JSON")]
    Decode(&'static str),
    #[error("the token's algorithm {alg} does not match its key")]
    Algorithm { alg: String },
    #[error("the token's signature does not verify")]
    Signature,
}

/// One key of a JWKS document, as served at `/openid/v1/jwks`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawJwk {
    #[serde(default)]
    pub(crate) kid: Option<String>,
    pub(crate) kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct JwkSet {
    pub(crate) keys: Vec<RawJwk>,
}

// === impl Jwt ===

impl<'a> Jwt<'a> {
    pub(crate) fn decode(token: &'a str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let json = |part: &str, what| base64url(part).ok_or(JwtError::Decode(what));
        let header: Header =
            serde_json::from_slice(&json(h, "header")?).map_err(|_| JwtError::Decode("header"))?;
        let claims: Claims =
            serde_json::from_slice(&json(c, "claims")?).map_err(|_| JwtError::Decode("claims"))?;
        let signature = base64url(s).ok_or(JwtError::Decode("signature"))?;
        Ok(Self {
            header,
            claims,
            signed: &token.as_bytes()[..h.len() + 1 + c.len()],
            signature,
        })
    }

    /// Checks the signature with `key`; the header's `alg` must be the one the key is for.
    pub(crate) fn verify(&self, key: &Jwk) -> Result<(), JwtError> {
        let alg = self.header.alg.as_str();
        let ok = match (key, alg) {
            (Jwk::Rsa { n, e }, "RS256") => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, self.signed, &self.signature)
                .is_ok(),
            (Jwk::P256(point), "ES256") => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(self.signed, &self.signature)
                .is_ok(),
            (Jwk::P384(point), "ES384") => UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point)
                .verify(self.signed, &self.signature)
                .is_ok(),
            _ => {
                return Err(JwtError::Algorithm {
                    alg: alg.chars().take(16).collect(),
                });
            }
        };
        if ok { Ok(()) } else { Err(JwtError::Signature) }
    }
}

// === impl Audience ===

impl Audience {
    pub(crate) fn contains(&self, audience: &str) -> bool {
        match self {
            Self::None => false,
            Self::One(a) => a == audience,
            Self::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

// === impl RawJwk ===

impl RawJwk {
    /// The key, or None for a key type this verifier does not handle (it is then as if the
    /// key were not published, and such tokens go to the API server).
    pub(crate) fn key(&self) -> Option<Jwk> {
        let b = |v: &Option<String>| v.as_deref().and_then(base64url);
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => Some(Jwk::Rsa {
                n: b(&self.n)?,
                e: b(&self.e)?,
            }),
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let (x, y) = (b(&self.x)?, b(&self.y)?);
                let size = if crv == "P-256" { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return None;
                }
                let point = [&[0x04][..], &x, &y].concat();
                Some(if size == 32 {
                    Jwk::P256(point)
                } else {
                    Jwk::P384(point)
                })
            }
            _ => None,
        }
    }
}

/// Decodes unpadded base64url (RFC 4648 §5), as JWS uses; None on any other character.
pub(crate) fn base64url(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
