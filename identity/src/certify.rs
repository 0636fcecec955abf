//! The CA's decisions: validate a Certify request in Linkerd's order, then sign.

use crate::{
    error::CertifyError,
    events::Events,
    metrics::Metrics,
    name::IdentityDomain,
    token::{TokenError, ValidateToken},
};
use oxlink_tls::{CertificateRequest, Issuer, Leaf};
use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};
use tokio::sync::{Semaphore, watch};

/// The largest token accepted, in bytes. Projected ServiceAccount tokens are about 1 KiB; a
/// larger one is refused before any TokenReview.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Certify calls answered at once by default; the rest wait their turn, so callers without
/// credentials cannot cause more than this many TokenReviews in flight.
pub const MAX_CONCURRENT_CERTIFY: usize = 256;

/// The currently loaded issuer, shared between the Secret watch that replaces it and every
/// Certify call that reads it.
#[derive(Clone, Debug)]
pub struct IssuerState {
    tx: Arc<watch::Sender<Option<Arc<Issuer>>>>,
}

/// A Certify request, as decoded from the wire.
#[derive(Clone, Debug, Default)]
pub struct CertifyRequest {
    pub identity: String,
    pub token: Vec<u8>,
    pub csr: Vec<u8>,
}

/// Checks Certify requests and signs leaves.
pub struct Certifier<V> {
    issuer: IssuerState,
    tokens: V,
    domain: IdentityDomain,
    events: Events,
    metrics: Arc<Metrics>,
    in_flight: Semaphore,
}

// === impl IssuerState ===

impl Default for IssuerState {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl IssuerState {
    pub fn current(&self) -> Option<Arc<Issuer>> {
        self.tx.borrow().clone()
    }

    pub fn set(&self, issuer: Issuer) {
        self.tx.send_replace(Some(Arc::new(issuer)));
    }

    /// Whether a Certify call at `now` could be answered: an issuer is loaded and valid.
    pub fn can_issue(&self, now: SystemTime) -> bool {
        self.current()
            .is_some_and(|i| i.credentials().check_valid(now).is_ok())
    }

    /// A receiver that sees every replacement (for the server's own certificate).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Issuer>>> {
        self.tx.subscribe()
    }
}

// === impl Certifier ===

impl<V: ValidateToken> Certifier<V> {
    pub fn new(
        issuer: IssuerState,
        tokens: V,
        domain: IdentityDomain,
        events: Events,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            issuer,
            tokens,
            domain,
            events,
            metrics,
            in_flight: Semaphore::new(MAX_CONCURRENT_CERTIFY),
        }
    }

    /// Answers at most `n` (at least 1) Certify calls at once; the rest wait.
    pub fn with_max_concurrent(mut self, n: usize) -> Self {
        self.in_flight = Semaphore::new(n.max(1));
        self
    }

    /// Answers one Certify call: issues a leaf, or says why not and issues nothing.
    pub async fn certify(&self, req: CertifyRequest) -> Result<Leaf, CertifyError> {
        let start = Instant::now();
        let result = match self.in_flight.acquire().await {
            Ok(_permit) => self.certify_inner(req).await,
            Err(_) => Err(CertifyError::IssuerNotReady),
        };
        let label = match &result {
            Ok(_) => "issued",
            Err(e) => e.result(),
        };
        self.metrics.certified(label, start.elapsed().as_secs_f64());
        match &result {
            Ok(leaf) => tracing::debug!(not_after = ?leaf.not_after, "issued"),
            Err(error) => tracing::info!(%error, "refused"),
        }
        result
    }

    async fn certify_inner(&self, req: CertifyRequest) -> Result<Leaf, CertifyError> {
        // 1. An issuer must be loaded.
        let issuer = self.issuer.current().ok_or(CertifyError::IssuerNotReady)?;

        // 2. Every field is present and the CSR parses, with proof of possession and a P-256 key.
        if req.identity.is_empty() {
            return Err(CertifyError::MissingField("identity"));
        }
        if req.token.is_empty() {
            return Err(CertifyError::MissingField("token"));
        }
        if req.csr.is_empty() {
            return Err(CertifyError::MissingField("certificate_signing_request"));
        }
        if req.token.len() > MAX_TOKEN_BYTES {
            return Err(CertifyError::TokenInvalid(format!(
                "the token is {} bytes, more than {MAX_TOKEN_BYTES}",
                req.token.len()
            )));
        }
        let csr = CertificateRequest::from_der(&req.csr).map_err(CertifyError::InvalidCsr)?;

        // 3. The issuer is still valid now.
        if let Err(e) = issuer.credentials().check_valid(SystemTime::now()) {
            self.events.issuer_validation_failed(e.to_string());
            return Err(CertifyError::IssuerInvalid(e));
        }

        // 4. The CSR asks for exactly the requested identity.
        csr.check_identity(&req.identity)
            .map_err(CertifyError::CsrIdentity)?;

        // 5. The token is authenticated (trailing whitespace, e.g. a file's newline, ignored).
        let token = std::str::from_utf8(&req.token)
            .map_err(|_| CertifyError::TokenInvalid("the token is not UTF-8".into()))?
            .trim_end();
        let username = self.tokens.validate(token).await.map_err(|e| match e {
            TokenError::Invalid(msg) => CertifyError::TokenInvalid(msg),
            TokenError::NotAuthenticated => CertifyError::TokenNotAuthenticated,
            TokenError::Api(msg) => CertifyError::TokenReview(msg),
        })?;

        // 6. It belongs to a ServiceAccount, whose identity …
        let (proven, sa, ns) = self
            .domain
            .from_username(&username)
            .map_err(|e| CertifyError::NotServiceAccount(e.to_string()))?;

        // 7. … is the requested one.
        if proven != req.identity {
            return Err(CertifyError::IdentityMismatch {
                requested: req.identity,
                proven,
            });
        }

        // 8. Sign, and record it on the ServiceAccount.
        let leaf = issuer
            .sign(&csr, SystemTime::now())
            .map_err(CertifyError::Sign)?;
        let sha = oxlink_crds::names::encoding::sha256_hex(leaf.certificate.as_ref());
        self.events.issued(
            &sa,
            &ns,
            format!("Issued certificate for {proven} (sha256 {sha})"),
        );
        Ok(leaf)
    }

    #[cfg(test)]
    pub(crate) fn tokens(&self) -> &V {
        &self.tokens
    }

    pub fn domain(&self) -> &IdentityDomain {
        &self.domain
    }
}

#[cfg(test)]
mod tests;
