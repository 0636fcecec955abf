use super::*;
use crate::test_support::{DB, Harness, WEB, request};
use oxlink_tls::fixtures;
use std::time::Duration;
use tonic::Code;

async fn refused(h: &Harness, req: CertifyRequest) -> CertifyError {
    let err = h.certifier.certify(req).await.unwrap_err();
    h.assert_nothing_issued();
    err
}

#[tokio::test]
async fn issues_a_leaf_for_the_tokens_service_account() {
    let h = Harness::new();
    // The proxy sends its token file byte for byte, trailing newline included.
    let leaf = h
        .certifier
        .certify(request(WEB, "web-token\n"))
        .await
        .unwrap();
    fixtures::anchors()
        .verify_leaf(
            &leaf.certificate,
            &leaf.intermediates,
            WEB,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        leaf.intermediates,
        h.issuer.current().unwrap().credentials().chain()
    );
    assert_eq!(h.metrics.certify_count("issued"), 1);
    let events = h.events.lock();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "IssuedLeafCertificate");
    assert_eq!(events[0].object, "default/web");
    assert!(events[0].note.contains("sha256"));
}

#[tokio::test]
async fn unavailable_without_an_issuer() {
    let h = Harness::without_issuer();
    let err = refused(&h, request(WEB, "web-token")).await;
    assert!(matches!(err, CertifyError::IssuerNotReady));
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.to_string(), "cert issuer not ready yet");
}

#[tokio::test]
async fn unavailable_once_the_issuer_has_expired() {
    let h = Harness::without_issuer();
    // Loaded while it was valid, in 2000, and used now.
    h.issuer.set(fixtures::expired_issuer());
    let err = refused(&h, request(WEB, "web-token")).await;
    assert!(matches!(err, CertifyError::IssuerInvalid(_)), "{err}");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        h.events
            .lock()
            .iter()
            .any(|e| e.warning && e.reason == "IssuerValidationFailed")
    );
}

#[tokio::test]
async fn invalid_argument_for_missing_fields() {
    let h = Harness::new();
    for clear in [
        |r: &mut CertifyRequest| r.identity.clear(),
        |r: &mut CertifyRequest| r.token.clear(),
        |r: &mut CertifyRequest| r.csr.clear(),
    ] {
        let mut req = request(WEB, "web-token");
        clear(&mut req);
        let err = refused(&h, req).await;
        assert!(matches!(err, CertifyError::MissingField(_)), "{err}");
        assert_eq!(err.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn invalid_argument_for_an_unparsable_csr() {
    let h = Harness::new();
    let mut req = request(WEB, "web-token");
    req.csr = b"not a csr".to_vec();
    let err = refused(&h, req).await;
    assert!(matches!(
        err,
        CertifyError::InvalidCsr(oxlink_tls::CsrError::Malformed(_))
    ));
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn invalid_argument_for_a_bad_csr_signature() {
    let h = Harness::new();
    let mut req = request(WEB, "web-token");
    let last = req.csr.len() - 1;
    req.csr[last] ^= 1;
    let err = refused(&h, req).await;
    assert!(matches!(
        err,
        CertifyError::InvalidCsr(oxlink_tls::CsrError::BadSignature)
    ));
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn invalid_argument_for_a_non_p256_key() {
    let h = Harness::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut req = request(WEB, "web-token");
    req.csr = fixtures::csr_with(&[WEB], Some(WEB), &key);
    let err = refused(&h, req).await;
    assert!(matches!(
        err,
        CertifyError::InvalidCsr(oxlink_tls::CsrError::UnsupportedKey(_))
    ));
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn failed_precondition_for_csr_names() {
    let h = Harness::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut ip = rcgen::CertificateParams::new(vec![WEB.to_string()]).unwrap();
    ip.distinguished_name = rcgen::DistinguishedName::new();
    ip.subject_alt_names
        .push(rcgen::SanType::IpAddress([10, 1, 2, 3].into()));
    let mut uri = ip.clone();
    uri.subject_alt_names[1] = rcgen::SanType::URI(
        "spiffe://cluster.local/ns/default/sa/web"
            .try_into()
            .unwrap(),
    );
    for csr in [
        fixtures::csr_with(&[WEB, DB], Some(WEB), &key),
        fixtures::csr_with(&[DB], Some(DB), &key),
        fixtures::csr_from(&ip, &key),
        fixtures::csr_from(&uri, &key),
    ] {
        let mut req = request(WEB, "web-token");
        req.csr = csr;
        let err = refused(&h, req).await;
        assert!(matches!(err, CertifyError::CsrIdentity(_)), "{err}");
        assert_eq!(err.code(), Code::FailedPrecondition);
    }
}

#[tokio::test]
async fn csr_names_are_checked_before_the_token() {
    // Linkerd's order: a CSR for the wrong name is refused without a TokenReview.
    let h = Harness::new();
    let mut req = request(WEB, "api-down");
    req.csr = fixtures::csr(DB).1;
    assert!(matches!(
        refused(&h, req).await,
        CertifyError::CsrIdentity(_)
    ));
}

#[tokio::test]
async fn token_outcomes_map_to_linkerds_codes() {
    let h = Harness::new();
    for (token, code) in [
        ("forged", Code::InvalidArgument),
        ("unauthenticated", Code::FailedPrecondition),
        ("api-down", Code::Internal),
        ("user-token", Code::FailedPrecondition),
    ] {
        let err = refused(&h, request(WEB, token)).await;
        assert_eq!(err.code(), code, "{token}: {err}");
    }
}

#[tokio::test]
async fn failed_precondition_for_another_service_accounts_token() {
    let h = Harness::new();
    let err = refused(&h, request(WEB, "db-token")).await;
    assert!(
        matches!(err, CertifyError::IdentityMismatch { .. }),
        "{err}"
    );
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn a_new_issuer_signs_the_next_leaf() {
    let h = Harness::new();
    let first = h
        .certifier
        .certify(request(WEB, "web-token"))
        .await
        .unwrap();
    h.issuer.set(fixtures::issuer_2());
    let second = h
        .certifier
        .certify(request(WEB, "web-token"))
        .await
        .unwrap();
    assert_ne!(first.intermediates, second.intermediates);
    assert_eq!(
        second.intermediates,
        fixtures::issuer_2().credentials().chain()
    );
    fixtures::anchors()
        .verify_leaf(
            &second.certificate,
            &second.intermediates,
            WEB,
            SystemTime::now(),
        )
        .unwrap();
}

/// Counts the validations in flight and the most seen at once; each takes 20ms.
#[derive(Default)]
struct SlowTokens {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl ValidateToken for Arc<SlowTokens> {
    async fn validate(&self, _: &str) -> Result<String, TokenError> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(n, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, SeqCst);
        Ok("system:serviceaccount:default:web".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_configured_number_of_calls_validate_tokens_at_once() {
    let tokens = Arc::new(SlowTokens::default());
    let issuer = IssuerState::default();
    issuer.set(fixtures::issuer());
    let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
    let certifier = Arc::new(
        Certifier::new(
            issuer,
            tokens.clone(),
            crate::IdentityDomain::new("linkerd", "cluster.local").unwrap(),
            Events::disabled(),
            metrics.clone(),
        )
        .with_max_concurrent(4),
    );
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let c = certifier.clone();
            tokio::spawn(async move { c.certify(request(WEB, "any")).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // Every call was answered (they waited their turn), never more than 4 at once.
    assert_eq!(metrics.certify_count("issued"), 32);
    assert_eq!(tokens.most.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn an_oversized_token_is_refused_before_it_is_reviewed() {
    let h = Harness::new();
    let token = "a".repeat(MAX_TOKEN_BYTES + 1);
    let err = refused(&h, request(WEB, &token)).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!("invalid token: the token is 16385 bytes, more than {MAX_TOKEN_BYTES}")
    );
    assert_eq!(h.reviewed(), 0);
    // At the limit it is reviewed (and this one is not a known token).
    let err = refused(&h, request(WEB, &"a".repeat(MAX_TOKEN_BYTES))).await;
    assert_eq!(err.to_string(), "invalid token: invalid bearer token");
    assert_eq!(h.reviewed(), 1);
}

#[test]
fn a_requested_identity_is_truncated_in_messages() {
    let huge = format!(
        "{}.default.serviceaccount.identity.linkerd.cluster.local",
        "a".repeat(1 << 20)
    );
    let err = CertifyError::IdentityMismatch {
        requested: huge.clone(),
        proven: WEB.into(),
    };
    let msg = err.to_string();
    assert!(msg.len() < 700, "{} bytes", msg.len());
    assert!(msg.contains(&format!("({} bytes)", huge.len())), "{msg}");
    assert!(msg.contains(WEB));
    assert_eq!(crate::name::truncated(WEB), WEB);
}
