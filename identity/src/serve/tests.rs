use super::*;
use oxlink_tls::fixtures;

#[test]
fn not_ready_while_the_loaded_issuer_has_expired() {
    let ready = Readiness::default();
    let issuer = IssuerState::default();
    require_issuer(&ready, &issuer);
    assert!(!ready.is_ready(), "no issuer");
    issuer.set(fixtures::issuer());
    assert!(ready.is_ready());
    // Loaded in 2000 while it was valid, and still held now that it has expired.
    issuer.set(fixtures::expired_issuer());
    assert!(issuer.current().is_some());
    assert_eq!(ready.not_ready(), Some("no valid issuer is loaded"));
}
