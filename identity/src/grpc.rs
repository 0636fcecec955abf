//! The `io.linkerd.proxy.identity.Identity` gRPC service.

use crate::{
    certify::{Certifier, CertifyRequest},
    name::truncated,
    token::ValidateToken,
};
use linkerd2_proxy_api::identity::{
    self as api,
    identity_server::{Identity, IdentityServer},
};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Adapts a [`Certifier`] to tonic.
pub struct IdentityGrpc<V> {
    certifier: Arc<Certifier<V>>,
}

impl<V: ValidateToken> IdentityGrpc<V> {
    pub fn new(certifier: Arc<Certifier<V>>) -> Self {
        Self { certifier }
    }

    pub fn svc(self) -> IdentityServer<Self> {
        IdentityServer::new(self)
    }
}

#[tonic::async_trait]
impl<V: ValidateToken> Identity for IdentityGrpc<V> {
    async fn certify(
        &self,
        req: Request<api::CertifyRequest>,
    ) -> Result<Response<api::CertifyResponse>, Status> {
        let api::CertifyRequest {
            identity,
            token,
            certificate_signing_request,
        } = req.into_inner();
        let span = tracing::info_span!("certify", identity = %truncated(&identity));
        let leaf = self
            .certifier
            .certify(CertifyRequest {
                identity,
                token,
                csr: certificate_signing_request,
            })
            .instrument(span)
            .await?;
        Ok(Response::new(api::CertifyResponse {
            leaf_certificate: leaf.certificate.to_vec(),
            intermediate_certificates: leaf.intermediates.iter().map(|c| c.to_vec()).collect(),
            valid_until: Some(prost_types::Timestamp::from(leaf.not_after)),
        }))
    }
}

#[cfg(test)]
mod tests;
