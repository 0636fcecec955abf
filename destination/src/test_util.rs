//! Builders of the objects the index keeps, for unit tests.

use crate::index::{Config, Index, SharedIndex};
use k8s_openapi::api::{
    core::v1::{Pod, Service},
    discovery::v1::EndpointSlice,
};
use oxlink_crds::ServiceProfile;
use serde_json::{Value, json};

pub(crate) const NS: &str = "ns";

pub(crate) fn mk_index() -> SharedIndex {
    Index::shared(Config::default())
}

/// A Service with one cluster IP and `(name, port, targetPort)` ports.
pub(crate) fn mk_service(name: &str, cluster_ip: &str, ports: &[(&str, u16, Value)]) -> Service {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, t)| json!({"name": n, "port": p, "targetPort": t, "protocol": "TCP"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": NS, "name": name},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports},
    }))
    .unwrap()
}

/// An EndpointSlice of Service `svc` with one port and ready endpoints `(ip, pod)`; an empty
/// pod name makes an endpoint without a pod.
pub(crate) fn mk_slice(
    svc: &str,
    name: &str,
    port: (&str, u16),
    endpoints: &[(&str, &str)],
) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, pod)| {
            let mut endpoint = json!({
                "addresses": [ip],
                "conditions": {"ready": true},
                "zone": "zone-a",
            });
            if !pod.is_empty() {
                endpoint["targetRef"] = json!({"kind": "Pod", "namespace": NS, "name": pod});
            }
            endpoint
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {
            "namespace": NS,
            "name": name,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": [{"name": port.0, "port": port.1, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

/// A running pod of Deployment `web` with `ip`; meshed by our control plane when `meshed`.
pub(crate) fn mk_pod(name: &str, ip: &str, meshed: bool) -> Pod {
    mk_pod_with(name, ip, meshed, json!({}))
}

/// Like [`mk_pod`], with extra annotations.
pub(crate) fn mk_pod_with(name: &str, ip: &str, meshed: bool, annotations: Value) -> Pod {
    let mut labels = json!({"app": "web", "pod-template-hash": "5d9f"});
    if meshed {
        labels["linkerd.io/control-plane-ns"] = json!("linkerd");
    }
    serde_json::from_value(json!({
        "metadata": {
            "namespace": NS,
            "name": name,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9f",
                "uid": "1", "controller": true,
            }],
        },
        "spec": {
            "serviceAccountName": "web-sa",
            "containers": [
                {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]},
                {"name": "linkerd-proxy", "env": [
                    {"name": "LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "value": "0.0.0.0:4143"},
                ]},
            ],
        },
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
    .unwrap()
}

/// A ServiceProfile in namespace `ns` from its spec.
pub(crate) fn mk_profile(ns: &str, name: &str, spec: Value) -> ServiceProfile {
    serde_json::from_value(json!({
        "apiVersion": "linkerd.io/v1alpha2",
        "kind": "ServiceProfile",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// A Node in `zone`.
pub(crate) fn mk_node(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
    }))
    .unwrap()
}

/// A Server in [`NS`] selecting `selector` on `port` with `protocol`.
pub(crate) fn mk_server(
    name: &str,
    selector: Value,
    port: Value,
    protocol: &str,
) -> oxlink_crds::policy::Server {
    serde_json::from_value(json!({
        "apiVersion": "policy.linkerd.io/v1beta3",
        "kind": "Server",
        "metadata": {"namespace": NS, "name": name},
        "spec": {"podSelector": selector, "port": port, "proxyProtocol": protocol},
    }))
    .unwrap()
}

/// An ExternalWorkload at `ip` with a SPIFFE identity, a `http` port 8080 and `annotations`.
pub(crate) fn mk_external_workload(
    name: &str,
    ip: &str,
    annotations: Value,
) -> oxlink_crds::ExternalWorkload {
    serde_json::from_value(json!({
        "apiVersion": "workload.linkerd.io/v1beta1",
        "kind": "ExternalWorkload",
        "metadata": {"namespace": NS, "name": name, "annotations": annotations},
        "spec": {
            "meshTLS": {
                "identity": format!("spiffe://root.linkerd.cluster.local/{name}"),
                "serverName": format!("{name}.{NS}.external.cluster.local"),
            },
            "ports": [{"name": "http", "port": 8080}],
            "workloadIPs": [{"ip": ip}],
        },
    }))
    .unwrap()
}

/// A Server in [`NS`] selecting ExternalWorkloads by `selector` on `port` with `protocol`.
pub(crate) fn mk_external_server(
    name: &str,
    selector: Value,
    port: Value,
    protocol: &str,
) -> oxlink_crds::policy::Server {
    let mut server = mk_server(name, selector, port, protocol);
    server.spec.external_workload_selector = server.spec.pod_selector.take();
    server
}

/// Like [`mk_external_workload`], labelled `app: web` (as [`mk_pod`]'s pods are).
pub(crate) fn mk_web_external_workload(
    name: &str,
    ip: &str,
    annotations: Value,
) -> oxlink_crds::ExternalWorkload {
    let mut workload = mk_external_workload(name, ip, annotations);
    workload.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    workload
}
