//! Builders shared by the unit tests: a token validator with fixed answers and a certifier
//! around the fixture issuer.

use crate::{
    Certifier, CertifyRequest, Events, IdentityDomain, IssuerState, Metrics, RecordedEvent,
    TokenError, ValidateToken,
};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use std::sync::Arc;

pub(crate) const WEB: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
pub(crate) const DB: &str = "db.default.serviceaccount.identity.linkerd.cluster.local";

/// Tokens with fixed TokenReview outcomes; counts the reviews.
#[derive(Default)]
pub(crate) struct FixedTokens {
    pub(crate) reviewed: std::sync::atomic::AtomicUsize,
}

impl ValidateToken for FixedTokens {
    async fn validate(&self, token: &str) -> Result<String, TokenError> {
        self.reviewed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match token {
            "web-token" => Ok("system:serviceaccount:default:web".into()),
            "db-token" => Ok("system:serviceaccount:default:db".into()),
            "user-token" => Ok("alice".into()),
            "unauthenticated" => Err(TokenError::NotAuthenticated),
            "api-down" => Err(TokenError::Api("connection refused".into())),
            _ => Err(TokenError::Invalid("invalid bearer token".into())),
        }
    }
}

pub(crate) struct Harness {
    pub(crate) certifier: Arc<Certifier<FixedTokens>>,
    pub(crate) issuer: IssuerState,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: Arc<Mutex<Vec<RecordedEvent>>>,
}

impl Harness {
    /// A certifier with the fixture issuer loaded.
    pub(crate) fn new() -> Self {
        let h = Self::without_issuer();
        h.issuer.set(oxlink_tls::fixtures::issuer());
        h
    }

    pub(crate) fn without_issuer() -> Self {
        let issuer = IssuerState::default();
        let metrics = Metrics::register(&mut Registry::default());
        let (events, recorded) = Events::recorded();
        let domain = IdentityDomain::new("linkerd", "cluster.local").unwrap();
        let certifier = Arc::new(Certifier::new(
            issuer.clone(),
            FixedTokens::default(),
            domain,
            events,
            metrics.clone(),
        ));
        Self {
            certifier,
            issuer,
            metrics,
            events: recorded,
        }
    }

    /// Tokens reviewed so far.
    pub(crate) fn reviewed(&self) -> usize {
        self.certifier
            .tokens()
            .reviewed
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Nothing was issued and no issuance was recorded.
    pub(crate) fn assert_nothing_issued(&self) {
        assert_eq!(self.metrics.certify_count("issued"), 0);
        assert!(
            !self
                .events
                .lock()
                .iter()
                .any(|e| e.reason == "IssuedLeafCertificate")
        );
    }
}

/// A well-formed request for `identity` with `token` and a fresh CSR.
pub(crate) fn request(identity: &str, token: &str) -> CertifyRequest {
    let (_, csr) = oxlink_tls::fixtures::csr(identity);
    CertifyRequest {
        identity: identity.into(),
        token: token.as_bytes().to_vec(),
        csr,
    }
}

/// Encodes unpadded base64url, for minting tokens in tests.
pub(crate) fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let mut acc = [0u8; 3];
        acc[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, acc[0], acc[1], acc[2]]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A fresh ES256 signing key (kube-apiserver's kind when its key is ECDSA P-256).
pub(crate) fn es256_key() -> ring::signature::EcdsaKeyPair {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

/// The public half of `key` as the verifier holds it.
pub(crate) fn jwk_of(key: &ring::signature::EcdsaKeyPair) -> crate::token::Jwk {
    use ring::signature::KeyPair as _;
    crate::token::Jwk::P256(key.public_key().as_ref().to_vec())
}

/// A compact JWS of `claims` signed by `key` with header `{"alg":"ES256","kid":kid}`.
pub(crate) fn sign_es256(
    key: &ring::signature::EcdsaKeyPair,
    kid: &str,
    claims: &serde_json::Value,
) -> String {
    let header = serde_json::json!({"alg": "ES256", "kid": kid});
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = key
        .sign(&ring::rand::SystemRandom::new(), signed.as_bytes())
        .unwrap();
    format!("{signed}.{}", b64url(sig.as_ref()))
}
