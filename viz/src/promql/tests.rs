use super::*;

fn res(word: &str) -> Resource {
    Resource::parse(word).unwrap()
}

fn window() -> Window {
    Window::default()
}

#[test]
fn stat_of_deployments_in_a_namespace_reads_inbound() {
    let target = res("deploy");
    let w = window();
    let q = stat(&StatQuery {
        target: &target,
        namespace: Some("todo"),
        to: None,
        from: None,
        window: &w,
    })
    .unwrap();
    assert_eq!(
        q.requests,
        r#"sum(increase(response_total{direction="inbound", namespace="todo"}[1m])) by (namespace, deployment, classification, tls)"#
    );
    assert_eq!(
        q.latency[1],
        r#"histogram_quantile(0.95, sum(irate(response_latency_ms_bucket{direction="inbound", namespace="todo"}[1m])) by (le, namespace, deployment))"#
    );
    assert_eq!(
        q.tcp_connections,
        r#"sum(tcp_open_connections{direction="inbound", namespace="todo", peer="src"}) by (namespace, deployment)"#
    );
    assert_eq!(
        q.tcp_read_bytes,
        r#"sum(increase(tcp_read_bytes_total{direction="inbound", namespace="todo", peer="src"}[1m])) by (namespace, deployment)"#
    );
    assert_eq!(q.row.name, "deployment");
}

#[test]
fn a_named_target_all_namespaces_and_the_window_shape_the_selector() {
    let target = res("po/web-1");
    let w: Window = "10s".parse().unwrap();
    let q = stat(&StatQuery {
        target: &target,
        namespace: None,
        to: None,
        from: None,
        window: &w,
    })
    .unwrap();
    assert_eq!(
        q.requests,
        r#"sum(increase(response_total{direction="inbound", pod="web-1"}[10s])) by (namespace, pod, classification, tls)"#
    );
    let ns = res("ns");
    let q = stat(&StatQuery {
        target: &ns,
        namespace: Some("todo"),
        to: None,
        from: None,
        window: &w,
    })
    .unwrap();
    assert_eq!(
        q.requests,
        r#"sum(increase(response_total{direction="inbound"}[10s])) by (namespace, classification, tls)"#
    );
    let job = res("job/batch");
    let q = stat(&StatQuery {
        target: &job,
        namespace: Some("a"),
        to: None,
        from: None,
        window: &w,
    })
    .unwrap();
    assert!(q.requests.contains(r#"k8s_job="batch""#), "{}", q.requests);
}

#[test]
fn to_reads_the_targets_outbound_requests_to_the_destination() {
    let target = res("deploy");
    let to = res("svc/todobackend");
    let w = window();
    let q = stat(&StatQuery {
        target: &target,
        namespace: Some("todo"),
        to: Some(&to),
        from: None,
        window: &w,
    })
    .unwrap();
    assert_eq!(
        q.requests,
        r#"sum(increase(response_total{direction="outbound", dst_namespace="todo", dst_service="todobackend", namespace="todo"}[1m])) by (namespace, deployment, classification, tls)"#
    );
    assert_eq!(
        q.tcp_connections,
        r#"sum(tcp_open_connections{direction="outbound", dst_namespace="todo", dst_service="todobackend", namespace="todo", peer="dst"}) by (namespace, deployment)"#
    );
    // A --to resource in another namespace keeps its own.
    let mut other = res("deploy/db");
    other.namespace = Some("data".into());
    let q = stat(&StatQuery {
        target: &target,
        namespace: Some("todo"),
        to: Some(&other),
        from: None,
        window: &w,
    })
    .unwrap();
    assert!(
        q.requests
            .contains(r#"dst_deployment="db", dst_namespace="data""#)
    );
}

#[test]
fn from_reads_the_sources_outbound_requests_grouped_by_destination() {
    let target = res("deploy/todobackend");
    let from = res("deploy/todoui");
    let w = window();
    let q = stat(&StatQuery {
        target: &target,
        namespace: Some("todo"),
        to: None,
        from: Some(&from),
        window: &w,
    })
    .unwrap();
    assert_eq!(
        q.requests,
        r#"sum(increase(response_total{deployment="todoui", direction="outbound", dst_deployment="todobackend", dst_namespace="todo", namespace="todo"}[1m])) by (dst_namespace, dst_deployment, classification, tls)"#
    );
    assert_eq!(q.row.namespace, "dst_namespace");
    assert_eq!(q.row.name, "dst_deployment");
}

#[test]
fn services_are_only_destinations() {
    let target = res("svc/web");
    let w = window();
    let err = stat(&StatQuery {
        target: &target,
        namespace: Some("x"),
        to: None,
        from: None,
        window: &w,
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "services is only supported as a --to resource"
    );
}

#[test]
fn selectors_escape_values() {
    let s = Selector::default().with("a", "x\"y\\z");
    assert_eq!(s.to_string(), r#"{a="x\"y\\z"}"#);
}

#[test]
fn routes_read_inbound_route_metrics_or_outbound_with_to() {
    let target = res("deploy/todoui");
    let w = window();
    let q = routes(&target, "todo", None, &w).unwrap();
    assert_eq!(
        q.requests,
        r#"sum(increase(route_response_total{deployment="todoui", direction="inbound", namespace="todo"}[1m])) by (rt_route, dst, classification)"#
    );
    assert_eq!(
        q.latency[2],
        r#"histogram_quantile(0.99, sum(irate(route_response_latency_ms_bucket{deployment="todoui", direction="inbound", namespace="todo"}[1m])) by (le, rt_route, dst))"#
    );
    let services = ["todobackend".to_string(), "api".to_string()];
    let to = RoutesTo {
        services: &services,
        namespace: "todo",
    };
    let q = routes(&target, "todo", Some(to), &w).unwrap();
    assert_eq!(
        q.requests,
        r#"sum(increase(route_response_total{deployment="todoui", direction="outbound", dst=~"(todobackend|api)\\.todo\\.svc\\..+", namespace="todo"}[1m])) by (rt_route, dst, classification)"#
    );
}

#[test]
fn edges_count_requests_by_both_ends_and_identity() {
    let q = edges(Kind::Deployment, Some("todo")).unwrap();
    assert_eq!(
        q.outbound,
        r#"count(response_total{direction="outbound", namespace="todo"}) by (deployment, dst_deployment, namespace, dst_namespace, server_id, no_tls_reason)"#
    );
    assert_eq!(
        q.inbound,
        r#"count(response_total{direction="inbound", namespace="todo"}) by (deployment, namespace, client_id, no_tls_reason)"#
    );
    let all = edges(Kind::Pod, None).unwrap();
    assert!(
        all.outbound
            .starts_with(r#"count(response_total{direction="outbound"}) by (pod, dst_pod"#)
    );
    assert!(edges(Kind::Service, None).is_err());
}
