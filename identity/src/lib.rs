//! The mesh certificate authority: the `io.linkerd.proxy.identity.Identity/Certify` service.
//!
//! This crate owns the identity controller. It loads the issuer from the
//! `linkerd-identity-issuer` Secret and the trust roots from the `linkerd-identity-trust-roots`
//! ConfigMap, reloads them without a restart, authenticates each proxy's ServiceAccount token
//! through a Kubernetes TokenReview, checks that the CSR names the identity the token proves and
//! that its signature holds, and returns a short-lived leaf certificate. It serves gRPC over the
//! mesh's own mTLS, so proxies can verify it without a sidecar in front of it.
