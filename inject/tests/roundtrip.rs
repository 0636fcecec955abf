//! `uninject` reverses `inject`: for every fixture object, in auto and manual mode, injecting
//! and then uninjecting gives back the object as it was, and injecting twice equals once.

use oxlink_crds::names::annotations as anno;
use oxlink_inject::{
    Values,
    workload::{InjectOptions, ObjectResult, inject_object, uninject_object},
};
use serde_json::Value;
use std::collections::BTreeMap;

fn fixtures() -> Vec<Value> {
    let text = include_str!("../testdata/workloads.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("fixtures parse");
    assert_eq!(docs.len(), 11);
    docs
}

fn options(values: &Values, manual: bool) -> InjectOptions<'_> {
    InjectOptions {
        values,
        trust_anchors_pem: oxlink_tls::fixtures::ANCHOR_CRT,
        control_plane_namespace: "linkerd",
        created_by: "oxlink/cli test",
        manual,
        annotations: BTreeMap::from([(anno::INJECT.into(), anno::INJECT_ENABLED.into())]),
        service_annotations: BTreeMap::new(),
    }
}

#[test]
fn uninject_reverses_inject_for_every_fixture() {
    let values = Values::default();
    for manual in [false, true] {
        for original in fixtures() {
            let kind = original["kind"].as_str().unwrap().to_string();
            let opts = options(&values, manual);
            let mut injected = original.clone();
            let result = inject_object(&mut injected, &opts).unwrap();
            let expected = match (kind.as_str(), manual) {
                ("Service" | "ConfigMap", _) => ObjectResult::Unsupported,
                ("Namespace", _) | (_, false) => ObjectResult::Annotated,
                _ => ObjectResult::Injected,
            };
            assert_eq!(result, expected, "{kind} (manual: {manual})");
            if expected != ObjectResult::Unsupported {
                assert_ne!(injected, original, "{kind} changed");
            }

            let mut again = injected.clone();
            inject_object(&mut again, &opts).unwrap();
            assert_eq!(again, injected, "{kind}: injecting twice equals once");

            let mut restored = injected.clone();
            uninject_object(&mut restored);
            assert_eq!(restored, original, "{kind} (manual: {manual}) restored");
        }
    }
}

#[test]
fn manual_injection_renders_the_proxy_and_drops_the_inject_annotation() {
    let values = Values::default();
    let mut deployment = fixtures().remove(0);
    inject_object(&mut deployment, &options(&values, true)).unwrap();
    let template = &deployment["spec"]["template"];
    let inits: Vec<&str> = template["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(inits, ["linkerd-init", "linkerd-proxy"]);
    assert!(
        template["metadata"]["annotations"]
            .get(anno::INJECT)
            .is_none()
    );
    assert_eq!(
        template["metadata"]["labels"]["linkerd.io/proxy-deployment"],
        "web"
    );
    assert_eq!(
        template["metadata"]["labels"]["linkerd.io/workload-ns"],
        "emojivoto"
    );
    assert_eq!(
        template["metadata"]["creationTimestamp"],
        Value::Null,
        "fields the typed model drops are kept"
    );
    assert!(template["metadata"].get("creationTimestamp").is_some());
}

#[test]
fn uninject_keeps_an_opt_out_and_control_plane_pods() {
    let mut pod: Value = serde_json::json!({
        "kind": "Pod",
        "metadata": {"annotations": {"linkerd.io/inject": "disabled", "linkerd.io/created-by": "x"}},
        "spec": {"containers": [{"name": "linkerd-proxy"}, {"name": "app"}]},
    });
    assert!(uninject_object(&mut pod));
    assert_eq!(
        pod["metadata"]["annotations"],
        serde_json::json!({"linkerd.io/inject": "disabled"})
    );
    assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 1);

    let mut control_plane: Value = serde_json::json!({
        "kind": "Pod",
        "metadata": {"labels": {"linkerd.io/control-plane-component": "identity"}},
        "spec": {"containers": [{"name": "linkerd-proxy"}]},
    });
    let before = control_plane.clone();
    assert!(!uninject_object(&mut control_plane));
    assert_eq!(control_plane, before);
}

#[test]
fn skipped_workloads_are_reported_and_unchanged() {
    let values = Values::default();
    let mut host: Value = serde_json::json!({
        "kind": "Deployment",
        "metadata": {"name": "h"},
        "spec": {"template": {"spec": {"hostNetwork": true, "containers": [{"name": "a"}]}}},
    });
    let before = host.clone();
    let result = inject_object(&mut host, &options(&values, true)).unwrap();
    assert_eq!(
        result,
        ObjectResult::Skipped(oxlink_inject::SkipReason::HostNetwork)
    );
    assert_eq!(host, before);
}

/// `oxlink inject --manual` labels each workload's pods as Linkerd's injector does
/// (`linkerd.io/proxy-<kind>: <name>`, facts §4.5) and with the object's own namespace; a bare
/// Pod has no owner label.
#[test]
fn manual_injection_labels_pods_with_their_workload_and_namespace() {
    let values = Values::default();
    let mut seen = 0;
    for mut object in fixtures() {
        let kind = object["kind"].as_str().unwrap().to_string();
        let Some(pointer) = oxlink_inject::workload::template_pointer(&kind) else {
            continue;
        };
        if inject_object(&mut object, &options(&values, true)).unwrap() != ObjectResult::Injected {
            continue;
        }
        seen += 1;
        let labels = if pointer.is_empty() {
            &object["metadata"]["labels"]
        } else {
            &object.pointer(pointer).unwrap()["metadata"]["labels"]
        };
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        assert_eq!(labels["linkerd.io/workload-ns"], namespace, "{kind}");
        let owner_labels: Vec<(&String, &Value)> = labels
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("linkerd.io/proxy-"))
            .collect();
        match kind.as_str() {
            "Pod" => assert!(owner_labels.is_empty(), "{kind}: {owner_labels:?}"),
            _ => {
                let key = format!("linkerd.io/proxy-{}", kind.to_lowercase());
                assert_eq!(owner_labels.len(), 1, "{kind}: {owner_labels:?}");
                assert_eq!(owner_labels[0].0, &key, "{kind}");
                assert_eq!(owner_labels[0].1, &object["metadata"]["name"], "{kind}");
            }
        }
    }
    assert_eq!(seen, 8, "every workload kind of the fixtures was injected");
}
