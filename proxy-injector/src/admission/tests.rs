use super::*;
use serde_json::{Value, json};

/// Namespaces and owners from maps, no API server.
#[derive(Default)]
struct FakeCluster {
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    deployments_of: BTreeMap<String, String>,
}

impl Cluster for FakeCluster {
    fn namespace_annotations<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, LookupError>> {
        let found = self
            .namespaces
            .get(namespace)
            .cloned()
            .ok_or_else(|| LookupError(format!("namespaces \"{namespace}\" not found")));
        Box::pin(async move { found })
    }

    fn owner<'a>(
        &'a self,
        _namespace: &'a str,
        controller: &'a OwnerReference,
    ) -> BoxFuture<'a, Result<Owner, LookupError>> {
        let owner = match self.deployments_of.get(&controller.name) {
            Some(d) => Owner {
                kind: "Deployment".into(),
                name: d.clone(),
            },
            None => Owner {
                kind: controller.kind.clone(),
                name: controller.name.clone(),
            },
        };
        Box::pin(async move { Ok(owner) })
    }
}

fn injector() -> Injector {
    let cluster = FakeCluster {
        namespaces: [
            (
                "meshed".to_string(),
                BTreeMap::from([("linkerd.io/inject".to_string(), "enabled".to_string())]),
            ),
            ("plain".to_string(), BTreeMap::new()),
        ]
        .into(),
        deployments_of: [("web-5d8f".to_string(), "web".to_string())].into(),
    };
    let config = StaticConfig {
        values: Arc::new(Values::default()),
        trust_anchors_pem: oxlink_tls::fixtures::ANCHOR_CRT.into(),
    };
    Injector::new(Arc::new(cluster), Arc::new(config), "linkerd".into())
}

fn review(kind: &str, namespace: &str, operation: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
            "namespace": namespace,
            "operation": operation,
            "object": object,
        },
    }))
    .unwrap()
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-5d8f-",
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                "uid": "1", "controller": true,
            }],
        },
        "spec": {"containers": [{"name": "web", "image": "example/web:1"}]},
    })
}

fn decode_patch(body: &[u8]) -> (Value, Option<Vec<PatchOp>>) {
    let review: Value = serde_json::from_slice(body).unwrap();
    let response = review["response"].clone();
    let patch = response["patch"].as_str().map(|b64| {
        let bytes = unbase64(b64);
        serde_json::from_slice(&bytes).unwrap()
    });
    (response, patch)
}

fn unbase64(s: &str) -> Vec<u8> {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | TABLE.iter().position(|t| *t == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(unbase64(&base64(b"\x00\xff\x10 any")), b"\x00\xff\x10 any");
}

#[tokio::test]
async fn a_pod_in_an_enabled_namespace_is_injected_with_its_deployment_label() {
    let reviewed = injector()
        .review(&review("Pod", "meshed", "CREATE", pod()))
        .await
        .unwrap();
    assert_eq!(reviewed.decision, Decision::Injected);
    let (response, patch) = decode_patch(&reviewed.body);
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let mut patched = pod();
    patch::apply(&mut patched, &patch.unwrap()).unwrap();
    assert_eq!(
        patched["metadata"]["labels"]["linkerd.io/proxy-deployment"],
        "web"
    );
    assert_eq!(
        patched["spec"]["initContainers"][1]["name"],
        "linkerd-proxy"
    );
    serde_json::from_value::<Pod>(patched).expect("still a pod");
}

#[tokio::test]
async fn pods_that_are_not_enabled_and_other_operations_are_allowed_untouched() {
    let injector = injector();
    let reviewed = injector
        .review(&review("Pod", "plain", "CREATE", pod()))
        .await
        .unwrap();
    assert_eq!(
        reviewed.decision,
        Decision::Skipped(crate::SkipReason::NotEnabled)
    );
    let (response, patch) = decode_patch(&reviewed.body);
    assert_eq!(response["allowed"], true);
    assert!(patch.is_none() && response.get("patchType").is_none());

    for (kind, op) in [
        ("Pod", "UPDATE"),
        ("Pod", "DELETE"),
        ("ConfigMap", "CREATE"),
    ] {
        let reviewed = injector
            .review(&review(kind, "meshed", op, json!({})))
            .await
            .unwrap();
        assert_eq!(reviewed.decision, Decision::Ignored, "{kind} {op}");
        assert_eq!(decode_patch(&reviewed.body).0["allowed"], true);
    }
}

#[tokio::test]
async fn services_get_their_default_opaque_ports() {
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"ports": [{"port": 5432}]},
    });
    let reviewed = injector()
        .review(&review("Service", "plain", "CREATE", service))
        .await
        .unwrap();
    let (_, patch) = decode_patch(&reviewed.body);
    assert_eq!(
        serde_json::to_value(patch.unwrap()).unwrap(),
        json!([{"op": "add", "path": "/metadata/annotations",
                "value": {"config.linkerd.io/opaque-ports": "5432"}}])
    );
}

/// Found by the `admission_review` fuzz target: an object sent without `metadata` (or with
/// `metadata: null`) got a patch adding under `/metadata`, which does not apply to it.
#[tokio::test]
async fn the_patch_applies_to_an_object_sent_without_metadata() {
    let injector = injector();
    let service = |metadata: Option<Value>| {
        let mut service = json!({"apiVersion": "v1", "kind": "Service",
                                 "spec": {"ports": [{"port": 3306}]}});
        if let Some(metadata) = metadata {
            service["metadata"] = metadata;
        }
        service
    };
    let mut bare_pod = pod();
    bare_pod.as_object_mut().unwrap().remove("metadata");
    for (kind, namespace, object) in [
        ("Service", "plain", service(None)),
        ("Service", "plain", service(Some(Value::Null))),
        ("Pod", "meshed", bare_pod),
    ] {
        let reviewed = injector
            .review(&review(kind, namespace, "CREATE", object.clone()))
            .await
            .unwrap();
        let (response, patch) = decode_patch(&reviewed.body);
        assert_eq!(response["allowed"], true, "{object}");
        let mut patched = object.clone();
        patch::apply(&mut patched, &patch.expect("a patch")).expect("the patch applies");
        assert!(patched["metadata"].is_object(), "{patched}");
    }
    // An object with metadata gets no extra operation.
    let reviewed = injector
        .review(&review(
            "Service",
            "plain",
            "CREATE",
            service(Some(json!({"name": "db"}))),
        ))
        .await
        .unwrap();
    assert_eq!(decode_patch(&reviewed.body).1.unwrap().len(), 1);
}

#[tokio::test]
async fn the_webhooks_own_failures_deny_with_a_message() {
    let reviewed = injector()
        .review(&review("Pod", "missing", "CREATE", pod()))
        .await
        .unwrap();
    let (response, _) = decode_patch(&reviewed.body);
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("namespaces \"missing\" not found"),
        "{message}"
    );

    let not_a_pod = json!({"kind": "Pod", "spec": {"containers": "nope"}});
    let reviewed = injector()
        .review(&review("Pod", "meshed", "CREATE", not_a_pod))
        .await
        .unwrap();
    let (response, _) = decode_patch(&reviewed.body);
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("the Pod does not parse")
    );
}

/// Bodies that are not a review, or reviews with broken parts: each gets an error or a
/// denial, never a panic.
#[tokio::test]
async fn a_corpus_of_malformed_bodies_never_panics() {
    let injector = injector();
    let valid = review("Pod", "meshed", "CREATE", pod());
    let mut corpus: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\"}".to_vec(),
        b"{\"apiVersion\": \"admission.k8s.io/v1beta1\", \"kind\": \"AdmissionReview\", \"request\": {}}".to_vec(),
        b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", \"request\": null}".to_vec(),
        b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", \"request\": {\"uid\": 7}}".to_vec(),
        "{\"apiVersion\": \"\u{1F600}\"}".as_bytes().to_vec(),
        "[".repeat(100_000).into_bytes(),
    ];
    for object in [
        json!(null),
        json!("pod"),
        json!({"spec": null}),
        json!({"spec": {"containers": [{"ports": [{"containerPort": "http"}]}]}}),
        json!({"metadata": {"annotations": {"linkerd.io/inject": 3}}}),
        json!({"metadata": {"annotations": {"config.linkerd.io/opaque-ports": "x-y,99999,-"}},
               "spec": {"containers": [{"name": "a"}]}}),
        json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet"}]}}),
        json!({"spec": {"hostNetwork": "yes"}}),
    ] {
        corpus.push(review("Pod", "meshed", "CREATE", object.clone()));
        corpus.push(review("Service", "meshed", "CREATE", object));
    }
    // Truncations and byte flips of a valid review.
    for cut in (0..valid.len()).step_by(37) {
        corpus.push(valid[..cut].to_vec());
    }
    for at in (0..valid.len()).step_by(53) {
        let mut flipped = valid.clone();
        flipped[at] ^= 0x5a;
        corpus.push(flipped);
    }
    let mut answered = 0;
    for body in &corpus {
        match injector.review(body).await {
            Ok(reviewed) => {
                let response: Value = serde_json::from_slice(&reviewed.body).unwrap();
                assert!(response["response"]["allowed"].is_boolean());
                answered += 1;
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(answered > 0 && answered < corpus.len());
}

#[test]
fn file_config_parses_the_values_again_only_when_a_file_changes() {
    let dir = std::env::temp_dir().join(format!("oxlink-file-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (values, anchors) = (dir.join("values"), dir.join("ca-bundle.crt"));
    std::fs::write(&values, "proxy:\n  logLevel: debug\n").unwrap();
    std::fs::write(&anchors, oxlink_tls::fixtures::ANCHOR_CRT).unwrap();
    let config = FileConfig::new(Some(values.clone()), anchors.clone());
    let (first, first_anchors) = config.load().unwrap();
    assert_eq!(first.proxy.log_level, "debug");
    let (again, _) = config.load().unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "unchanged files are not parsed again"
    );
    std::fs::write(&values, "proxy:\n  logLevel: info\n").unwrap();
    let (changed, changed_anchors) = config.load().unwrap();
    assert_eq!(changed.proxy.log_level, "info");
    assert_eq!(first_anchors, changed_anchors);
    std::fs::write(&values, "proxy: [not, a, map]\n").unwrap();
    assert!(
        config.load().is_err(),
        "a broken values file is an error, not the old values"
    );
    std::fs::remove_file(&anchors).unwrap();
    let error = config.load().unwrap_err();
    assert!(
        error.starts_with(&format!("reading {}", anchors.display())),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
