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

/// Tokens with fixed TokenReview outcomes.
pub(crate) struct FixedTokens;

impl ValidateToken for FixedTokens {
    async fn validate(&self, token: &str) -> Result<String, TokenError> {
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
            FixedTokens,
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
