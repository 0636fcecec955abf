use super::*;
use crate::events::Events;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use oxlink_tls::fixtures;

fn secret(type_: &str, pairs: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(IDENTITY_ISSUER_SECRET.into()),
            namespace: Some("linkerd".into()),
            ..Default::default()
        },
        type_: Some(type_.into()),
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn linkerd_scheme(crt: &str, key: &str) -> Secret {
    secret("Opaque", &[(ISSUER_CRT_KEY, crt), (ISSUER_KEY_KEY, key)])
}

fn load(s: &Secret) -> Result<IssuerCredentials, SecretError> {
    issuer_from_secret(s, &fixtures::anchors(), SystemTime::now())
}

#[test]
fn loads_both_secret_schemes() {
    let linkerd = load(&linkerd_scheme(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY)).unwrap();
    let kubernetes = load(&secret(
        ISSUER_SCHEME_KUBERNETES,
        &[
            (TLS_CRT_KEY, fixtures::ISSUER_CRT),
            (TLS_KEY_KEY, fixtures::ISSUER_KEY_SEC1),
            ("ca.crt", fixtures::ANCHOR_CRT),
        ],
    ))
    .unwrap();
    assert_eq!(linkerd.chain(), kubernetes.chain());
}

#[test]
fn reports_missing_keys() {
    let err = load(&secret("Opaque", &[(ISSUER_CRT_KEY, fixtures::ISSUER_CRT)])).unwrap_err();
    assert!(
        matches!(
            err,
            SecretError::MissingKey {
                key: ISSUER_KEY_KEY,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_watch_rotates_valid_issuers_and_keeps_the_last_one_otherwise() {
    let state = IssuerState::default();
    let (events, recorded) = Events::recorded();
    let mut watch = IssuerWatch::new(
        state.clone(),
        fixtures::anchors(),
        IssuancePolicy::default(),
        events,
    );

    // Not chained to the anchors: refused, and nothing is loaded.
    watch.apply(&linkerd_scheme(
        fixtures::OTHER_ISSUER_CRT,
        fixtures::OTHER_ISSUER_KEY,
    ));
    assert!(state.current().is_none());
    assert_eq!(recorded.lock().pop().unwrap().reason, "IssuerUpdateSkipped");

    watch.apply(&linkerd_scheme(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY));
    assert_eq!(
        state.current().unwrap().credentials().chain(),
        fixtures::issuer().credentials().chain()
    );
    assert!(
        recorded.lock().is_empty(),
        "the first load is not an update"
    );

    // A resync of the same Secret is quiet.
    watch.apply(&linkerd_scheme(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY));
    assert!(recorded.lock().is_empty());

    watch.apply(&linkerd_scheme(
        fixtures::ISSUER_2_CRT,
        fixtures::ISSUER_2_KEY,
    ));
    assert_eq!(
        state.current().unwrap().credentials().chain(),
        fixtures::issuer_2().credentials().chain()
    );
    let updated = recorded.lock().pop().unwrap();
    assert_eq!((updated.warning, updated.reason), (false, "IssuerUpdated"));

    for (crt, key) in [
        (fixtures::ISSUER_CRT, "broken key"),
        (fixtures::EXPIRED_ISSUER_CRT, fixtures::EXPIRED_ISSUER_KEY),
        (fixtures::NOT_CA_CRT, fixtures::NOT_CA_KEY),
    ] {
        watch.apply(&linkerd_scheme(crt, key));
        assert_eq!(
            state.current().unwrap().credentials().chain(),
            fixtures::issuer_2().credentials().chain()
        );
        let skipped = recorded.lock().pop().unwrap();
        assert_eq!(
            (skipped.warning, skipped.reason),
            (true, "IssuerUpdateSkipped")
        );
    }
}

#[test]
fn an_issuer_refused_as_not_yet_valid_is_loaded_once_it_becomes_valid() {
    let state = IssuerState::default();
    let (events, recorded) = Events::recorded();
    let mut watch = IssuerWatch::new(
        state.clone(),
        fixtures::anchors(),
        IssuancePolicy::default(),
        events,
    );
    let secret = linkerd_scheme(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY);
    // First seen before its notBefore (a rotation published ahead of time, or a clock behind).
    let early = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
    watch.apply_at(&secret, early);
    assert!(state.current().is_none());
    let at = watch.retry_at().expect("a retry is scheduled at notBefore");
    assert!(at > early);
    assert_eq!(recorded.lock().len(), 1, "one IssuerUpdateSkipped");

    // The same bytes again before that time: quiet, still pending.
    watch.apply_at(&secret, early + Duration::from_secs(1));
    assert!(state.current().is_none());
    assert_eq!(recorded.lock().len(), 1);

    // The Secret does not change (a resync), but the issuer has become valid: it is loaded.
    watch.apply_at(&secret, SystemTime::now());
    assert!(
        state.current().is_some(),
        "loaded on the resync after notBefore"
    );
    assert_eq!(watch.retry_at(), None);

    // The timer path does the same without any event from the API server.
    let state = IssuerState::default();
    let mut watch = IssuerWatch::new(
        state.clone(),
        fixtures::anchors(),
        IssuancePolicy::default(),
        Events::disabled(),
    );
    watch.apply_at(&secret, early);
    watch.retry(early + Duration::from_secs(1));
    assert!(state.current().is_none(), "not due yet");
    watch.retry(SystemTime::now());
    assert!(state.current().is_some());
}
