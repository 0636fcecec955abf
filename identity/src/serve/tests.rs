use super::*;
use oxlink_tls::fixtures;
use std::time::UNIX_EPOCH;

#[test]
fn not_ready_while_the_loaded_issuer_has_expired() {
    let ready = Readiness::default();
    let issuer = IssuerState::default();
    require_issuer(&ready, &issuer);
    assert!(!ready.is_ready(), "no issuer");
    issuer.set(fixtures::issuer());
    assert!(ready.is_ready());
    // Loaded in 2000 while it was valid, and still held now that it has expired.
    let then = UNIX_EPOCH + Duration::from_secs(960_000_000);
    let expired = oxlink_tls::Issuer::from_pem(
        fixtures::EXPIRED_ISSUER_CRT.as_bytes(),
        fixtures::EXPIRED_ISSUER_KEY.as_bytes(),
        &oxlink_tls::TrustBundle::from_pem(fixtures::EXPIRED_ISSUER_CRT.as_bytes()).unwrap(),
        IssuerConfig::default(),
        then,
    )
    .unwrap();
    issuer.set(expired);
    assert!(issuer.current().is_some());
    assert_eq!(ready.not_ready(), Some("no valid issuer is loaded"));
}
