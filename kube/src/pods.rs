//! Pure readings of Kubernetes objects that several crates make: which containers a pod runs,
//! whether it is still live, and whether a label selector selects a set of labels.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether the pod runs a container named `name`, as a regular container or an init container
/// (a native sidecar, as the proxy is injected).
pub fn runs_container(p: &Pod, name: &str) -> bool {
    p.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| c.name == name)
    })
}

/// Whether the pod still runs or will: not Succeeded, not Failed, not being deleted.
pub fn is_live(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && p.metadata.deletion_timestamp.is_none()
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects `labels`.
pub fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    if selector.is_null() {
        return false;
    }
    let labels_ok = selector["matchLabels"].as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    });
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let value = labels.get(key).map(String::as_str);
            match e["operator"].as_str().unwrap_or_default() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_selectors_match_pod_labels() {
        let labels: std::collections::BTreeMap<String, String> =
            [("app", "web"), ("tier", "front")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let sel = |v: serde_json::Value| selects(&v, &labels);
        assert!(sel(serde_json::json!({"matchLabels": {"app": "web"}})));
        assert!(!sel(serde_json::json!({"matchLabels": {"app": "db"}})));
        assert!(sel(
            serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]})
        ));
        assert!(!sel(
            serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]})
        ));
        assert!(sel(
            serde_json::json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]})
        ));
        assert!(!sel(serde_json::Value::Null));
    }
}
