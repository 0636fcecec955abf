//! Token verification in process, the way kube-apiserver checks its own bound tokens: the
//! signature against the issuer's published keys, the audience, the validity window, and that
//! the bound ServiceAccount and Pod still exist with the UIDs the token names. A token that
//! cannot be decided here goes to the API server (a TokenReview), so nothing valid is refused.

use super::{
    TokenError, ValidateToken,
    bound::{Bound, BoundObjects},
    jwt::Jwt,
    keys::{FetchKeys, IssuerKeys},
};
use crate::metrics::Metrics;
use oxlink_crds::names::control_plane::IDENTITY_TOKEN_AUDIENCE;
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Verifies tokens locally and hands the rest to `fallback`.
pub struct LocalTokens<F, V> {
    keys: Arc<IssuerKeys<F>>,
    bound: Arc<BoundObjects>,
    fallback: V,
    skew: Duration,
    metrics: Arc<Metrics>,
}

/// The outcome of the local checks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Proven: the username the API server would return.
    Valid(String),
    /// Refused; the API server would refuse it too.
    Invalid(String),
    /// Undecided here, with the reason (a metric label).
    Undecided(&'static str),
}

impl<F: FetchKeys, V: ValidateToken> LocalTokens<F, V> {
    pub fn new(
        keys: Arc<IssuerKeys<F>>,
        bound: Arc<BoundObjects>,
        fallback: V,
        skew: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            keys,
            bound,
            fallback,
            skew,
            metrics,
        }
    }

    pub(crate) async fn verify(&self, token: &str, now: SystemTime) -> Verdict {
        let Ok(jwt) = Jwt::decode(token) else {
            return Verdict::Undecided("not_jwt");
        };
        let Some(set) = self.keys.current() else {
            return Verdict::Undecided("no_keys");
        };
        // Legacy Secret tokens (issuer `kubernetes/serviceaccount`) and other issuers.
        if jwt.claims.iss.as_deref() != Some(set.issuer.as_str()) {
            return Verdict::Undecided("issuer");
        }
        let Some(kid) = jwt.header.kid.as_deref() else {
            return Verdict::Undecided("no_kid");
        };
        let Some((_, key)) = self.keys.key(kid).await else {
            return Verdict::Undecided("unknown_kid");
        };
        if let Err(e) = jwt.verify(&key) {
            return Verdict::Invalid(e.to_string());
        }

        // The signature holds: the claims are the API server's own.
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let skew = self.skew.as_secs() as i64;
        match jwt.claims.exp {
            Some(exp) if now > exp + skew => {
                return Verdict::Invalid("the token has expired".into());
            }
            Some(_) => {}
            None => return Verdict::Undecided("no_exp"),
        }
        if jwt.claims.nbf.is_some_and(|nbf| nbf > now + skew) {
            return Verdict::Invalid("the token is not valid yet".into());
        }
        // Tokens for the API server's own audience are legacy proxies' tokens, which only a
        // TokenReview without audiences can accept.
        if !jwt.claims.aud.contains(IDENTITY_TOKEN_AUDIENCE) {
            return Verdict::Undecided("audience");
        }
        let Some(k) = &jwt.claims.kubernetes else {
            return Verdict::Undecided("no_bound_claims");
        };
        if k.secret.is_some() {
            return Verdict::Undecided("secret_bound");
        }
        let sa = &k.serviceaccount;
        match self
            .bound
            .service_accounts
            .check(&k.namespace, &sa.name, &sa.uid)
        {
            Bound::Live => {}
            Bound::Gone => {
                return Verdict::Invalid(format!(
                    "the ServiceAccount {}/{} (uid {}) no longer exists",
                    k.namespace, sa.name, sa.uid
                ));
            }
            Bound::Unknown => return Verdict::Undecided("service_account_unknown"),
        }
        if let Some(pod) = &k.pod {
            match self.bound.pods.check(&k.namespace, &pod.name, &pod.uid) {
                Bound::Live => {}
                Bound::Gone => {
                    return Verdict::Invalid(format!(
                        "the pod {}/{} (uid {}) no longer exists",
                        k.namespace, pod.name, pod.uid
                    ));
                }
                Bound::Unknown => return Verdict::Undecided("pod_unknown"),
            }
        }
        Verdict::Valid(format!("system:serviceaccount:{}:{}", k.namespace, sa.name))
    }
}

impl<F: FetchKeys, V: ValidateToken> ValidateToken for LocalTokens<F, V> {
    async fn validate(&self, token: &str) -> Result<String, TokenError> {
        match self.verify(token, SystemTime::now()).await {
            Verdict::Valid(username) => {
                self.metrics.token_verified("verified");
                Ok(username)
            }
            Verdict::Invalid(reason) => {
                self.metrics.token_verified("rejected");
                Err(TokenError::Invalid(reason))
            }
            Verdict::Undecided(why) => {
                self.metrics.token_verified(why);
                self.fallback.validate(token).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
