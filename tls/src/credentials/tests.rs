use super::*;
use crate::fixtures;

fn load(crt: &str, key: &str) -> Result<IssuerCredentials, IssuerError> {
    IssuerCredentials::from_pem(
        crt.as_bytes(),
        key.as_bytes(),
        &fixtures::anchors(),
        SystemTime::now(),
    )
}

#[test]
fn loads_without_an_issuance_policy() {
    let credentials = load(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY).unwrap();
    assert_eq!(
        credentials.chain(),
        pem::certificates(fixtures::ISSUER_CRT.as_bytes()).unwrap()
    );
    assert!(
        credentials.subject().contains("CN="),
        "{}",
        credentials.subject()
    );
    let now = SystemTime::now();
    assert!(credentials.not_after() > now);
    credentials.check_valid(now).unwrap();
    assert!(matches!(
        credentials.check_valid(credentials.not_after() + std::time::Duration::from_secs(1)),
        Err(IssuerError::Expired(_))
    ));
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
