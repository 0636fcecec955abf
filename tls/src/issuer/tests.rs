use super::*;
use crate::fixtures::{self, csr};
use std::time::UNIX_EPOCH;

const NAME: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";

fn load(crt: &str, key: &str) -> Result<Issuer, IssuerError> {
    Issuer::from_pem(
        crt.as_bytes(),
        key.as_bytes(),
        &fixtures::anchors(),
        IssuerConfig::default(),
        SystemTime::now(),
    )
}

fn sign(issuer: &Issuer, now: SystemTime) -> Leaf {
    let (_, der) = csr(NAME);
    let req = CertificateRequest::from_der(&der).unwrap();
    issuer.sign(&req, now).unwrap()
}

#[test]
fn signs_a_leaf_with_linkerds_defaults() {
    let issuer = fixtures::issuer();
    let now = SystemTime::now();
    let leaf = sign(&issuer, now);
    assert_eq!(leaf.intermediates, issuer.chain());
    assert_eq!(unix(leaf.not_before), unix(now) - 20);
    assert_eq!(unix(leaf.not_after), unix(now) + 24 * 3600 + 20);
    fixtures::anchors()
        .verify_leaf(&leaf.certificate, &leaf.intermediates, NAME, now)
        .unwrap();

    let (_, cert) = X509Certificate::from_der(&leaf.certificate).unwrap();
    assert!(!cert.is_ca());
    assert_eq!(
        cert.validity().not_after.timestamp(),
        unix(leaf.not_after),
        "the certificate carries the reported expiry"
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
    assert_eq!(cert.raw_serial().len(), 16);
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        NAME
    );
}

#[test]
fn serials_are_random() {
    let issuer = fixtures::issuer();
    let now = SystemTime::now();
    let a = sign(&issuer, now);
    let b = sign(&issuer, now);
    let serial = |l: &Leaf| {
        X509Certificate::from_der(&l.certificate)
            .unwrap()
            .1
            .raw_serial()
            .to_vec()
    };
    assert_ne!(serial(&a), serial(&b));
}

#[test]
fn leaves_are_capped_at_the_issuer_expiry() {
    let issuer = fixtures::issuer();
    let now = issuer.not_after() - Duration::from_secs(3600);
    let leaf = sign(&issuer, now);
    assert_eq!(leaf.not_after, issuer.not_after());
    fixtures::anchors()
        .verify_leaf(&leaf.certificate, &leaf.intermediates, NAME, now)
        .unwrap();
}

#[test]
fn honours_configured_lifetimes() {
    let config = IssuerConfig {
        lifetime: Duration::from_secs(3600),
        clock_skew: Duration::from_secs(5),
    };
    let issuer = Issuer::from_pem(
        fixtures::ISSUER_CRT.as_bytes(),
        fixtures::ISSUER_KEY.as_bytes(),
        &fixtures::anchors(),
        config,
        SystemTime::now(),
    )
    .unwrap();
    let now = SystemTime::now();
    let leaf = sign(&issuer, now);
    assert_eq!(unix(leaf.not_before), unix(now) - 5);
    assert_eq!(unix(leaf.not_after), unix(now) + 3605);
}

#[test]
fn loads_a_sec1_key() {
    let issuer = load(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY_SEC1).unwrap();
    sign(&issuer, SystemTime::now());
}

#[test]
fn loads_a_chain_through_an_intermediate() {
    let issuer = load(fixtures::CHAINED_ISSUER_CRT, fixtures::CHAINED_ISSUER_KEY).unwrap();
    assert_eq!(issuer.chain().len(), 2);
    let now = SystemTime::now();
    let leaf = sign(&issuer, now);
    assert_eq!(
        leaf.intermediates.len(),
        2,
        "issuer first, then the intermediate"
    );
    fixtures::anchors()
        .verify_leaf(&leaf.certificate, &leaf.intermediates, NAME, now)
        .unwrap();
}

#[test]
fn loads_an_issuer_under_an_rsa_anchor() {
    let anchors = TrustBundle::from_pem(fixtures::RSA_ANCHOR_CRT.as_bytes()).unwrap();
    let now = SystemTime::now();
    let issuer = Issuer::from_pem(
        fixtures::RSA_ISSUER_CRT.as_bytes(),
        fixtures::RSA_ISSUER_KEY.as_bytes(),
        &anchors,
        IssuerConfig::default(),
        now,
    )
    .unwrap();
    let leaf = sign(&issuer, now);
    anchors
        .verify_leaf(&leaf.certificate, &leaf.intermediates, NAME, now)
        .unwrap();
}

#[test]
fn accepts_an_anchor_as_its_own_issuer() {
    // `linkerd install` without certificates makes one root for both roles.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = to_offset(SystemTime::now() - Duration::from_secs(60));
    params.not_after = to_offset(SystemTime::now() + Duration::from_secs(3600));
    let root = params.self_signed(&key).unwrap();
    let anchors = TrustBundle::from_der(vec![root.der().clone()]).unwrap();
    let now = SystemTime::now();
    let issuer = Issuer::new(
        vec![root.der().clone()],
        key,
        &anchors,
        IssuerConfig::default(),
        now,
    )
    .unwrap();
    let leaf = sign(&issuer, now);
    assert!(leaf.not_after <= issuer.not_after());
    anchors
        .verify_leaf(&leaf.certificate, &leaf.intermediates, NAME, now)
        .unwrap();
}

#[test]
fn refuses_an_issuer_not_chained_to_the_anchors() {
    let err = load(fixtures::OTHER_ISSUER_CRT, fixtures::OTHER_ISSUER_KEY).unwrap_err();
    assert!(matches!(err, IssuerError::Untrusted { .. }), "{err}");
}

#[test]
fn refuses_an_expired_issuer() {
    let err = load(fixtures::EXPIRED_ISSUER_CRT, fixtures::EXPIRED_ISSUER_KEY).unwrap_err();
    assert!(matches!(err, IssuerError::Expired(_)), "{err}");
}

#[test]
fn refuses_to_sign_once_the_issuer_has_expired() {
    let issuer = fixtures::issuer();
    let (_, der) = csr(NAME);
    let req = CertificateRequest::from_der(&der).unwrap();
    let later = issuer.not_after() + Duration::from_secs(1);
    assert!(matches!(
        issuer.sign(&req, later),
        Err(IssuerError::Expired(_))
    ));
    let before = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    assert!(matches!(
        issuer.sign(&req, before),
        Err(IssuerError::NotYetValid(_))
    ));
}

#[test]
fn refuses_a_certificate_that_is_not_a_ca() {
    let err = load(fixtures::NOT_CA_CRT, fixtures::NOT_CA_KEY).unwrap_err();
    assert!(matches!(err, IssuerError::NotCa(_)), "{err}");
}

#[test]
fn refuses_a_key_of_another_certificate() {
    let err = load(fixtures::ISSUER_CRT, fixtures::ISSUER_2_KEY).unwrap_err();
    assert!(matches!(err, IssuerError::KeyMismatch(_)), "{err}");
}

#[test]
fn refuses_broken_pem() {
    assert!(matches!(
        load("garbage", fixtures::ISSUER_KEY),
        Err(IssuerError::Certificate(_))
    ));
    assert!(matches!(
        load(fixtures::ISSUER_CRT, "garbage"),
        Err(IssuerError::Key(_))
    ));
    assert!(matches!(
        load(fixtures::RSA_ANCHOR_CRT, fixtures::RSA_ANCHOR_KEY),
        Err(IssuerError::UnsupportedKey)
    ));
}
