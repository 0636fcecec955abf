//! ServiceAccount token validation: in process against the issuer's keys and the bound
//! objects (`local`), and through the Kubernetes TokenReview API for what cannot be decided
//! locally or when local verification is off.

mod bound;
mod jwt;
mod keys;
mod local;

#[cfg(test)]
pub(crate) use self::jwt::Jwk;
pub use self::{
    bound::BoundObjects,
    keys::{ApiServerKeys, FetchKeys, IssuerKeys, KeySet},
    local::LocalTokens,
};

use crate::metrics::Metrics;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use oxlink_crds::names::control_plane::IDENTITY_TOKEN_AUDIENCE;
use std::{future::Future, sync::Arc, time::Instant};

/// Authenticates a token and returns the username it proves.
pub trait ValidateToken: Send + Sync + 'static {
    fn validate(&self, token: &str) -> impl Future<Output = Result<String, TokenError>> + Send;
}

impl<T: ValidateToken> ValidateToken for Arc<T> {
    fn validate(&self, token: &str) -> impl Future<Output = Result<String, TokenError>> + Send {
        (**self).validate(token)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The API server reported an error about the token itself (`status.error`).
    #[error("{0}")]
    Invalid(String),
    #[error("the token is not authenticated")]
    NotAuthenticated,
    /// The TokenReview call itself failed.
    #[error("{0}")]
    Api(String),
}

/// The validator identity runs with: local verification with TokenReview for the rest, or
/// TokenReview only (`--token-review-only`).
pub enum Tokens {
    Local(LocalTokens<ApiServerKeys, TokenReviewer>),
    Review(TokenReviewer),
}

impl ValidateToken for Tokens {
    async fn validate(&self, token: &str) -> Result<String, TokenError> {
        match self {
            Self::Local(local) => local.validate(token).await,
            Self::Review(review) => review.validate(token).await,
        }
    }
}

/// Validates tokens with TokenReviews for audience `identity.l5d.io`, retrying without an
/// audience when the API server says the token's audiences do not match (tokens minted before
/// proxies asked for the audience).
#[derive(Clone)]
pub struct TokenReviewer {
    api: Api<TokenReview>,
    metrics: Arc<Metrics>,
}

impl TokenReviewer {
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        Self {
            api: Api::all(client),
            metrics,
        }
    }

    async fn review(
        &self,
        token: &str,
        audiences: Option<Vec<String>>,
    ) -> Result<TokenReview, TokenError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences,
            },
            ..Default::default()
        };
        let start = Instant::now();
        let result = self.api.create(&PostParams::default(), &review).await;
        self.metrics
            .token_review(start.elapsed().as_secs_f64(), result.is_err());
        result.map_err(|e| TokenError::Api(e.to_string()))
    }
}

impl ValidateToken for TokenReviewer {
    async fn validate(&self, token: &str) -> Result<String, TokenError> {
        let mut review = self
            .review(token, Some(vec![IDENTITY_TOKEN_AUDIENCE.to_string()]))
            .await?;
        if status_error(&review).is_some_and(|e| e.contains("token audiences")) {
            tracing::debug!("token audiences do not match; retrying as a legacy token");
            review = self.review(token, None).await?;
        }
        if let Some(error) = status_error(&review) {
            return Err(TokenError::Invalid(error.to_string()));
        }
        let status = review.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(TokenError::NotAuthenticated);
        }
        status
            .user
            .and_then(|u| u.username)
            .ok_or(TokenError::NotAuthenticated)
    }
}

fn status_error(review: &TokenReview) -> Option<&str> {
    review
        .status
        .as_ref()
        .and_then(|s| s.error.as_deref())
        .filter(|e| !e.is_empty())
}
