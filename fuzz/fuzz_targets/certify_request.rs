//! Certify's untrusted input: the protobuf request and the DER CSR inside it. Neither decoding
//! nor CSR validation (signature, key type, names) may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkerd2_proxy_api::identity::CertifyRequest;
use oxlink_tls::CertificateRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    // The bytes as a whole request, as the gRPC layer hands them over.
    if let Ok(req) = CertifyRequest::decode(data)
        && let Ok(csr) = CertificateRequest::from_der(&req.certificate_signing_request)
    {
        let _ = csr.check_identity(&req.identity);
    }
    // The bytes as a CSR directly, to reach deeper into the DER parser.
    if let Ok(csr) = CertificateRequest::from_der(data) {
        let _ = csr.check_identity("web.default.serviceaccount.identity.linkerd.cluster.local");
    }
});
