//! One case per `config.linkerd.io/*` annotation the injector honours: the value set on the pod
//! and what it becomes in the rendered proxy (env var, args, image, resources, ports), as
//! Linkerd's injector renders it (facts from Linkerd's `pkg/inject` and proxy chart partials;
//! see the project's linkerd-facts notes, §4.4 and the proxy env table).

use k8s_openapi::api::core::v1::PodTemplateSpec;
use oxlink_inject::{InjectContext, Origin, Values};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The pod template of a one-container pod (port 8080 `http`) with `annotations`, injected
/// by the webhook with the default values.
fn inject(annotations: &[(&str, &str)]) -> Value {
    let (template, warnings) = inject_warned(annotations);
    assert!(warnings.is_empty(), "{annotations:?}: {warnings:?}");
    template
}

/// [`inject`], returning the warnings too.
fn inject_warned(annotations: &[(&str, &str)]) -> (Value, Vec<String>) {
    let mut annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    annotations.insert("linkerd.io/inject", "enabled");
    let template: PodTemplateSpec = serde_json::from_value(json!({
        "metadata": {"labels": {"app": "web"}, "annotations": annotations},
        "spec": {"containers": [{
            "name": "web",
            "image": "web:1",
            "ports": [{"name": "http", "containerPort": 8080}],
        }]},
    }))
    .unwrap();
    let values = Values::default();
    let no_annotations = BTreeMap::new();
    let ctx = InjectContext {
        values: &values,
        trust_anchors_pem: oxlink_tls::fixtures::ANCHOR_CRT,
        control_plane_namespace: "linkerd",
        namespace: "todo",
        namespace_annotations: &no_annotations,
        owner: None,
        created_by: "oxlink/proxy-injector test",
        origin: Origin::Webhook,
    };
    let injection = oxlink_inject::inject_template(&template, &ctx);
    assert!(injection.outcome.is_ok(), "{:?}", injection.outcome);
    (injection.template, injection.warnings)
}

/// The container named `name`, among the containers or init containers.
fn container<'a>(template: &'a Value, name: &str) -> &'a Value {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|list| template["spec"][list].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {template:#}"))
}

fn proxy(template: &Value) -> &Value {
    container(template, "linkerd-proxy")
}

/// The proxy's env var `name`, if set (by value).
fn env(template: &Value, name: &str) -> Option<String> {
    proxy(template)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

/// Every path (`/spec/…`, list items keyed by their `name`) and value in `v`, flattened.
fn flatten(v: &Value) -> BTreeMap<String, String> {
    fn walk(path: String, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    walk(format!("{path}/{k}"), x, out)
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let key = x
                        .get("name")
                        .and_then(Value::as_str)
                        .map_or_else(|| i.to_string(), str::to_string);
                    walk(format!("{path}/{key}"), x, out)
                }
            }
            _ => {
                out.insert(path, v.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(String::new(), v, &mut out);
    out
}

/// What `annotations` change in the injected pod spec, against no annotations: `+ path = value`
/// for what is new or different, `- path = value` for what is gone (the pod's own annotations
/// left out).
fn changes(annotations: &[(&str, &str)]) -> Vec<String> {
    let (base, with) = (flatten(&inject(&[])), flatten(&inject(annotations)));
    let mut out = Vec::new();
    for (k, v) in &with {
        if base.get(k) != Some(v) && !k.starts_with("/metadata/annotations") {
            out.push(format!("+ {k} = {v}"));
        }
    }
    for (k, v) in &base {
        if !with.contains_key(k) {
            out.push(format!("- {k} = {v}"));
        }
    }
    out
}

/// Annotations set on the pod.
type Annotations<'a> = &'a [(&'a str, &'a str)];

/// Each annotation changes exactly what Linkerd's injector changes for it, and nothing else.
/// The expectations were written from Linkerd's facts (the env var, init arg or field each key
/// sets, with Linkerd's units: connect timeouts in ms, discovery idle timeouts in s, the grace
/// period in ms, `365d` for a disabled detect timeout); the rendering they are compared with is
/// ours.
#[test]
fn each_config_annotation_sets_what_linkerd_sets() {
    #[rustfmt::skip]
    let cases: &[(Annotations<'_>, &[&str])] = &[
        (
            &[("config.linkerd.io/access-log", "json")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_ACCESS_LOG/name = "LINKERD2_PROXY_ACCESS_LOG""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_ACCESS_LOG/value = "json""#,
            ],
        ),
        (
            &[("config.linkerd.io/admin-port", "9995")],
            &[
            r#"+ /spec/initContainers/linkerd-init/args/12 = "4190,9995,4567,4568""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_ADMIN_LISTEN_ADDR/value = "0.0.0.0:9995""#,
            r#"+ /spec/initContainers/linkerd-proxy/livenessProbe/httpGet/port = 9995"#,
            r#"+ /spec/initContainers/linkerd-proxy/ports/linkerd-admin/containerPort = 9995"#,
            r#"+ /spec/initContainers/linkerd-proxy/readinessProbe/httpGet/port = 9995"#,
            r#"+ /spec/initContainers/linkerd-proxy/startupProbe/httpGet/port = 9995"#,
            ],
        ),
        (
            &[("config.linkerd.io/control-port", "4195")],
            &[
            r#"+ /spec/initContainers/linkerd-init/args/12 = "4195,4191,4567,4568""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_CONTROL_LISTEN_ADDR/value = "0.0.0.0:4195""#,
            ],
        ),
        (
            &[("config.linkerd.io/inbound-port", "4145")],
            &[
            r#"+ /spec/initContainers/linkerd-init/args/6 = "4145""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_LISTEN_ADDR/value = "0.0.0.0:4145""#,
            r#"+ /spec/initContainers/linkerd-proxy/ports/linkerd-proxy/containerPort = 4145"#,
            ],
        ),
        (
            &[("config.linkerd.io/close-wait-timeout", "2m")],
            &[
            r#"+ /spec/initContainers/linkerd-init/args/15 = "--timeout-close-wait-secs""#,
            r#"+ /spec/initContainers/linkerd-init/args/16 = "120""#,
            r#"+ /spec/initContainers/linkerd-init/securityContext/allowPrivilegeEscalation = true"#,
            r#"+ /spec/initContainers/linkerd-init/securityContext/privileged = true"#,
            r#"+ /spec/initContainers/linkerd-init/securityContext/runAsNonRoot = false"#,
            r#"+ /spec/initContainers/linkerd-init/securityContext/runAsUser = 0"#,
            ],
        ),
        (
            &[("config.linkerd.io/enable-debug-sidecar", "true"), ("config.linkerd.io/debug-image", "example.com/debug"), ("config.linkerd.io/debug-image-version", "v9"), ("config.linkerd.io/debug-image-pull-policy", "Always")],
            &[
            r#"+ /spec/containers/linkerd-debug/image = "example.com/debug:v9""#,
            r#"+ /spec/containers/linkerd-debug/imagePullPolicy = "Always""#,
            r#"+ /spec/containers/linkerd-debug/name = "linkerd-debug""#,
            r#"+ /spec/containers/linkerd-debug/terminationMessagePolicy = "FallbackToLogsOnError""#,
            ],
        ),
        (
            &[("config.linkerd.io/default-inbound-policy", "deny")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_DEFAULT_POLICY/value = "deny""#,
            ],
        ),
        (
            &[("config.linkerd.io/enable-external-profiles", "true")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES/value = ".""#,
            ],
        ),
        (
            &[("config.linkerd.io/init-image", "example.com/init"), ("config.linkerd.io/init-image-version", "v9")],
            &[
            r#"+ /spec/initContainers/linkerd-init/image = "example.com/init:v9""#,
            r#"- /spec/initContainers/linkerd-init/command/0 = "/usr/lib/linkerd/linkerd2-proxy-init""#,
            ],
        ),
        (
            &[("config.linkerd.io/pod-inbound-ports", "1234,5678")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_PORTS/value = "1234,5678""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-additional-env", r#"[{"name":"FOO","value":"bar"}]"#)],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/FOO/name = "FOO""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/FOO/value = "bar""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-admin-shutdown", "enabled")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED/value = "true""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-cpu-request", "150m")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/resources/requests/cpu = "150m""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-memory-limit", "300Mi")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/resources/limits/memory = "300Mi""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-ephemeral-storage-limit", "2Gi"), ("config.linkerd.io/proxy-ephemeral-storage-request", "1Gi")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/resources/limits/ephemeral-storage = "2Gi""#,
            r#"+ /spec/initContainers/linkerd-proxy/resources/requests/ephemeral-storage = "1Gi""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout", "true")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT/name = "LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT/value = "365d""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout", "true")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT/name = "LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT/value = "365d""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-gid", "2103")],
            &[
            r#"+ /spec/initContainers/linkerd-init/args/11 = "--proxy-gid""#,
            r#"+ /spec/initContainers/linkerd-init/args/12 = "2103""#,
            r#"+ /spec/initContainers/linkerd-init/args/13 = "--inbound-ports-to-ignore""#,
            r#"+ /spec/initContainers/linkerd-init/args/14 = "4190,4191,4567,4568""#,
            r#"+ /spec/initContainers/linkerd-init/args/15 = "--outbound-ports-to-ignore""#,
            r#"+ /spec/initContainers/linkerd-init/args/16 = "4567,4568""#,
            r#"+ /spec/initContainers/linkerd-proxy/securityContext/runAsGroup = 2103"#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-image", "example.com/proxy"), ("config.linkerd.io/proxy-version", "v9")],
            &[
            r#"+ /spec/initContainers/linkerd-init/image = "example.com/proxy:v9""#,
            r#"+ /spec/initContainers/linkerd-proxy/image = "example.com/proxy:v9""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-inbound-connect-timeout", "2s")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT/value = "2000ms""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-outbound-connect-timeout", "3s")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT/value = "3000ms""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout", "2m")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT/value = "120s""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout", "3m")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT/value = "180s""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-log-format", "json")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_LOG_FORMAT/value = "json""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-log-http-headers", "insecure")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_LOG/value = "warn,linkerd=info,hickory=error""#,
            ],
        ),
        (
            &[("config.linkerd.io/proxy-require-identity-inbound-ports", "8080")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY/name = "LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY/value = "8080""#,
            ],
        ),
        (
            &[("config.linkerd.io/shutdown-grace-period", "60s")],
            &[
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD/name = "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD""#,
            r#"+ /spec/initContainers/linkerd-proxy/env/LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD/value = "60000ms""#,
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (annotations, expected) in cases {
        let actual = changes(annotations);
        if actual != *expected {
            failures.push(format!(
                "{annotations:?}:\n  expected {expected:#?}\n  actual {actual:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A sanity check of the comparison itself: an annotation nobody reads changes nothing, and
/// one that does is seen.
#[test]
fn the_comparison_sees_a_change_and_only_a_change() {
    assert_eq!(
        changes(&[("config.linkerd.io/not-a-key", "1")]),
        Vec::<String>::new()
    );
    assert_ne!(
        changes(&[("config.linkerd.io/proxy-log-format", "json")]),
        Vec::<String>::new()
    );
    assert_eq!(
        env(&inject(&[]), "LINKERD2_PROXY_LOG_FORMAT").as_deref(),
        Some("plain")
    );
}

/// An annotation whose value cannot be used is refused: ignored, with one warning that names
/// it, its value and what was expected, and the pod injected as without it. (Free-form values,
/// such as images, versions, the log level and format and skip-subnets, are passed on as they
/// are, as Linkerd does.)
#[test]
fn each_typed_annotation_refuses_a_bad_value_with_a_warning() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("config.linkerd.io/access-log", r#"expected apache or json"#),
        ("config.linkerd.io/admin-port", r#"not a port number"#),
        ("config.linkerd.io/close-wait-timeout", r#""not a value": expected a number"#),
        ("config.linkerd.io/control-port", r#"not a port number"#),
        ("config.linkerd.io/default-inbound-policy", r#"expected one of all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit"#),
        ("config.linkerd.io/enable-debug-sidecar", r#"expected true or false"#),
        ("config.linkerd.io/enable-external-profiles", r#"expected true or false"#),
        ("config.linkerd.io/enable-gateway", r#"expected true or false"#),
        ("config.linkerd.io/image-pull-policy", r#"expected Always, IfNotPresent or Never"#),
        ("config.linkerd.io/inbound-port", r#"not a port number"#),
        ("config.linkerd.io/opaque-ports", r#"invalid port "not a value""#),
        ("config.linkerd.io/outbound-port", r#"not a port number"#),
        ("config.linkerd.io/pod-inbound-ports", r#"invalid port "not a value""#),
        ("config.linkerd.io/proxy-additional-env", r#"expected ident at line 1 column 2"#),
        ("config.linkerd.io/proxy-admin-shutdown", r#"expected true or false"#),
        ("config.linkerd.io/proxy-await", r#"expected true or false"#),
        ("config.linkerd.io/proxy-cpu-limit", r#"invalid quantity "not a value""#),
        ("config.linkerd.io/proxy-cpu-request", r#"invalid quantity "not a value""#),
        ("config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout", r#"expected true or false"#),
        ("config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout", r#"expected true or false"#),
        ("config.linkerd.io/proxy-enable-native-sidecar", r#"expected true or false"#),
        ("config.linkerd.io/proxy-ephemeral-storage-limit", r#"invalid quantity "not a value""#),
        ("config.linkerd.io/proxy-ephemeral-storage-request", r#"invalid quantity "not a value""#),
        ("config.linkerd.io/proxy-gid", r#"not a group id"#),
        ("config.linkerd.io/proxy-inbound-connect-timeout", r#""not a value": expected a number"#),
        ("config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout", r#""not a value": expected a number"#),
        ("config.linkerd.io/proxy-memory-limit", r#"invalid quantity "not a value""#),
        ("config.linkerd.io/proxy-memory-request", r#"invalid quantity "not a value""#),
        ("config.linkerd.io/proxy-outbound-connect-timeout", r#""not a value": expected a number"#),
        ("config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout", r#""not a value": expected a number"#),
        ("config.linkerd.io/proxy-require-identity-inbound-ports", r#"invalid port "not a value""#),
        ("config.linkerd.io/proxy-uid", r#"not a user id"#),
        ("config.linkerd.io/shutdown-grace-period", r#""not a value": expected a number"#),
        ("config.linkerd.io/skip-inbound-ports", r#"invalid port "not a value""#),
        ("config.linkerd.io/skip-outbound-ports", r#"invalid port "not a value""#),
    ];
    let base = flatten(&inject(&[]));
    for (key, reason) in cases {
        let (template, warnings) = inject_warned(&[(key, "not a value")]);
        assert_eq!(
            warnings,
            [format!(
                "ignoring annotation {key}=\"not a value\": {reason}"
            )],
            "{key}"
        );
        let mut with = flatten(&template);
        with.retain(|k, _| !k.starts_with("/metadata/annotations"));
        let mut without = base.clone();
        without.retain(|k, _| !k.starts_with("/metadata/annotations"));
        assert_eq!(with, without, "{key}: a refused value changed the pod");
    }
}
