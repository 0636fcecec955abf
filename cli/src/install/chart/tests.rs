use super::*;
use oxlink_tls::fixtures;
use std::collections::BTreeSet;

fn chart_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/oxlink-control-plane")
}

/// Default (or HA) values with the fixture identity and `overlay` on top.
fn values_with(ha: bool, overlay: Value) -> Value {
    let mut values = default_values(ha).unwrap();
    values::merge(
        &mut values,
        json!({
            "identityTrustAnchorsPEM": fixtures::ANCHOR_CRT,
            "identity": {"issuer": {"tls": {
                "crtPEM": fixtures::ISSUER_CRT, "keyPEM": fixtures::ISSUER_KEY,
            }}},
        }),
    );
    values::merge(&mut values, overlay);
    values
}

fn objects(values: &Value) -> Vec<Value> {
    render(values, "linkerd")
        .unwrap()
        .iter()
        .map(|d| serde_saphyr::from_str(&d.yaml).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} is rendered"))
}

fn names(objects: &[Value]) -> BTreeSet<(String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_template_file_is_embedded() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(chart_dir().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let embedded: BTreeSet<String> = TEMPLATES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(embedded, on_disk);
    for (file, text) in TEMPLATES {
        assert_eq!(
            *text,
            std::fs::read_to_string(chart_dir().join("templates").join(file)).unwrap()
        );
    }
}

/// Every value, or a block holding it, has a `# --` comment right above it.
#[test]
fn every_value_is_documented() {
    for (name, text) in [
        ("values.yaml", VALUES_YAML),
        ("values-ha.yaml", VALUES_HA_YAML),
    ] {
        let mut documented = false;
        // (indentation, documented) of the enclosing keys.
        let mut blocks: Vec<(usize, bool)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.starts_with('#') {
                documented |= trimmed.starts_with("# --");
                continue;
            }
            let indent = line.len() - trimmed.len();
            while blocks.last().is_some_and(|(i, _)| *i >= indent) {
                blocks.pop();
            }
            let covered = documented || blocks.iter().any(|(_, d)| *d);
            if trimmed.ends_with(':') {
                blocks.push((indent, documented));
            } else {
                assert!(covered, "{name}:{}: {line:?} has no `# --` comment", i + 1);
            }
            documented = false;
        }
    }
}

#[test]
fn chart_defaults_are_the_injectors_defaults() {
    let chart = oxlink_inject::Values::from_yaml(VALUES_YAML).unwrap();
    assert_eq!(chart, oxlink_inject::Values::default());
    let values = default_values(false).unwrap();
    assert_eq!(values["controllerImageVersion"], crate::VERSION);
    let chart_yaml = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    assert!(chart_yaml.contains(&format!("appVersion: \"{}\"", crate::VERSION)));
}

#[test]
fn default_render_has_linkerds_objects() {
    let objects = objects(&values_with(false, json!({})));
    let want: BTreeSet<(String, String)> = [
        ("ServiceAccount", "linkerd-identity"),
        ("ServiceAccount", "linkerd-destination"),
        ("ServiceAccount", "linkerd-proxy-injector"),
        ("Secret", "linkerd-identity-issuer"),
        ("ConfigMap", "linkerd-config"),
        ("ConfigMap", "linkerd-identity-trust-roots"),
        ("ClusterRole", "linkerd-linkerd-identity"),
        ("ClusterRole", "linkerd-linkerd-destination"),
        ("ClusterRole", "linkerd-linkerd-proxy-injector"),
        ("ClusterRoleBinding", "linkerd-linkerd-identity"),
        ("ClusterRoleBinding", "linkerd-linkerd-destination"),
        ("ClusterRoleBinding", "linkerd-linkerd-proxy-injector"),
        ("Role", "linkerd-identity"),
        ("Role", "linkerd-proxy-injector"),
        ("RoleBinding", "linkerd-identity"),
        ("RoleBinding", "linkerd-proxy-injector"),
        ("Service", "linkerd-identity"),
        ("Service", "linkerd-identity-headless"),
        ("Service", "linkerd-dst"),
        ("Service", "linkerd-dst-headless"),
        ("Service", "linkerd-policy"),
        ("Service", "linkerd-proxy-injector"),
        ("Service", "linkerd-sp-validator"),
        ("Service", "linkerd-policy-validator"),
        ("Deployment", "linkerd-identity"),
        ("Deployment", "linkerd-destination"),
        ("Deployment", "linkerd-proxy-injector"),
        (
            "MutatingWebhookConfiguration",
            "linkerd-proxy-injector-webhook-config",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-sp-validator-webhook-config",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-policy-validator-webhook-config",
        ),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(names(&objects), want);

    let injector = find(
        &objects,
        "MutatingWebhookConfiguration",
        "linkerd-proxy-injector-webhook-config",
    );
    let webhook = &injector["webhooks"][0];
    assert_eq!(webhook["failurePolicy"], "Ignore");
    assert_eq!(
        webhook["clientConfig"]["service"]["name"],
        "linkerd-proxy-injector"
    );
    assert_eq!(
        webhook["rules"][0]["resources"],
        json!(["pods", "services"])
    );
    assert_eq!(
        webhook["objectSelector"]["matchExpressions"][0]["key"],
        oxlink_crds::names::labels::CONTROL_PLANE_COMPONENT
    );

    let service = find(&objects, "Service", "linkerd-proxy-injector");
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    let policy = find(&objects, "Service", "linkerd-policy");
    assert_eq!(policy["spec"]["clusterIP"], "None");

    // The values in linkerd-config are the chart's, minus the issuer key.
    let config = find(&objects, "ConfigMap", "linkerd-config");
    let stored: Value =
        values::from_yaml("values", config["data"]["values"].as_str().unwrap()).unwrap();
    assert_eq!(stored["identity"]["issuer"]["tls"].get("keyPEM"), None);
    assert_eq!(
        stored["identity"]["issuer"]["tls"]["crtPEM"],
        fixtures::ISSUER_CRT
    );
    assert_eq!(stored["identityTrustAnchorsPEM"], fixtures::ANCHOR_CRT);
    let injector_values =
        oxlink_inject::Values::from_yaml(config["data"]["values"].as_str().unwrap()).unwrap();
    assert_eq!(
        injector_values.identity_trust_anchors_pem,
        fixtures::ANCHOR_CRT
    );

    let roots = find(&objects, "ConfigMap", "linkerd-identity-trust-roots");
    assert_eq!(roots["data"]["ca-bundle.crt"], fixtures::ANCHOR_CRT);

    let injector = find(&objects, "Deployment", "linkerd-proxy-injector");
    let mounts = &injector["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    let paths: Vec<&str> = mounts
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    use oxlink_crds::names::control_plane::{CONFIG_VALUES_PATH, TRUST_ROOTS_PATH};
    assert!(
        CONFIG_VALUES_PATH.starts_with(paths[0]) && TRUST_ROOTS_PATH.starts_with(paths[1]),
        "{paths:?}"
    );
}

#[test]
fn ha_values_add_replicas_budgets_affinity_and_fail() {
    let objects = objects(&values_with(true, json!({})));
    for name in [
        "linkerd-identity",
        "linkerd-destination",
        "linkerd-proxy-injector",
    ] {
        let deployment = find(&objects, "Deployment", name);
        assert_eq!(deployment["spec"]["replicas"], 3);
        assert!(deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_object());
        find(&objects, "PodDisruptionBudget", name);
    }
    for (kind, name) in [
        (
            "MutatingWebhookConfiguration",
            "linkerd-proxy-injector-webhook-config",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-sp-validator-webhook-config",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-policy-validator-webhook-config",
        ),
    ] {
        assert_eq!(
            find(&objects, kind, name)["webhooks"][0]["failurePolicy"],
            "Fail"
        );
    }
}

#[test]
fn url_mode_points_every_webhook_at_the_url() {
    let objects = objects(&values_with(
        false,
        json!({"webhook": {"url": "https://127.0.0.1:18443"}}),
    ));
    for (kind, name, path) in [
        (
            "MutatingWebhookConfiguration",
            "linkerd-proxy-injector-webhook-config",
            "/inject",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-sp-validator-webhook-config",
            "/validate/serviceprofile",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-policy-validator-webhook-config",
            "/validate/policy",
        ),
    ] {
        let config = &find(&objects, kind, name)["webhooks"][0]["clientConfig"];
        assert_eq!(
            config,
            &json!({"url": format!("https://127.0.0.1:18443{path}")})
        );
    }
}

#[test]
fn external_ca_and_external_issuer_skip_their_objects() {
    let objects = objects(&values_with(
        false,
        json!({"identity": {"externalCA": true, "issuer": {"scheme": "kubernetes.io/tls"}}}),
    ));
    let names = names(&objects);
    assert!(!names.contains(&("Secret".into(), "linkerd-identity-issuer".into())));
    assert!(!names.contains(&("ConfigMap".into(), "linkerd-identity-trust-roots".into())));
}

#[test]
fn missing_identity_is_refused_by_required() {
    let error =
        anyhow::Error::from(render(&default_values(false).unwrap(), "linkerd").unwrap_err());
    assert_eq!(
        format!("{error:#}"),
        "rendering the chart: oxlink-control-plane/templates/identity.yaml:13: \
         identityTrustAnchorsPEM must be set (the mesh's trust anchors, PEM)"
    );
}

#[test]
fn every_controller_has_a_memory_limit_by_default() {
    for ha in [false, true] {
        let objects = objects(&values_with(ha, json!({})));
        for name in [
            "linkerd-identity",
            "linkerd-destination",
            "linkerd-proxy-injector",
        ] {
            let deployment = find(&objects, "Deployment", name);
            let resources = &deployment["spec"]["template"]["spec"]["containers"][0]["resources"];
            for key in ["requests", "limits"] {
                assert!(
                    resources[key]["memory"].is_string(),
                    "{name} (ha: {ha}): {resources}"
                );
            }
        }
    }
}

/// The ports of each rule of a NetworkPolicy, and its peers.
fn rules(policy: &Value) -> Vec<(Vec<i64>, Value)> {
    policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let ports = rule["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    assert_eq!(p["protocol"], "TCP");
                    p["port"].as_i64().unwrap()
                })
                .collect();
            (ports, rule["from"].clone())
        })
        .collect()
}

#[test]
fn network_policies_admit_meshed_pods_and_the_api_server_only() {
    let off = objects(&values_with(false, json!({})));
    assert!(!off.iter().any(|o| o["kind"] == "NetworkPolicy"));

    let on = objects(&values_with(
        false,
        json!({"networkPolicy": {"enabled": true}}),
    ));
    let meshed = json!([{
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"linkerd.io/control-plane-ns": "linkerd"}},
    }]);
    for (name, component, served, admin) in [
        ("linkerd-identity", "identity", vec![8080], 9990),
        ("linkerd-destination", "destination", vec![8086, 8090], 9996),
        ("linkerd-proxy-injector", "proxy-injector", vec![8443], 9995),
    ] {
        let policy = find(&on, "NetworkPolicy", name);
        assert_eq!(policy["metadata"]["namespace"], "linkerd");
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"]["linkerd.io/control-plane-component"],
            component
        );
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
        // The selector picks the Deployment's pods, and every container port is covered.
        let deployment = find(&on, "Deployment", name);
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["linkerd.io/control-plane-component"], component);
        let mut ports: Vec<i64> = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["containerPort"].as_i64().unwrap())
            .collect();
        ports.sort();
        let rules = rules(policy);
        let mut covered: Vec<i64> = rules.iter().flat_map(|(p, _)| p.clone()).collect();
        covered.sort();
        assert_eq!(covered, ports, "{name}");
        // The admin port (probes, metrics) admits any source.
        assert_eq!(rules[1], (vec![admin], Value::Null), "{name}");
        let expected_from = if component == "proxy-injector" {
            // The chart cannot know the API server's address unless told.
            Value::Null
        } else {
            meshed.clone()
        };
        assert_eq!(rules[0], (served, expected_from), "{name}");
    }
    // The controllers are meshed pods to each other: destination gets its certificate from
    // identity.
    let destination = find(&on, "Deployment", "linkerd-destination");
    assert_eq!(
        destination["spec"]["template"]["metadata"]["labels"]["linkerd.io/control-plane-ns"],
        "linkerd"
    );

    let told = objects(&values_with(
        false,
        json!({"networkPolicy": {"enabled": true, "apiServerCIDRs": ["172.18.0.2/32", "fd00::2/128"]}}),
    ));
    let injector = rules(find(&told, "NetworkPolicy", "linkerd-proxy-injector"));
    assert_eq!(
        injector[0],
        (
            vec![8443],
            json!([{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"ipBlock": {"cidr": "fd00::2/128"}}])
        )
    );
}

#[test]
fn destination_requires_client_identity_by_choice() {
    let args = |values: Value| {
        let objects = objects(&values_with(false, values));
        find(&objects, "Deployment", "linkerd-destination")["spec"]["template"]["spec"]
            ["containers"][0]["args"]
            .clone()
    };
    let has = |args: &Value, arg: &str| args.as_array().unwrap().iter().any(|a| a == arg);
    assert!(has(&args(json!({})), "--require-client-identity=false"));
    assert!(has(
        &args(json!({"destinationRequireClientIdentity": true})),
        "--require-client-identity=true"
    ));
}
