use super::*;
use crate::{
    TrustBundle,
    fixtures::{self, csr},
};
use std::time::UNIX_EPOCH;
use x509_parser::prelude::{FromDer, X509Certificate};

const NAME: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";

fn load(crt: &str, key: &str) -> Issuer {
    let credentials = IssuerCredentials::from_pem(
        crt.as_bytes(),
        key.as_bytes(),
        &fixtures::anchors(),
        SystemTime::now(),
    )
    .unwrap();
    Issuer::new(credentials, IssuancePolicy::default())
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
    assert_eq!(leaf.intermediates, issuer.credentials().chain());
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
    let now = issuer.credentials().not_after() - Duration::from_secs(3600);
    let leaf = sign(&issuer, now);
    assert_eq!(leaf.not_after, issuer.credentials().not_after());
    fixtures::anchors()
        .verify_leaf(&leaf.certificate, &leaf.intermediates, NAME, now)
        .unwrap();
}

#[test]
fn honours_configured_lifetimes() {
    let policy = IssuancePolicy {
        lifetime: Duration::from_secs(3600),
        clock_skew: Duration::from_secs(5),
    };
    let credentials = fixtures::issuer_credentials();
    let issuer = Issuer::new(credentials, policy);
    assert_eq!(issuer.policy(), policy);
    let now = SystemTime::now();
    let leaf = sign(&issuer, now);
    assert_eq!(unix(leaf.not_before), unix(now) - 5);
    assert_eq!(unix(leaf.not_after), unix(now) + 3605);
}

#[test]
fn loads_a_sec1_key() {
    let issuer = load(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY_SEC1);
    sign(&issuer, SystemTime::now());
}

#[test]
fn loads_a_chain_through_an_intermediate() {
    let issuer = load(fixtures::CHAINED_ISSUER_CRT, fixtures::CHAINED_ISSUER_KEY);
    assert_eq!(issuer.credentials().chain().len(), 2);
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
    let credentials = IssuerCredentials::from_pem(
        fixtures::RSA_ISSUER_CRT.as_bytes(),
        fixtures::RSA_ISSUER_KEY.as_bytes(),
        &anchors,
        now,
    )
    .unwrap();
    let issuer = Issuer::new(credentials, IssuancePolicy::default());
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
    let credentials = IssuerCredentials::new(vec![root.der().clone()], key, &anchors, now).unwrap();
    let issuer = Issuer::new(credentials, IssuancePolicy::default());
    let leaf = sign(&issuer, now);
    assert!(leaf.not_after <= issuer.credentials().not_after());
    anchors
        .verify_leaf(&leaf.certificate, &leaf.intermediates, NAME, now)
        .unwrap();
}

#[test]
fn refuses_to_sign_once_the_issuer_has_expired() {
    let issuer = fixtures::issuer();
    let (_, der) = csr(NAME);
    let req = CertificateRequest::from_der(&der).unwrap();
    let later = issuer.credentials().not_after() + Duration::from_secs(1);
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
fn a_longer_policy_is_still_capped_by_the_credentials() {
    let credentials = fixtures::issuer_credentials();
    let not_after = credentials.not_after();
    let policy = IssuancePolicy {
        lifetime: Duration::from_secs(1000 * 365 * 24 * 3600),
        clock_skew: Duration::ZERO,
    };
    let issuer = Issuer::new(credentials, policy);
    let now = SystemTime::now();
    let leaf = sign(&issuer, now);
    assert_eq!(unix(leaf.not_before), unix(now), "no skew in this policy");
    assert_eq!(leaf.not_after, not_after);
}

#[test]
fn the_default_policy_is_linkerds() {
    assert_eq!(
        IssuancePolicy::default(),
        IssuancePolicy {
            lifetime: Duration::from_secs(24 * 3600),
            clock_skew: Duration::from_secs(20),
        }
    );
    assert_eq!(fixtures::issuer().policy(), IssuancePolicy::default());
}
