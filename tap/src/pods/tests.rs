use super::*;
use serde_json::json;

fn pod(name: &str, labels: Value, tap: Option<bool>, phase: &str) -> Pod {
    let mut containers = vec![json!({"name": "app"})];
    if let Some(tap) = tap {
        let env = if tap {
            json!([{"name": env::TAP_SVC_NAME, "value": "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local"}])
        } else {
            json!([])
        };
        containers.push(json!({"name": PROXY_CONTAINER, "env": env}));
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": "todo",
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                "uid": "1", "controller": true
            }],
        },
        "spec": {"serviceAccountName": "web", "containers": containers},
        "status": {"phase": phase, "podIP": "10.244.0.9"},
    }))
    .unwrap()
}

use serde_json::Value;

fn web(name: &str, tap: Option<bool>) -> Pod {
    pod(
        name,
        json!({"app": "web", "pod-template-hash": "5d4f", "linkerd.io/control-plane-ns": "linkerd"}),
        tap,
        "Running",
    )
}

#[test]
fn a_deployments_tap_enabled_pods_are_tapped_with_their_identity() {
    let pods = [
        web("web-1", Some(true)),
        pod("other", json!({}), Some(true), "Running"),
    ];
    let r = Resource::parse("deploy/web").unwrap();
    let t = targets(&r, "todo", &pods, None, "cluster.local").unwrap();
    assert_eq!(
        t,
        [Target {
            name: "web-1".into(),
            namespace: "todo".into(),
            ip: "10.244.0.9".parse().unwrap(),
            identity: "web.todo.serviceaccount.identity.linkerd.cluster.local".into(),
        }]
    );
    let labels = labels_of(&pods[0]);
    assert_eq!(labels["deployment"], "web");
    assert_eq!(labels["serviceaccount"], "web");
}

#[test]
fn why_nothing_can_be_tapped_is_said() {
    let r = Resource::parse("deploy/web").unwrap();
    let err = |pods: &[Pod]| {
        targets(&r, "todo", pods, None, "cluster.local")
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&[]),
        "no running pods found for deployment/web in namespace \"todo\""
    );
    let mut pending = web("web-1", Some(true));
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    assert!(err(&[pending]).starts_with("no running pods"));
    assert!(err(&[web("web-1", None)]).starts_with("no meshed pods found for deployment/web"));
    assert!(
        err(&[web("web-1", Some(false))])
            .starts_with("tap is not enabled on the proxies of deployment/web")
    );
}

#[test]
fn services_select_by_their_selector() {
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}),
    )
    .unwrap();
    let pods = [
        web("web-1", Some(true)),
        pod("x", json!({"app": "x"}), Some(true), "Running"),
    ];
    let r = Resource::parse("svc/web").unwrap();
    assert_eq!(select(&r, &pods, Some(&svc)).len(), 1);
    let no_selector: Service =
        serde_json::from_value(json!({"metadata": {"name": "web"}})).unwrap();
    assert!(select(&r, &pods, Some(&no_selector)).is_empty());
    assert_eq!(
        select(&Resource::parse("ns/todo").unwrap(), &pods, None).len(),
        2
    );
    assert_eq!(
        select(&Resource::parse("po/x").unwrap(), &pods, None).len(),
        1
    );
}

#[test]
fn addresses_are_named_after_their_pods() {
    let dir = Directory::from_pods(&[web("web-1", Some(true))]);
    let mut peer = Peer {
        ip: "10.244.0.9".into(),
        port: 8080,
        metadata: [("pod".to_string(), "from-the-proxy".to_string())].into(),
    };
    dir.hydrate(&mut peer);
    assert_eq!(peer.metadata["pod"], "from-the-proxy");
    assert_eq!(peer.metadata["deployment"], "web");
    assert_eq!(peer.metadata["namespace"], "todo");
    let mut node = Peer {
        ip: "10.244.0.1".into(),
        ..Default::default()
    };
    dir.hydrate(&mut node);
    assert!(node.metadata.is_empty());
}
