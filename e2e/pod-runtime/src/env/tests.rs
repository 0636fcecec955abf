use super::*;

fn pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "todo", "uid": "u-1",
                     "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {"nodeName": "localkube-node-0", "serviceAccountName": "web", "containers": []},
        "status": {"podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}], "hostIP": "172.30.0.10"}
    }))
    .unwrap()
}

fn container(env: serde_json::Value) -> Container {
    serde_json::from_value(serde_json::json!({"name": "c", "env": env})).unwrap()
}

#[test]
fn references_expand_to_earlier_variables_only() {
    let vars = vec![("A".to_string(), "1".to_string())];
    assert_eq!(expand("x$(A)y", &vars), "x1y");
    assert_eq!(expand("$(B)", &vars), "$(B)");
    assert_eq!(expand("$$(A)", &vars), "$(A)");
    assert_eq!(expand("cost $5", &vars), "cost $5");
    assert_eq!(expand("$(A", &vars), "$(A");
}

#[test]
fn the_injected_proxy_env_resolves_like_kubelet() {
    let c = container(serde_json::json!([
        {"name": "_pod_name", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "_pod_ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "_pod_sa", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "LINKERD2_PROXY_INBOUND_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
        {"name": "WORKLOAD", "value": "{\"ns\":\"$(_pod_ns)\", \"pod\":\"$(_pod_name)\"}\n"},
        {"name": "LOCAL", "value": "$(_pod_sa).$(_pod_ns).serviceaccount.identity.linkerd.cluster.local"},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "CORES", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ]));
    let sources = Sources {
        node_cpus: 16,
        ..Default::default()
    };
    let vars = resolve(&pod(), &c, &sources, vec![]).unwrap();
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("WORKLOAD"), "{\"ns\":\"todo\", \"pod\":\"web-1\"}\n");
    assert_eq!(
        get("LOCAL"),
        "web.todo.serviceaccount.identity.linkerd.cluster.local"
    );
    assert_eq!(get("LINKERD2_PROXY_INBOUND_IPS"), "10.244.0.7");
    assert_eq!(get("APP"), "web");
    assert_eq!(get("CORES"), "16");
}

#[test]
fn resource_limits_round_up_with_their_divisor() {
    let c: Container = serde_json::from_value(serde_json::json!({
        "name": "c",
        "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}},
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
        ]
    }))
    .unwrap();
    let vars = resolve(&pod(), &c, &Sources::default(), vec![]).unwrap();
    assert_eq!(vars[0], ("CPU".into(), "2".into()));
    assert_eq!(vars[1], ("MEM".into(), "64".into()));
    assert_eq!(vars[2], ("REQ".into(), "1".into()));
}

#[test]
fn config_maps_and_secrets_resolve_and_missing_keys_are_errors_unless_optional() {
    let mut sources = Sources::default();
    sources
        .config_maps
        .insert("cm".into(), [("k".into(), "v".into())].into());
    let ok = container(serde_json::json!([
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        {"name": "O", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}},
    ]));
    let vars = resolve(&pod(), &ok, &sources, vec![]).unwrap();
    assert_eq!(vars, vec![("K".to_string(), "v".to_string())]);
    let missing = container(serde_json::json!([
        {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}},
    ]));
    let err = resolve(&pod(), &missing, &sources, vec![]).unwrap_err();
    assert_eq!(err, "env M: key \"nope\" of \"cm\" does not exist");
    let field = container(serde_json::json!([
        {"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}},
    ]));
    assert_eq!(
        resolve(&pod(), &field, &sources, vec![]).unwrap_err(),
        "env F: unsupported fieldRef \"spec.bogus\""
    );
}

#[test]
fn later_definitions_replace_earlier_ones_and_base_variables_come_first() {
    let c =
        container(serde_json::json!([{"name": "A", "value": "2"}, {"name": "B", "value": "$(A)"}]));
    let base = vec![
        ("A".to_string(), "1".to_string()),
        ("H".to_string(), "h".to_string()),
    ];
    let vars = resolve(&pod(), &c, &Sources::default(), base).unwrap();
    assert_eq!(
        vars,
        vec![
            ("H".to_string(), "h".to_string()),
            ("A".to_string(), "2".to_string()),
            ("B".to_string(), "2".to_string())
        ]
    );
}
