//! The mesh certificate authority: the `io.linkerd.proxy.identity.Identity/Certify` service.
//!
//! This crate owns the identity controller. It loads the issuer from the
//! `linkerd-identity-issuer` Secret and the trust roots from the `linkerd-identity-trust-roots`
//! ConfigMap, reloads them without a restart, authenticates each proxy's ServiceAccount token
//! through a Kubernetes TokenReview, checks that the CSR names the identity the token proves and
//! that its signature holds, and returns a short-lived leaf certificate. It serves gRPC over the
//! mesh's own mTLS, so proxies can verify it without a sidecar in front of it.
//!
//! Layers: `index` (kube: the issuer Secret watch, trust roots, TokenReview, events) →
//! [`Certifier`] (the CA's decisions, no kube, no tonic) → `grpc` (tonic, no kube).

mod args;
mod certify;
mod error;
mod events;
mod grpc;
mod index;
mod metrics;
mod name;
mod serve;
mod token;

#[cfg(test)]
mod test_support;

pub use self::{
    args::Args,
    certify::{Certifier, CertifyRequest, IssuerState, MAX_CONCURRENT_CERTIFY, MAX_TOKEN_BYTES},
    error::CertifyError,
    events::{Events, RecordedEvent},
    grpc::IdentityGrpc,
    index::{IssuerWatch, SecretError, issuer_from_secret, load_trust_roots},
    metrics::Metrics,
    name::{IdentityDomain, NameError},
    serve::{Config, LocalState, Running, serve_grpc, spawn, spawn_self_certificate},
    token::{
        ApiServerKeys, BoundObjects, FetchKeys, IssuerKeys, KeySet, LocalTokens, TokenError,
        TokenReviewer, Tokens, ValidateToken,
    },
};
pub use oxlink_crds::duration::parse_duration;
