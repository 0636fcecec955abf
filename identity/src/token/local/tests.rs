use super::*;
use crate::{
    test_support::{es256_key, jwk_of, sign_es256},
    token::keys::KeySet,
};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use ring::signature::EcdsaKeyPair;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const SA_UID: &str = "0b6f-sa";
const POD_UID: &str = "7c1d-pod";

/// Key sets handed out in turn; counts fetches.
struct Keys {
    set: Mutex<KeySet>,
    fetches: AtomicUsize,
}

impl FetchKeys for Arc<Keys> {
    async fn fetch(&self) -> Result<KeySet, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(self.set.lock().clone())
    }
}

/// The API server's answer when the local checks cannot decide; counts the calls.
#[derive(Default)]
struct Review(AtomicUsize);

impl ValidateToken for Arc<Review> {
    async fn validate(&self, _: &str) -> Result<String, TokenError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(TokenError::Invalid("reviewed".into()))
    }
}

struct Setup {
    tokens: LocalTokens<Arc<Keys>, Arc<Review>>,
    keys: Arc<Keys>,
    review: Arc<Review>,
    bound: Arc<BoundObjects>,
    key: EcdsaKeyPair,
}

fn key_set(keys: &[(&str, &EcdsaKeyPair)]) -> KeySet {
    KeySet {
        issuer: ISSUER.into(),
        keys: keys
            .iter()
            .map(|(kid, k)| (kid.to_string(), Arc::new(jwk_of(k))))
            .collect(),
    }
}

async fn setup() -> Setup {
    let key = es256_key();
    let keys = Arc::new(Keys {
        set: Mutex::new(key_set(&[("k1", &key)])),
        fetches: AtomicUsize::new(0),
    });
    let issuer_keys = Arc::new(IssuerKeys::new(keys.clone()));
    issuer_keys.refresh().await.unwrap();
    let bound = Arc::new(BoundObjects::default());
    bound
        .service_accounts
        .apply("default", "web", SA_UID, false);
    bound.pods.apply("default", "web-0", POD_UID, false);
    let review = Arc::new(Review::default());
    let metrics = Metrics::register(&mut Registry::default());
    let tokens = LocalTokens::new(
        issuer_keys,
        bound.clone(),
        review.clone(),
        Duration::from_secs(20),
        metrics,
    );
    Setup {
        tokens,
        keys,
        review,
        bound,
        key,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a projected token of pod `default/web-0` (ServiceAccount `web`).
fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": [IDENTITY_TOKEN_AUDIENCE],
        "exp": now() + 3600,
        "iat": now() - 10,
        "nbf": now() - 10,
        "sub": "system:serviceaccount:default:web",
        "kubernetes.io": {
            "namespace": "default",
            "serviceaccount": {"name": "web", "uid": SA_UID},
            "pod": {"name": "web-0", "uid": POD_UID},
        },
    })
}

fn with(mut claims: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut claims;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    at[path[path.len() - 1]] = value;
    claims
}

impl Setup {
    async fn verdict(&self, claims: &Value) -> Verdict {
        self.verdict_signed(&sign_es256(&self.key, "k1", claims))
            .await
    }

    async fn verdict_signed(&self, token: &str) -> Verdict {
        self.tokens.verify(token, SystemTime::now()).await
    }
}

#[tokio::test]
async fn accepts_a_bound_token_without_the_api_server() {
    let s = setup().await;
    assert_eq!(
        s.verdict(&claims()).await,
        Verdict::Valid("system:serviceaccount:default:web".into())
    );
    // `aud` as a single string, and a token bound to the ServiceAccount only.
    let single = with(claims(), &["aud"], json!(IDENTITY_TOKEN_AUDIENCE));
    assert!(matches!(s.verdict(&single).await, Verdict::Valid(_)));
    let mut sa_only = claims();
    sa_only["kubernetes.io"]
        .as_object_mut()
        .unwrap()
        .remove("pod");
    assert!(matches!(s.verdict(&sa_only).await, Verdict::Valid(_)));
    assert_eq!(
        s.tokens
            .validate(&sign_es256(&s.key, "k1", &claims()))
            .await
            .unwrap(),
        "system:serviceaccount:default:web"
    );
    assert_eq!(s.review.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn refuses_what_the_api_server_refuses() {
    let s = setup().await;
    let invalid = |v: Verdict, what: &str| match v {
        Verdict::Invalid(reason) => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected Invalid({what}), got {other:?}"),
    };
    invalid(
        s.verdict(&with(claims(), &["exp"], json!(now() - 21)))
            .await,
        "expired",
    );
    invalid(
        s.verdict(&with(claims(), &["nbf"], json!(now() + 3600)))
            .await,
        "not valid yet",
    );
    // Within the skew, both still hold.
    assert!(matches!(
        s.verdict(&with(claims(), &["exp"], json!(now() - 5))).await,
        Verdict::Valid(_)
    ));

    // Forged: signed by another key under a known key id; or a claim changed after signing.
    let forged = sign_es256(&es256_key(), "k1", &claims());
    invalid(s.verdict_signed(&forged).await, "signature");
    let real = sign_es256(&s.key, "k1", &claims());
    let mut parts: Vec<String> = real.split('.').map(String::from).collect();
    parts[1] = crate::test_support::b64url(
        with(
            claims(),
            &["kubernetes.io", "serviceaccount", "name"],
            json!("admin"),
        )
        .to_string()
        .as_bytes(),
    );
    invalid(s.verdict_signed(&parts.join(".")).await, "signature");

    // The ServiceAccount deleted and recreated under the same name; the pod deleted.
    s.bound.service_accounts.delete("default", "web", SA_UID);
    s.bound
        .service_accounts
        .apply("default", "web", "new-uid", false);
    invalid(s.verdict(&claims()).await, "ServiceAccount default/web");
    s.bound
        .service_accounts
        .apply("default", "web", SA_UID, false);
    s.bound.pods.delete("default", "web-0", POD_UID);
    invalid(s.verdict(&claims()).await, "pod default/web-0");
    assert_eq!(
        s.review.0.load(Ordering::SeqCst),
        0,
        "decided without TokenReview"
    );
}

#[tokio::test]
async fn sends_what_it_cannot_decide_to_the_api_server() {
    let s = setup().await;
    let undecided = [
        ("not_jwt", "not-a-jwt".to_string()),
        (
            "issuer",
            sign_es256(
                &s.key,
                "k1",
                &with(claims(), &["iss"], json!("https://other.example")),
            ),
        ),
        // A legacy Secret token.
        (
            "issuer",
            sign_es256(
                &s.key,
                "k1",
                &json!({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:web"}),
            ),
        ),
        (
            "audience",
            sign_es256(&s.key, "k1", &with(claims(), &["aud"], json!([ISSUER]))),
        ),
        ("unknown_kid", sign_es256(&es256_key(), "k9", &claims())),
        (
            "service_account_unknown",
            sign_es256(
                &s.key,
                "k1",
                &with(
                    claims(),
                    &["kubernetes.io", "serviceaccount", "uid"],
                    json!("never-seen"),
                ),
            ),
        ),
        (
            "pod_unknown",
            sign_es256(
                &s.key,
                "k1",
                &with(claims(), &["kubernetes.io", "pod", "name"], json!("web-1")),
            ),
        ),
        (
            "secret_bound",
            sign_es256(
                &s.key,
                "k1",
                &with(
                    claims(),
                    &["kubernetes.io", "secret"],
                    json!({"name": "s", "uid": "u"}),
                ),
            ),
        ),
    ];
    for (i, (why, token)) in undecided.iter().enumerate() {
        assert_eq!(
            s.verdict_signed(token).await,
            Verdict::Undecided(why),
            "{why}"
        );
        assert_eq!(
            s.tokens.validate(token).await,
            Err(TokenError::Invalid("reviewed".into()))
        );
        assert_eq!(s.review.0.load(Ordering::SeqCst), i + 1);
    }
    // A terminating pod: the API server decides (it allows a grace period).
    s.bound.pods.apply("default", "web-0", POD_UID, true);
    assert_eq!(
        s.verdict(&claims()).await,
        Verdict::Undecided("pod_unknown")
    );
}

#[tokio::test]
async fn an_unknown_key_id_refreshes_the_keys_once() {
    let s = setup().await;
    assert_eq!(s.keys.fetches.load(Ordering::SeqCst), 1);
    // The API server's signing key rotates: tokens carry a new key id.
    let rotated = es256_key();
    *s.keys.set.lock() = key_set(&[("k1", &s.key), ("k2", &rotated)]);
    // Past the refresh interval since the first fetch.
    *s.tokens.keys.last_fetch.lock().await =
        Some(std::time::Instant::now() - Duration::from_secs(60));
    let token = sign_es256(&rotated, "k2", &claims());
    let (a, b) = tokio::join!(s.verdict_signed(&token), s.verdict_signed(&token));
    assert!(matches!(a, Verdict::Valid(_)), "{a:?}");
    assert!(matches!(b, Verdict::Valid(_)), "{b:?}");
    assert_eq!(
        s.keys.fetches.load(Ordering::SeqCst),
        2,
        "concurrent misses share a fetch"
    );
    // Old tokens still verify; a key id nobody publishes does not refetch within the interval.
    assert!(matches!(s.verdict(&claims()).await, Verdict::Valid(_)));
    let unknown = sign_es256(&rotated, "k3", &claims());
    assert_eq!(
        s.verdict_signed(&unknown).await,
        Verdict::Undecided("unknown_kid")
    );
    assert_eq!(
        s.verdict_signed(&unknown).await,
        Verdict::Undecided("unknown_kid")
    );
    assert_eq!(s.keys.fetches.load(Ordering::SeqCst), 2);
}
