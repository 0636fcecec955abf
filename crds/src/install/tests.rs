use super::*;
use crate::names::groups;
use kube::Resource;
use serde_json::Value;
use std::{collections::BTreeMap, path::PathBuf};

fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CHART_TEMPLATES_DIR)
}

fn crd(name: &str) -> CustomResourceDefinition {
    crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD named {name}"))
}

/// The checked-in chart is exactly what the types generate (the same check as
/// `cargo xtask codegen --check`).
#[test]
fn chart_templates_match_the_types() {
    let want: BTreeMap<String, String> = chart_templates().into_iter().collect();
    let mut have = BTreeMap::new();
    for entry in std::fs::read_dir(templates_dir()).expect("the chart's templates exist") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            have.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "template files differ; run `cargo xtask codegen`"
    );
    for (name, contents) in &want {
        assert!(
            have[name] == *contents,
            "{CHART_TEMPLATES_DIR}/{name} is stale; run `cargo xtask codegen`"
        );
    }
}

/// Every CRD Linkerd installs (plus SMI's TrafficSplit), with its served versions, storage
/// version, short names, printer columns and status subresource.
#[test]
fn crds_match_linkerd_names_and_versions() {
    struct Want {
        name: &'static str,
        kind: &'static str,
        versions: &'static [&'static str],
        storage: &'static str,
        short_names: &'static [&'static str],
        printer_columns: &'static [&'static str],
        /// The versions with a `status` subresource.
        status: &'static [&'static str],
    }
    let table = [
        Want {
            name: "serviceprofiles.linkerd.io",
            kind: "ServiceProfile",
            versions: &["v1alpha1", "v1alpha2"],
            storage: "v1alpha2",
            short_names: &["sp"],
            printer_columns: &[],
            status: &[],
        },
        Want {
            name: "servers.policy.linkerd.io",
            kind: "Server",
            versions: &["v1alpha1", "v1beta1", "v1beta2", "v1beta3"],
            storage: "v1beta3",
            short_names: &["srv"],
            printer_columns: &["Port", "Protocol", "Access Policy"],
            status: &[],
        },
        Want {
            name: "serverauthorizations.policy.linkerd.io",
            kind: "ServerAuthorization",
            versions: &["v1alpha1", "v1beta1"],
            storage: "v1beta1",
            short_names: &["saz", "serverauthz", "srvauthz"],
            printer_columns: &["Server"],
            status: &[],
        },
        Want {
            name: "authorizationpolicies.policy.linkerd.io",
            kind: "AuthorizationPolicy",
            versions: &["v1alpha1"],
            storage: "v1alpha1",
            short_names: &["authzpolicy"],
            printer_columns: &[],
            status: &[],
        },
        Want {
            name: "meshtlsauthentications.policy.linkerd.io",
            kind: "MeshTLSAuthentication",
            versions: &["v1alpha1"],
            storage: "v1alpha1",
            short_names: &["meshtlsauthn"],
            printer_columns: &[],
            status: &[],
        },
        Want {
            name: "networkauthentications.policy.linkerd.io",
            kind: "NetworkAuthentication",
            versions: &["v1alpha1"],
            storage: "v1alpha1",
            short_names: &["netauthn", "networkauthn"],
            printer_columns: &[],
            status: &[],
        },
        Want {
            name: "httproutes.policy.linkerd.io",
            kind: "HTTPRoute",
            versions: &["v1alpha1", "v1beta1", "v1beta2", "v1beta3"],
            storage: "v1beta3",
            short_names: &[],
            printer_columns: &["Hostnames", "Age"],
            status: &["v1alpha1", "v1beta1", "v1beta2", "v1beta3"],
        },
        Want {
            name: "egressnetworks.policy.linkerd.io",
            kind: "EgressNetwork",
            versions: &["v1alpha1"],
            storage: "v1alpha1",
            short_names: &[],
            printer_columns: &[],
            status: &["v1alpha1"],
        },
        Want {
            name: "httplocalratelimitpolicies.policy.linkerd.io",
            kind: "HTTPLocalRateLimitPolicy",
            versions: &["v1alpha1"],
            storage: "v1alpha1",
            short_names: &[],
            printer_columns: &["Target_kind", "Target_name", "Total_RPS", "Identity_RPS"],
            status: &["v1alpha1"],
        },
        Want {
            name: "externalworkloads.workload.linkerd.io",
            kind: "ExternalWorkload",
            versions: &["v1alpha1", "v1beta1"],
            storage: "v1beta1",
            short_names: &[],
            printer_columns: &["Identity", "Age"],
            status: &["v1beta1"],
        },
        Want {
            name: "trafficsplits.split.smi-spec.io",
            kind: "TrafficSplit",
            versions: &["v1alpha1", "v1alpha2"],
            storage: "v1alpha1",
            short_names: &["ts"],
            printer_columns: &["Service"],
            status: &[],
        },
    ];
    let names: Vec<_> = crds().into_iter().filter_map(|c| c.metadata.name).collect();
    let mut want_names: Vec<_> = table.iter().map(|w| w.name.to_string()).collect();
    want_names.sort();
    assert_eq!(names, want_names);

    for want in &table {
        let crd = crd(want.name);
        let ctx = want.name;
        assert_eq!(crd.spec.names.kind, want.kind, "{ctx}");
        assert_eq!(crd.spec.scope, "Namespaced", "{ctx}");
        let versions: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(versions, want.versions, "{ctx}");
        let storage: Vec<_> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(
            storage,
            [want.storage],
            "{ctx}: exactly one storage version"
        );
        assert!(
            crd.spec.versions.iter().all(|v| v.served),
            "{ctx}: every version is served"
        );
        let short: Vec<_> = crd.spec.names.short_names.clone().unwrap_or_default();
        assert_eq!(short, want.short_names, "{ctx}");
        for v in &crd.spec.versions {
            let columns: Vec<_> = v
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            if v.name == want.storage {
                assert_eq!(columns, want.printer_columns, "{ctx} {}", v.name);
            }
            let status = v.subresources.as_ref().is_some_and(|s| s.status.is_some());
            let want_status = want.status.contains(&v.name.as_str());
            assert_eq!(status, want_status, "{ctx} {}: status subresource", v.name);
        }
    }
}

/// The groups in the types' derive attributes are the ones in `names::groups`.
#[test]
fn types_use_the_group_constants() {
    use crate::{policy::*, *};
    assert_eq!(ServiceProfile::group(&()), groups::LINKERD);
    for group in [
        Server::group(&()),
        ServerAuthorization::group(&()),
        AuthorizationPolicy::group(&()),
        MeshTlsAuthentication::group(&()),
        NetworkAuthentication::group(&()),
        HttpRoute::group(&()),
        EgressNetwork::group(&()),
        HttpLocalRateLimitPolicy::group(&()),
    ] {
        assert_eq!(group, groups::POLICY);
    }
    assert_eq!(ExternalWorkload::group(&()), groups::WORKLOAD);
    assert_eq!(TrafficSplit::group(&()), groups::SPLIT);
    for crd in crds() {
        assert!(
            [
                groups::LINKERD,
                groups::POLICY,
                groups::WORKLOAD,
                groups::SPLIT
            ]
            .contains(&crd.spec.group.as_str()),
            "{:?}",
            crd.metadata.name
        );
    }
}

/// The API server rejects non-structural schemas; check the rules before it has to.
#[test]
fn every_schema_is_structural() {
    for crd in crds() {
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("every version has a schema");
            let schema = serde_json::to_value(schema).unwrap();
            let at = format!("{} {}", crd.metadata.name.as_deref().unwrap(), version.name);
            assert_eq!(schema["type"], "object", "{at}: the root is an object");
            check_structural(&schema, &at);
        }
    }
}

fn check_structural(node: &Value, at: &str) {
    let obj = node
        .as_object()
        .unwrap_or_else(|| panic!("{at}: a schema is an object"));
    for banned in [
        "$ref",
        "$schema",
        "$defs",
        "definitions",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
    ] {
        assert!(!obj.contains_key(banned), "{at}: `{banned}` is not allowed");
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let ty = obj.get("type").and_then(Value::as_str);
    if int_or_string {
        assert!(ty.is_none(), "{at}: an int-or-string node has no type");
    } else {
        assert!(
            ty.is_some_and(|t| !t.is_empty()) || preserve,
            "{at}: every node has a type: {node}"
        );
    }
    if let Some(format) = obj.get("format").and_then(Value::as_str) {
        let allowed: &[&str] = match ty {
            Some("integer") => &["int32", "int64"],
            Some("number") => &["float", "double"],
            _ => &["date-time", "byte", "int-or-string"],
        };
        assert!(
            allowed.contains(&format),
            "{at}: format {format} for type {ty:?}"
        );
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        assert!(!values.is_empty(), "{at}: empty enum");
    }
    assert!(
        !(obj.contains_key("properties") && obj.contains_key("additionalProperties")),
        "{at}: properties and additionalProperties are exclusive"
    );
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        let props = obj.get("properties").and_then(Value::as_object);
        for r in required {
            let r = r.as_str().unwrap();
            assert!(
                props.is_some_and(|p| p.contains_key(r)),
                "{at}: required `{r}` is not a property"
            );
        }
    }
    for rule in obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert!(
            rule["rule"].is_string(),
            "{at}: a CEL validation has a rule"
        );
        assert!(
            rule["message"].is_string(),
            "{at}: a CEL validation says what is wrong"
        );
    }
    match ty {
        Some("object") => {
            for (name, prop) in obj
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                check_structural(prop, &format!("{at}.{name}"));
            }
            if let Some(additional) = obj.get("additionalProperties") {
                check_structural(additional, &format!("{at}.*"));
            }
        }
        Some("array") => {
            let items = obj
                .get("items")
                .unwrap_or_else(|| panic!("{at}: an array has items"));
            check_structural(items, &format!("{at}[]"));
        }
        _ => assert!(
            !obj.contains_key("properties") && !obj.contains_key("items"),
            "{at}: only objects have properties and only arrays have items"
        ),
    }
}

/// The YAML we print parses back into exactly the CRDs we generated.
#[test]
fn manifest_parses_back_into_the_same_crds() {
    let parsed: Vec<CustomResourceDefinition> =
        serde_saphyr::from_multiple(&manifest()).expect("the manifest is valid YAML");
    assert_eq!(parsed, crds());
}

/// The manifest is the chart's templates concatenated, each marked as generated, with nothing
/// Helm would interpret.
#[test]
fn manifest_is_the_templates_concatenated() {
    let templates = chart_templates();
    assert_eq!(templates.len(), crds().len());
    let mut joined = String::new();
    for (name, yaml) in &templates {
        assert!(yaml.starts_with(GENERATED_HEADER), "{name}");
        assert!(!yaml.contains("{{"), "{name} contains a Helm directive");
        assert_eq!(yaml.matches("\n---\n").count(), 1, "{name} is one document");
        joined.push_str(yaml);
    }
    assert_eq!(manifest(), joined);
}

/// `kubectl apply` (client-side) stores the whole object in an annotation limited to 256 KiB.
#[test]
fn every_crd_fits_client_side_apply() {
    for crd in crds() {
        let size = serde_json::to_vec(&crd).unwrap().len();
        assert!(
            size < 200 * 1024,
            "{:?} is {size} bytes as JSON",
            crd.metadata.name
        );
    }
}
