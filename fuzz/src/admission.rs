//! The admission webhook's inputs: AdmissionReviews for the injector and the validators, and a
//! cluster that answers lookups without an API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use oxlink_proxy_injector::{
    Owner, PatchOp, Values,
    admission::{BoxFuture, Cluster, Injector, LookupError, StaticConfig},
    patch,
    validate::{Verdict, Webhook},
};
use serde_json::{Value, json};
use std::{collections::BTreeMap, sync::Arc};

/// Every namespace asks for injection; owners are themselves; namespace `default` has one
/// Server on port 8080, so the policy validator's overlap check has something to compare.
pub struct FuzzCluster;

impl Cluster for FuzzCluster {
    fn namespace_annotations<'a>(
        &'a self,
        _namespace: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, LookupError>> {
        Box::pin(async {
            Ok(BTreeMap::from([(
                "linkerd.io/inject".to_string(),
                "enabled".to_string(),
            )]))
        })
    }

    fn owner<'a>(
        &'a self,
        _namespace: &'a str,
        controller: &'a OwnerReference,
    ) -> BoxFuture<'a, Result<Owner, LookupError>> {
        let owner = Owner {
            kind: controller.kind.clone(),
            name: controller.name.clone(),
        };
        Box::pin(async move { Ok(owner) })
    }

    fn servers<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<oxlink_crds::policy::Server>, LookupError>> {
        let servers = if namespace == "default" {
            vec![
                serde_json::from_value(json!({
                    "metadata": {"name": "existing", "namespace": "default"},
                    "spec": {"podSelector": {}, "port": 8080},
                }))
                .expect("a Server"),
            ]
        } else {
            Vec::new()
        };
        Box::pin(async move { Ok(servers) })
    }
}

/// The injector as the server runs it, with the default values.
pub fn injector() -> Injector {
    Injector::new(
        Arc::new(FuzzCluster),
        Arc::new(StaticConfig {
            values: Arc::new(Values::default()),
            trust_anchors_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                .into(),
        }),
        "linkerd".into(),
    )
}

/// An AdmissionReview v1 for `operation` of `object` (any JSON) of `group/version/kind`.
pub fn review(group: &str, version: &str, kind: &str, resource: &str, object: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz-uid",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "fuzz"},
            "object": object,
            "dryRun": false,
        },
    }))
    .expect("JSON")
}

/// The response of an AdmissionReview body the server wrote: it must be an AdmissionReview
/// whose response carries `uid`.
fn response(body: &[u8], uid: Option<&str>) -> Value {
    let review: Value = serde_json::from_slice(body).expect("the webhook answers JSON");
    let response = review["response"].clone();
    assert!(response.is_object(), "no response in {review}");
    if let Some(uid) = uid {
        assert_eq!(response["uid"], uid, "the response answers the request");
    }
    response
}

/// Injects `body` (an AdmissionReview); when the request was built from `object`, the
/// returned patch must apply to it and leave a JSON object.
pub async fn inject(injector: &Injector, body: &[u8], object: Option<&Value>) {
    let Ok(reviewed) = injector.review(body).await else {
        return;
    };
    let response = response(&reviewed.body, object.map(|_| "fuzz-uid"));
    let (Some(object), Some(patch)) = (object, response["patch"].as_str()) else {
        return;
    };
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = decode_base64(patch).expect("the patch is base64");
    let ops: Vec<PatchOp> = serde_json::from_slice(&bytes).expect("the patch is a JSON patch");
    let mut patched = object.clone();
    if let Err(error) = patch::apply(&mut patched, &ops) {
        panic!("the injector's patch does not apply to the object it was made for: {error}");
    }
    assert!(patched.is_object());
}

/// The group, version, kind and resource of every kind the validators check.
pub const VALIDATED: [(&str, &str, &str, &str); 10] = [
    (
        "linkerd.io",
        "v1alpha2",
        "ServiceProfile",
        "serviceprofiles",
    ),
    ("policy.linkerd.io", "v1beta3", "Server", "servers"),
    (
        "policy.linkerd.io",
        "v1beta1",
        "ServerAuthorization",
        "serverauthorizations",
    ),
    (
        "policy.linkerd.io",
        "v1alpha1",
        "AuthorizationPolicy",
        "authorizationpolicies",
    ),
    (
        "policy.linkerd.io",
        "v1alpha1",
        "MeshTLSAuthentication",
        "meshtlsauthentications",
    ),
    (
        "policy.linkerd.io",
        "v1alpha1",
        "NetworkAuthentication",
        "networkauthentications",
    ),
    ("policy.linkerd.io", "v1beta3", "HTTPRoute", "httproutes"),
    (
        "policy.linkerd.io",
        "v1alpha1",
        "HTTPLocalRateLimitPolicy",
        "httplocalratelimitpolicies",
    ),
    (
        "policy.linkerd.io",
        "v1alpha1",
        "EgressNetwork",
        "egressnetworks",
    ),
    ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
];

/// Validates `body` with both webhooks, by the object alone and against the cluster; a
/// request built here must be answered (allowed, denied or ignored), never refused.
pub async fn validate(body: &[u8], built: bool) {
    for webhook in [Webhook::ServiceProfile, Webhook::Policy] {
        let alone = webhook.review(body);
        let within = webhook.review_in(body, &FuzzCluster).await;
        if built {
            let (alone, within) = (
                alone.expect("a well-formed review is answered"),
                within.expect("a well-formed review is answered"),
            );
            response(&alone.body, Some("fuzz-uid"));
            let response = response(&within.body, Some("fuzz-uid"));
            let allowed = response["allowed"].as_bool();
            assert_eq!(
                allowed,
                Some(matches!(
                    within.verdict,
                    Verdict::Allowed | Verdict::Ignored
                )),
                "the answer says what was decided"
            );
            // The cluster can only add a denial.
            if matches!(alone.verdict, Verdict::Denied(_)) {
                assert!(matches!(within.verdict, Verdict::Denied(_)));
            }
        }
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
