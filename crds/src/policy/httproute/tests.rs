//! The schema differences from Linkerd's HTTPRoute that were fixed (see the parity table in the
//! crate's docs); the e2e tests send the same manifests to a real API server.

use super::*;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn spec() -> Value {
    let crd = serde_json::to_value(HttpRoute::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn rule(spec: &Value) -> &Value {
    &spec["properties"]["rules"]["items"]
}

#[test]
fn a_path_match_defaults_to_path_prefix() {
    let spec = spec();
    let path = &rule(&spec)["properties"]["matches"]["items"]["properties"]["path"];
    assert_eq!(
        path["properties"]["type"]["default"], "PathPrefix",
        "{path}"
    );
    assert!(
        !path["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("type"))),
        "{path}"
    );
    let read: HttpPathMatch = serde_json::from_value(json!({"value": "/books"})).unwrap();
    assert_eq!(read.kind, PathMatchType::PathPrefix);
}

#[test]
fn header_and_parameter_lists_are_keyed_by_name() {
    let spec = spec();
    let rule = rule(&spec);
    let matched = &rule["properties"]["matches"]["items"]["properties"];
    let filter = &rule["properties"]["filters"]["items"]["properties"];
    let backend_filter =
        &rule["properties"]["backendRefs"]["items"]["properties"]["filters"]["items"]["properties"];
    let lists = [
        &matched["headers"],
        &matched["queryParams"],
        &filter["requestHeaderModifier"]["properties"]["set"],
        &filter["requestHeaderModifier"]["properties"]["add"],
        &backend_filter["responseHeaderModifier"]["properties"]["set"],
        &backend_filter["responseHeaderModifier"]["properties"]["add"],
    ];
    for list in lists {
        assert_eq!(list["x-kubernetes-list-type"], "map", "{list}");
        assert_eq!(
            list["x-kubernetes-list-map-keys"],
            json!(["name"]),
            "{list}"
        );
    }
    // `remove` is a plain list, as in Linkerd's schema.
    assert!(
        filter["requestHeaderModifier"]["properties"]["remove"]
            .get("x-kubernetes-list-type")
            .is_none()
    );
}

#[test]
fn section_names_and_redirect_hosts_are_subdomains() {
    let spec = spec();
    let section = &spec["properties"]["parentRefs"]["items"]["properties"]["sectionName"];
    assert_eq!(section["pattern"], SUBDOMAIN_PATTERN, "{section}");
    let host = &rule(&spec)["properties"]["filters"]["items"]["properties"]["requestRedirect"]["properties"]
        ["hostname"];
    assert_eq!(host["pattern"], SUBDOMAIN_PATTERN, "{host}");
}

#[test]
fn only_backends_modify_response_headers() {
    let spec = spec();
    let rules = |node: &Value| -> Vec<String> {
        node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v["rule"].as_str().unwrap().to_string())
            .collect()
    };
    let rule_filters = &rule(&spec)["properties"]["filters"];
    assert_eq!(
        rules(rule_filters),
        ["self.all(f, f.type != 'ResponseHeaderModifier')"]
    );
    let backend_filters =
        &rule(&spec)["properties"]["backendRefs"]["items"]["properties"]["filters"];
    assert!(rules(backend_filters).is_empty(), "{backend_filters}");
}

#[test]
fn a_filter_needs_only_its_own_settings() {
    let spec = spec();
    let filter = &rule(&spec)["properties"]["filters"]["items"];
    let rules: Vec<&str> = filter["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "self.type != 'RequestHeaderModifier' || has(self.requestHeaderModifier)",
            "self.type != 'ResponseHeaderModifier' || has(self.responseHeaderModifier)",
            "self.type != 'RequestRedirect' || has(self.requestRedirect)",
        ]
    );
}
