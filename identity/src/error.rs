//! Why a Certify call was refused, and the gRPC status each reason maps to.

use crate::name::truncated;
use oxlink_tls::{CsrError, IssuerError};
use tonic::{Code, Status};

/// Every way Certify can fail. Nothing is issued on any of them.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    #[error("cert issuer not ready yet")]
    IssuerNotReady,
    #[error("the identity issuer cannot sign: {0}")]
    IssuerInvalid(IssuerError),
    #[error("missing {0}")]
    MissingField(&'static str),
    #[error("invalid CSR: {0}")]
    InvalidCsr(CsrError),
    #[error("CSR does not match the requested identity: {0}")]
    CsrIdentity(CsrError),
    #[error("invalid token: {0}")]
    TokenInvalid(String),
    #[error("token is not authenticated")]
    TokenNotAuthenticated,
    #[error("TokenReview failed: {0}")]
    TokenReview(String),
    #[error("token does not name a ServiceAccount: {0}")]
    NotServiceAccount(String),
    #[error(
        "requested identity {:?} but the token proves {:?}",
        truncated(requested),
        truncated(proven)
    )]
    IdentityMismatch { requested: String, proven: String },
    #[error("signing failed: {0}")]
    Sign(IssuerError),
}

impl CertifyError {
    /// The status code Linkerd's identity returns for the same condition. An issuer that is
    /// loaded but no longer valid (expired) is UNAVAILABLE like a missing one, with its reason.
    pub fn code(&self) -> Code {
        match self {
            Self::IssuerNotReady | Self::IssuerInvalid(_) => Code::Unavailable,
            Self::MissingField(_) | Self::InvalidCsr(_) | Self::TokenInvalid(_) => {
                Code::InvalidArgument
            }
            Self::CsrIdentity(_)
            | Self::TokenNotAuthenticated
            | Self::NotServiceAccount(_)
            | Self::IdentityMismatch { .. } => Code::FailedPrecondition,
            Self::TokenReview(_) | Self::Sign(_) => Code::Internal,
        }
    }

    /// A short label for the `result` of the certify metric.
    pub fn result(&self) -> &'static str {
        match self {
            Self::IssuerNotReady => "issuer_not_ready",
            Self::IssuerInvalid(_) => "issuer_invalid",
            Self::MissingField(_) => "missing_field",
            Self::InvalidCsr(_) => "invalid_csr",
            Self::CsrIdentity(_) => "csr_identity",
            Self::TokenInvalid(_) => "token_invalid",
            Self::TokenNotAuthenticated => "token_not_authenticated",
            Self::TokenReview(_) => "token_review_error",
            Self::NotServiceAccount(_) => "not_service_account",
            Self::IdentityMismatch { .. } => "identity_mismatch",
            Self::Sign(_) => "sign_error",
        }
    }
}

impl From<CertifyError> for Status {
    fn from(e: CertifyError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}
