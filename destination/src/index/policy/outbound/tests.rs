//! Outbound policy: retries, `appProtocol`, Gateway API routes and egress, driven through the
//! index.

use crate::{
    index::{
        ObjKey, SharedIndex,
        policy::{OutboundRx, OutboundTarget, PolicyError},
    },
    test_util::*,
};
use k8s_openapi::api::core::v1::Service;
use linkerd2_proxy_api::{meta::metadata::Kind as MetaKind, outbound as pb};
use oxlink_crds::{
    gateway::{GrpcRoute, HttpRoute as GatewayHttpRoute},
    policy::{EgressNetwork, HttpRoute},
};
use pb::proxy_protocol::Kind;
use serde_json::{Value, json};

const WEB_IP: &str = "10.96.0.10";

/// Service `web` at [`WEB_IP`] with ports 80 (`http`) and 8080 (`grpc`), each port's
/// `appProtocol` from `app_protocols`, and `annotations`.
fn web(annotations: Value, app_protocols: [Option<&str>; 2]) -> Service {
    let ports: Vec<Value> = [(80, "http"), (8080, "grpc")]
        .into_iter()
        .zip(app_protocols)
        .map(|((port, name), app)| {
            let mut p = json!({"name": name, "port": port, "targetPort": port, "protocol": "TCP"});
            if let Some(app) = app {
                p["appProtocol"] = json!(app);
            }
            p
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": NS, "name": "web", "annotations": annotations},
        "spec": {"clusterIP": WEB_IP, "clusterIPs": [WEB_IP], "ports": ports},
    }))
    .unwrap()
}

fn http_route(name: &str, annotations: Value, rules: Value) -> HttpRoute {
    serde_json::from_value(json!({
        "apiVersion": "policy.linkerd.io/v1beta3",
        "kind": "HTTPRoute",
        "metadata": {"namespace": NS, "name": name, "annotations": annotations},
        "spec": {
            "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 80}],
            "rules": rules,
        },
    }))
    .unwrap()
}

fn watch(index: &SharedIndex, addr: &str) -> OutboundRx {
    index
        .write()
        .watch_outbound(&OutboundTarget::Addr(addr.parse().unwrap()))
        .unwrap()
}

fn latest(rx: &mut OutboundRx) -> pb::OutboundPolicy {
    rx.borrow_and_update().message.clone()
}

fn kind(policy: &pb::OutboundPolicy) -> &Kind {
    policy.protocol.as_ref().unwrap().kind.as_ref().unwrap()
}

/// The HTTP/1 routes of a detect or HTTP/1 policy.
fn http1_routes(policy: &pb::OutboundPolicy) -> Vec<pb::HttpRoute> {
    match kind(policy) {
        Kind::Detect(d) => d.http1.clone().unwrap().routes,
        Kind::Http1(h) => h.routes.clone(),
        other => panic!("not HTTP/1: {other:?}"),
    }
}

fn meta_name(m: &Option<linkerd2_proxy_api::meta::Metadata>) -> String {
    match m.as_ref().and_then(|m| m.kind.as_ref()) {
        Some(MetaKind::Default(name)) => format!("default:{name}"),
        Some(MetaKind::Resource(r)) => format!("{}:{}:{}", r.group, r.kind, r.name),
        None => String::new(),
    }
}

/// A rule's retry as (max retries, status ranges).
type RuleRetry = Option<(u32, Vec<(u32, u32)>)>;

/// The retry of each rule of each HTTP/1 route.
fn http_retries(policy: &pb::OutboundPolicy) -> Vec<RuleRetry> {
    http1_routes(policy)
        .iter()
        .flat_map(|r| &r.rules)
        .map(|rule| {
            rule.retry.as_ref().map(|r| {
                let ranges = r.conditions.as_ref().unwrap().status_ranges.iter();
                (r.max_retries, ranges.map(|s| (s.start, s.end)).collect())
            })
        })
        .collect()
}

#[test]
fn service_retries_appear_change_and_disappear() {
    let index = mk_index();
    index.write().apply(&web(json!({}), [None, None]));
    let mut rx = watch(&index, "10.96.0.10:80");
    assert_eq!(http_retries(&latest(&mut rx)), [None]);

    index.write().apply(&web(
        json!({"retry.linkerd.io/http": "5xx", "retry.linkerd.io/limit": "2"}),
        [None, None],
    ));
    assert!(rx.has_changed().unwrap());
    let policy = latest(&mut rx);
    assert_eq!(http_retries(&policy), [Some((2, vec![(500, 599)]))]);
    let Kind::Detect(detect) = kind(&policy) else {
        panic!()
    };
    assert_eq!(
        detect.http2.as_ref().unwrap().routes,
        detect.http1.as_ref().unwrap().routes,
        "HTTP/2 gets the same routes"
    );

    index.write().apply(&web(
        json!({"retry.linkerd.io/http": "gateway-error,429", "retry.linkerd.io/timeout": "250ms"}),
        [None, None],
    ));
    let policy = latest(&mut rx);
    assert_eq!(
        http_retries(&policy),
        [Some((1, vec![(502, 504), (429, 429)]))]
    );
    let retry = http1_routes(&policy)[0].rules[0].retry.clone().unwrap();
    assert_eq!(retry.timeout.unwrap().nanos, 250_000_000);

    index.write().apply(&web(json!({}), [None, None]));
    assert_eq!(http_retries(&latest(&mut rx)), [None]);
}

#[test]
fn bad_retry_annotations_are_skipped_without_breaking_the_policy() {
    let index = mk_index();
    index.write().apply(&web(
        json!({"retry.linkerd.io/http": "5xx,teapot", "retry.linkerd.io/limit": "3"}),
        [None, None],
    ));
    let mut rx = watch(&index, "10.96.0.10:80");
    // The conditions are dropped, the limit stays.
    assert_eq!(http_retries(&latest(&mut rx)), [Some((3, vec![]))]);

    index.write().apply(&web(
        json!({"retry.linkerd.io/http": "5xx", "retry.linkerd.io/limit": "-1", "retry.linkerd.io/timeout": "7"}),
        [None, None],
    ));
    assert_eq!(
        http_retries(&latest(&mut rx)),
        [Some((1, vec![(500, 599)]))]
    );

    index.write().apply(&web(
        json!({"retry.linkerd.io/http": "", "retry.linkerd.io/timeout": "never"}),
        [None, None],
    ));
    assert_eq!(
        http_retries(&latest(&mut rx)),
        [None],
        "nothing valid, no retry"
    );
}

#[test]
fn route_retry_annotations_replace_the_services() {
    let index = mk_index();
    index.write().apply(&web(
        json!({"retry.linkerd.io/http": "5xx", "retry.linkerd.io/limit": "2"}),
        [None, None],
    ));
    let mut rx = watch(&index, "10.96.0.10:80");
    index.write().apply(&http_route(
        "own",
        json!({"retry.linkerd.io/http": "503", "retry.linkerd.io/limit": "4"}),
        json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/a"}}]}, {}]),
    ));
    assert_eq!(
        http_retries(&latest(&mut rx)),
        [Some((4, vec![(503, 503)])), Some((4, vec![(503, 503)]))]
    );

    // A route without retry annotations (a gRPC one does not count) keeps the Service's.
    index.write().apply(&http_route(
        "own",
        json!({"retry.linkerd.io/grpc": "internal"}),
        json!([{}]),
    ));
    assert_eq!(
        http_retries(&latest(&mut rx)),
        [Some((2, vec![(500, 599)]))]
    );

    // A route's limit alone replaces the Service's conditions too, as in Linkerd.
    index.write().apply(&http_route(
        "own",
        json!({"retry.linkerd.io/limit": "5"}),
        json!([{}]),
    ));
    assert_eq!(http_retries(&latest(&mut rx)), [Some((5, vec![]))]);

    index.write().delete::<HttpRoute>(NS, "own");
    assert_eq!(
        http_retries(&latest(&mut rx)),
        [Some((2, vec![(500, 599)]))]
    );
}

#[test]
fn app_protocol_picks_the_protocol() {
    let index = mk_index();
    index
        .write()
        .apply(&web(json!({}), [Some("http"), Some("kubernetes.io/h2c")]));
    let mut http = watch(&index, "10.96.0.10:80");
    let mut h2 = watch(&index, "10.96.0.10:8080");
    let policy = latest(&mut http);
    let Kind::Http1(h1) = kind(&policy) else {
        panic!("{policy:?}")
    };
    assert_eq!(meta_name(&h1.routes[0].metadata), "default:http");
    assert!(matches!(kind(&latest(&mut h2)), Kind::Http2(_)));

    // Case does not matter; opaque and tcp are both opaque; unknown values detect.
    index.write().apply(&web(
        json!({}),
        [Some("Linkerd.io/TCP"), Some("linkerd.io/opaque")],
    ));
    assert!(matches!(kind(&latest(&mut http)), Kind::Opaque(_)));
    assert!(matches!(kind(&latest(&mut h2)), Kind::Opaque(_)));
    index
        .write()
        .apply(&web(json!({}), [Some("HTTP"), Some("mongodb")]));
    assert!(matches!(kind(&latest(&mut http)), Kind::Http1(_)));
    assert!(matches!(kind(&latest(&mut h2)), Kind::Detect(_)));

    // An opaque-ports annotation wins over appProtocol.
    index.write().apply(&web(
        json!({"config.linkerd.io/opaque-ports": "80"}),
        [Some("http"), None],
    ));
    assert!(matches!(kind(&latest(&mut http)), Kind::Opaque(_)));

    index.write().apply(&web(json!({}), [None, None]));
    assert!(matches!(kind(&latest(&mut http)), Kind::Detect(_)));
}

#[test]
fn routes_and_retries_follow_app_protocol_http() {
    let index = mk_index();
    index.write().apply(&web(
        json!({"retry.linkerd.io/http": "5xx"}),
        [Some("kubernetes.io/h2c"), None],
    ));
    index
        .write()
        .apply(&http_route("r", json!({}), json!([{}])));
    let mut rx = watch(&index, "10.96.0.10:80");
    let policy = latest(&mut rx);
    let Kind::Http2(h2) = kind(&policy) else {
        panic!("{policy:?}")
    };
    assert_eq!(
        meta_name(&h2.routes[0].metadata),
        "policy.linkerd.io:HTTPRoute:r"
    );
    assert_eq!(h2.routes[0].rules[0].retry.as_ref().unwrap().max_retries, 1);
}

#[test]
fn unknown_service_addresses_stay_errors() {
    let index = mk_index();
    index.write().apply(&web(json!({}), [None, None]));
    let missing = ObjKey::new(NS, "nope");
    assert_eq!(
        index
            .write()
            .watch_outbound(&OutboundTarget::Service(missing.clone(), 80))
            .unwrap_err(),
        PolicyError::ServiceNotFound(missing)
    );
}

fn gateway_http_route(name: &str, version: &str, created: &str, rules: Value) -> GatewayHttpRoute {
    serde_json::from_value(json!({
        "apiVersion": format!("gateway.networking.k8s.io/{version}"),
        "kind": "HTTPRoute",
        "metadata": {"namespace": NS, "name": name, "creationTimestamp": created},
        "spec": {
            "parentRefs": [{"kind": "Service", "name": "web", "port": 80}],
            "rules": rules,
        },
    }))
    .unwrap()
}

fn grpc_route(name: &str, annotations: Value, rules: Value) -> GrpcRoute {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": {"namespace": NS, "name": name, "annotations": annotations},
        "spec": {
            "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 8080}],
            "rules": rules,
        },
    }))
    .unwrap()
}

fn http1_route_names(policy: &pb::OutboundPolicy) -> Vec<String> {
    http1_routes(policy)
        .iter()
        .map(|r| meta_name(&r.metadata))
        .collect()
}

fn grpc_routes(policy: &pb::OutboundPolicy) -> Vec<pb::GrpcRoute> {
    match kind(policy) {
        Kind::Grpc(g) => g.routes.clone(),
        other => panic!("not gRPC: {other:?}"),
    }
}

#[test]
fn http_routes_of_both_groups_merge_oldest_first() {
    let index = mk_index();
    index.write().apply(&web(json!({}), [None, None]));
    let mut rx = watch(&index, "10.96.0.10:80");
    let mut policy_route = http_route("b-policy", json!({}), json!([{}]));
    policy_route.metadata.creation_timestamp =
        serde_json::from_value(json!("2026-01-02T00:00:00Z")).unwrap();
    index.write().apply(&policy_route);
    index.write().apply(&gateway_http_route(
        "z-old",
        "v1",
        "2026-01-01T00:00:00Z",
        json!([{"matches": [{"path": {"type": "Exact", "value": "/z"}}]}]),
    ));
    index.write().apply(&gateway_http_route(
        "a-same-age",
        "v1beta1",
        "2026-01-02T00:00:00Z",
        json!([{"backendRefs": [{"name": "nope", "port": 80}]}]),
    ));
    let policy = latest(&mut rx);
    assert_eq!(
        http1_route_names(&policy),
        [
            "gateway.networking.k8s.io:HTTPRoute:z-old",
            "gateway.networking.k8s.io:HTTPRoute:a-same-age",
            "policy.linkerd.io:HTTPRoute:b-policy",
        ]
    );
    // A gateway route's missing backend fails like a policy route's.
    let rule = &http1_routes(&policy)[1].rules[0];
    let Some(pb::http_route::distribution::Kind::RandomAvailable(random)) =
        rule.backends.clone().unwrap().kind
    else {
        panic!("{rule:?}")
    };
    let missing = random.backends[0].backend.clone().unwrap();
    assert!(missing.backend.unwrap().kind.is_none());
    assert!(matches!(
        missing.filters[0].kind,
        Some(pb::http_route::filter::Kind::FailureInjector(_))
    ));

    // A backend of another kind is invalid too, named as Linkerd names it.
    index.write().apply(&gateway_http_route(
        "a-same-age",
        "v1beta1",
        "2026-01-02T00:00:00Z",
        json!([{"backendRefs": [
            {"group": "apps", "kind": "Deployment", "name": "web", "port": 80},
            {"group": "", "kind": "Service", "name": "web", "port": 80},
        ]}]),
    ));
    let rule = &http1_routes(&latest(&mut rx))[1].rules[0];
    let Some(pb::http_route::distribution::Kind::RandomAvailable(random)) =
        rule.backends.clone().unwrap().kind
    else {
        panic!("{rule:?}")
    };
    let [deployment, service] = random.backends.as_slice() else {
        panic!("{random:?}")
    };
    let deployment = deployment.backend.clone().unwrap();
    assert_eq!(
        meta_name(&deployment.backend.clone().unwrap().metadata),
        "default:invalid"
    );
    let Some(pb::http_route::filter::Kind::FailureInjector(failure)) =
        deployment.filters[0].kind.clone()
    else {
        panic!("{deployment:?}")
    };
    assert_eq!(failure.message, "unsupported backend type apps Deployment");
    let service = service.backend.clone().unwrap().backend.unwrap();
    assert!(matches!(service.kind, Some(pb::backend::Kind::Balancer(_))));

    index.write().delete::<GatewayHttpRoute>(NS, "z-old");
    index.write().delete::<GatewayHttpRoute>(NS, "a-same-age");
    assert_eq!(
        http1_route_names(&latest(&mut rx)),
        ["policy.linkerd.io:HTTPRoute:b-policy"]
    );
    index.write().delete::<HttpRoute>(NS, "b-policy");
    assert_eq!(http1_route_names(&latest(&mut rx)), ["default:http"]);
}

#[test]
fn grpc_routes_make_a_grpc_policy_until_deleted() {
    let index = mk_index();
    index.write().apply(&web(
        json!({"retry.linkerd.io/grpc": "unavailable", "timeout.linkerd.io/response": "2s"}),
        [None, None],
    ));
    index.write().apply(&mk_service(
        "web-v2",
        "10.96.0.11",
        &[("grpc", 8080, json!(8080))],
    ));
    let mut rx = watch(&index, "10.96.0.10:8080");
    let default = latest(&mut rx);
    assert!(matches!(kind(&default), Kind::Detect(_)));

    index.write().apply(&grpc_route(
        "rpc",
        json!({}),
        json!([{
            "matches": [{
                "method": {"service": "pkg.Greeter", "method": "Hello"},
                "headers": [{"name": "x-canary", "value": "1"}],
            }],
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "b"}]}},
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["x-b"]}},
            ],
            "backendRefs": [
                {"name": "web", "port": 8080, "weight": 9},
                {"name": "web-v2", "port": 8080, "weight": 1},
                {"name": "gone", "port": 8080},
            ],
        }, {}]),
    ));
    assert!(rx.has_changed().unwrap());
    let policy = latest(&mut rx);
    let routes = grpc_routes(&policy);
    let [route] = routes.as_slice() else {
        panic!("{routes:?}")
    };
    assert_eq!(
        meta_name(&route.metadata),
        "gateway.networking.k8s.io:GRPCRoute:rpc"
    );
    let rule = &route.rules[0];
    let rpc = rule.matches[0].rpc.clone().unwrap();
    assert_eq!(
        (rpc.service.as_str(), rpc.method.as_str()),
        ("pkg.Greeter", "Hello")
    );
    assert_eq!(rule.matches[0].headers[0].name, "x-canary");
    assert_eq!(
        rule.filters.len(),
        1,
        "the response filter has no gRPC form"
    );
    let retry = rule.retry.unwrap();
    assert!(retry.conditions.unwrap().unavailable, "the Service's retry");
    assert_eq!(rule.timeouts.unwrap().response.unwrap().seconds, 2);
    let Some(pb::grpc_route::distribution::Kind::RandomAvailable(random)) =
        rule.backends.clone().unwrap().kind
    else {
        panic!("{rule:?}")
    };
    let weights: Vec<u32> = random.backends.iter().map(|b| b.weight).collect();
    assert_eq!(weights, [9, 1, 1]);
    let gone = random.backends[2].backend.clone().unwrap();
    assert!(matches!(
        gone.filters[0].kind,
        Some(pb::grpc_route::filter::Kind::FailureInjector(_))
    ));
    // A rule without matches matches every call, and without backends goes to its parent.
    let catch_all = &route.rules[1];
    assert_eq!(catch_all.matches, [Default::default()]);
    assert!(matches!(
        catch_all.backends.clone().unwrap().kind,
        Some(pb::grpc_route::distribution::Kind::FirstAvailable(_))
    ));

    // The route's own retry annotations replace the Service's.
    index.write().apply(&grpc_route(
        "rpc",
        json!({"retry.linkerd.io/grpc": "cancelled,internal", "retry.linkerd.io/limit": "3"}),
        json!([{}]),
    ));
    let retry = grpc_routes(&latest(&mut rx))[0].rules[0].retry.unwrap();
    let conditions = retry.conditions.unwrap();
    assert_eq!(retry.max_retries, 3);
    assert!(conditions.cancelled && conditions.internal && !conditions.unavailable);

    // Other ports and other Services are not affected.
    let mut http = watch(&index, "10.96.0.10:80");
    assert!(matches!(kind(&latest(&mut http)), Kind::Detect(_)));

    index.write().delete::<GrpcRoute>(NS, "rpc");
    assert_eq!(latest(&mut rx), default);
}

#[test]
fn grpc_routes_yield_to_app_protocol_and_opaque_ports() {
    let index = mk_index();
    index
        .write()
        .apply(&grpc_route("rpc", json!({}), json!([{}])));
    index
        .write()
        .apply(&web(json!({}), [None, Some("kubernetes.io/h2c")]));
    let mut rx = watch(&index, "10.96.0.10:8080");
    assert!(matches!(kind(&latest(&mut rx)), Kind::Http2(_)));
    index.write().apply(&web(
        json!({"config.linkerd.io/opaque-ports": "8080"}),
        [None, None],
    ));
    assert!(matches!(kind(&latest(&mut rx)), Kind::Opaque(_)));
    index.write().apply(&web(json!({}), [None, None]));
    assert_eq!(grpc_routes(&latest(&mut rx)).len(), 1);
}

#[test]
fn addresses_outside_the_cluster_get_the_egress_fallback() {
    let index = mk_index();
    let target = OutboundTarget::Addr("192.0.2.1:443".parse().unwrap());
    assert!(index.read().existing_outbound(&target).unwrap().is_none());
    let mut rx = index.write().watch_outbound(&target).unwrap();
    let policy = latest(&mut rx);
    assert_eq!(meta_name(&policy.metadata), "default:egress-fallback");
    let Kind::Detect(detect) = kind(&policy) else {
        panic!("{policy:?}")
    };
    let routes = detect.http1.clone().unwrap().routes;
    assert_eq!(meta_name(&routes[0].metadata), "default:egress-fallback");
    let Some(pb::http_route::distribution::Kind::FirstAvailable(first)) =
        routes[0].rules[0].backends.clone().unwrap().kind
    else {
        panic!("{routes:?}")
    };
    let backend = first.backends[0].backend.clone().unwrap();
    let Some(pb::backend::Kind::Forward(addr)) = backend.kind else {
        panic!("{backend:?}")
    };
    assert_eq!(
        std::net::SocketAddr::try_from(addr.addr.unwrap()).unwrap(),
        "192.0.2.1:443".parse().unwrap()
    );
    let opaque = detect.opaque.clone().unwrap();
    assert_eq!(
        meta_name(&opaque.routes[0].metadata),
        "default:egress-fallback"
    );

    // Subscribers of one address share its snapshot.
    let again = index.read().existing_outbound(&target).unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(&again.borrow(), &rx.borrow()));
    assert_eq!(index.read().egress_keys(), 1);
    drop((rx, again));
    let v6 = OutboundTarget::Addr("[2001:db8::1]:80".parse().unwrap());
    let _rx = index.write().watch_outbound(&v6).unwrap();
    assert_eq!(index.read().egress_keys(), 1, "closed channels are dropped");
}

#[test]
fn addresses_inside_the_cluster_networks_stay_not_found() {
    let index = mk_index();
    index.write().apply(&web(json!({}), [None, None]));
    for addr in [
        "10.1.0.1:80",
        "172.16.0.5:80",
        "192.168.1.1:80",
        "100.64.0.1:80",
        "[fd00::1]:80",
    ] {
        let addr = addr.parse().unwrap();
        assert_eq!(
            index
                .write()
                .watch_outbound(&OutboundTarget::Addr(addr))
                .unwrap_err(),
            PolicyError::NoService(addr)
        );
    }
    assert_eq!(index.read().egress_keys(), 0);
    assert_eq!(index.read().policy_sizes().outbound_keys, 0);
}

fn egress_network(ns: &str, name: &str, policy: &str, networks: Value) -> EgressNetwork {
    serde_json::from_value(json!({
        "apiVersion": "policy.linkerd.io/v1alpha1",
        "kind": "EgressNetwork",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"trafficPolicy": policy, "networks": networks},
    }))
    .unwrap()
}

fn from_client(addr: &str) -> OutboundTarget {
    OutboundTarget::AddrFrom {
        addr: addr.parse().unwrap(),
        source_ns: NS.into(),
    }
}

/// The policy's name, its opaque and HTTP route names, and whether each route refuses.
fn egress_shape(policy: &pb::OutboundPolicy) -> (String, String, String, bool, bool) {
    let Kind::Detect(detect) = kind(policy) else {
        panic!("{policy:?}")
    };
    let opaque = &detect.opaque.as_ref().unwrap().routes[0];
    let http = &detect.http1.as_ref().unwrap().routes[0];
    let forbidden = matches!(
        opaque.rules[0]
            .filters
            .first()
            .and_then(|f| f.kind.as_ref()),
        Some(pb::opaque_route::filter::Kind::Forbidden(_))
    );
    let status_403 = matches!(
        http.rules[0].filters.first().and_then(|f| f.kind.as_ref()),
        Some(pb::http_route::filter::Kind::FailureInjector(f)) if f.status == 403
    );
    (
        meta_name(&policy.metadata),
        meta_name(&opaque.metadata),
        meta_name(&http.metadata),
        forbidden,
        status_403,
    )
}

#[test]
fn egress_networks_pick_the_policy_of_addresses_that_are_no_services() {
    let index = mk_index();
    let global = oxlink_crds::names::control_plane::GLOBAL_EGRESS_NETWORK_NAMESPACE;
    let mut rx = index
        .write()
        .watch_outbound(&from_client("192.0.2.1:443"))
        .unwrap();
    assert_eq!(
        meta_name(&latest(&mut rx).metadata),
        "default:egress-fallback"
    );

    // A global network containing the address takes over the subscription.
    index.write().apply(&egress_network(
        global,
        "internet",
        "Allow",
        json!([{"cidr": "192.0.2.0/24"}]),
    ));
    assert!(rx.has_changed().unwrap());
    let policy = latest(&mut rx);
    assert_eq!(
        egress_shape(&policy),
        (
            "policy.linkerd.io:EgressNetwork:internet".into(),
            "default:tcp-egress-allow".into(),
            "default:http-egress-allow".into(),
            false,
            false,
        )
    );
    let Some(MetaKind::Resource(r)) = policy.metadata.and_then(|m| m.kind) else {
        panic!()
    };
    assert_eq!((r.namespace.as_str(), r.port), (global, 443));

    // The client namespace's networks, when it has any, are the only ones considered: here a
    // less specific one that denies.
    index.write().apply(&egress_network(
        NS,
        "locked",
        "Deny",
        json!([{"cidr": "192.0.0.0/8"}]),
    ));
    assert_eq!(
        egress_shape(&latest(&mut rx)),
        (
            "policy.linkerd.io:EgressNetwork:locked".into(),
            "default:tcp-egress-deny".into(),
            "default:http-egress-deny".into(),
            true,
            true,
        )
    );
    // A client that did not say its namespace sees the global one.
    let mut anonymous = watch(&index, "192.0.2.1:443");
    assert_eq!(
        egress_shape(&latest(&mut anonymous)).0,
        "policy.linkerd.io:EgressNetwork:internet"
    );
    // Outside every network of the namespace: no egress network, so the fallback.
    let mut other = index
        .write()
        .watch_outbound(&from_client("203.0.113.9:80"))
        .unwrap();
    assert_eq!(
        meta_name(&latest(&mut other).metadata),
        "default:egress-fallback"
    );

    index.write().delete::<EgressNetwork>(NS, "locked");
    assert_eq!(
        egress_shape(&latest(&mut rx)).0,
        "policy.linkerd.io:EgressNetwork:internet"
    );
    index.write().delete::<EgressNetwork>(global, "internet");
    assert_eq!(
        meta_name(&latest(&mut rx).metadata),
        "default:egress-fallback"
    );
}

#[test]
fn egress_networks_prefer_specific_then_old_and_respect_exceptions() {
    let index = mk_index();
    let mut wide = egress_network(NS, "b-wide", "Allow", json!([{"cidr": "198.51.0.0/16"}]));
    wide.metadata.creation_timestamp =
        serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap();
    index.write().apply(&wide);
    index.write().apply(&egress_network(
        NS,
        "a-narrow",
        "Deny",
        json!([{"cidr": "198.51.100.0/24", "except": ["198.51.100.7", "bogus"]}]),
    ));
    let name = |index: &SharedIndex, addr: &str| {
        let mut rx = index.write().watch_outbound(&from_client(addr)).unwrap();
        meta_name(&latest(&mut rx).metadata)
    };
    assert_eq!(
        name(&index, "198.51.100.1:80"),
        "policy.linkerd.io:EgressNetwork:a-narrow"
    );
    assert_eq!(
        name(&index, "198.51.100.7:80"),
        "policy.linkerd.io:EgressNetwork:b-wide",
        "an exception is not matched"
    );
    // Same size: the older wins over the newer, whatever the names.
    let mut newer = egress_network(NS, "a-newer", "Allow", json!([{"cidr": "198.51.0.0/16"}]));
    newer.metadata.creation_timestamp =
        serde_json::from_value(json!("2026-02-01T00:00:00Z")).unwrap();
    index.write().apply(&newer);
    assert_eq!(
        name(&index, "198.51.7.7:80"),
        "policy.linkerd.io:EgressNetwork:b-wide"
    );
}

#[test]
fn egress_networks_reach_into_the_cluster_only_when_they_say_so() {
    let index = mk_index();
    // Without networks: everything outside the cluster networks.
    index
        .write()
        .apply(&egress_network(NS, "all", "Allow", json!([])));
    let target = from_client("10.200.0.1:80");
    assert_eq!(
        index.write().watch_outbound(&target).unwrap_err(),
        PolicyError::NoService("10.200.0.1:80".parse().unwrap())
    );
    let mut rx = index
        .write()
        .watch_outbound(&from_client("[2001:db8::1]:80"))
        .unwrap();
    assert_eq!(
        meta_name(&latest(&mut rx).metadata),
        "policy.linkerd.io:EgressNetwork:all"
    );
    // Naming a cluster network explicitly brings its addresses in.
    index.write().apply(&egress_network(
        NS,
        "legacy",
        "Allow",
        json!([{"cidr": "10.200.0.0/16"}]),
    ));
    let mut rx = index.write().watch_outbound(&target).unwrap();
    assert_eq!(
        meta_name(&latest(&mut rx).metadata),
        "policy.linkerd.io:EgressNetwork:legacy"
    );
    // A Service's cluster IP is still the Service's.
    index.write().apply(&web(json!({}), [None, None]));
    let mut svc = index
        .write()
        .watch_outbound(&from_client("10.96.0.10:80"))
        .unwrap();
    assert_eq!(meta_name(&latest(&mut svc).metadata), "core:Service:web");
}

#[test]
fn route_timeout_annotations_replace_the_services() {
    let index = mk_index();
    index.write().apply(&web(
        json!({"timeout.linkerd.io/request": "10s", "timeout.linkerd.io/idle": "1m"}),
        [None, None],
    ));
    let mut rx = watch(&index, "10.96.0.10:80");
    let default_rule = &http1_routes(&latest(&mut rx))[0].rules[0];
    assert_eq!(default_rule.timeouts.unwrap().request.unwrap().seconds, 10);

    index.write().apply(&http_route(
        "own",
        json!({"timeout.linkerd.io/response": "3s"}),
        json!([{}, {"timeouts": {"request": "2s"}}]),
    ));
    let routes = http1_routes(&latest(&mut rx));
    let timeouts: Vec<_> = routes[0]
        .rules
        .iter()
        .map(|r| {
            let t = r.timeouts.unwrap();
            (
                t.request.map(|d| d.seconds),
                t.response.map(|d| d.seconds),
                t.idle,
            )
        })
        .collect();
    assert_eq!(timeouts, [(None, Some(3), None), (Some(2), Some(3), None)]);
    #[allow(deprecated)]
    let deprecated = routes[0].rules[1].request_timeout.unwrap().seconds;
    assert_eq!(deprecated, 2, "older proxies read the request timeout here");

    // A GRPCRoute's annotations replace the Service's too.
    index.write().apply(&grpc_route(
        "rpc",
        json!({"timeout.linkerd.io/request": "4s"}),
        json!([{}]),
    ));
    let mut grpc = watch(&index, "10.96.0.10:8080");
    let rule = &grpc_routes(&latest(&mut grpc))[0].rules[0];
    let t = rule.timeouts.unwrap();
    assert_eq!((t.request.unwrap().seconds, t.idle), (4, None));
}

#[test]
fn egress_network_annotations_retry_and_time_out_its_http_route() {
    let index = mk_index();
    let mut net = egress_network(NS, "api", "Allow", json!([{"cidr": "203.0.113.0/24"}]));
    net.metadata.annotations = Some(
        [
            ("retry.linkerd.io/http", "503"),
            ("timeout.linkerd.io/response", "5s"),
            ("retry.linkerd.io/limit", "many"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    index.write().apply(&net);
    let mut rx = index
        .write()
        .watch_outbound(&from_client("203.0.113.5:80"))
        .unwrap();
    let policy = latest(&mut rx);
    assert_eq!(http_retries(&policy), [Some((1, vec![(503, 503)]))]);
    let rule = &http1_routes(&policy)[0].rules[0];
    assert_eq!(rule.timeouts.unwrap().response.unwrap().seconds, 5);
}

fn egress_parent(name: &str, port: Option<u16>) -> Value {
    let mut parent = json!({"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": name});
    if let Some(port) = port {
        parent["port"] = json!(port);
    }
    parent
}

/// Each backend of a rule: its metadata's name, the address it forwards to, and the message
/// of the failure it injects.
fn rule_backends(rule: &pb::http_route::Rule) -> Vec<(String, Option<String>, Option<String>)> {
    use pb::http_route::distribution::Kind as Dist;
    let route_backends: Vec<pb::http_route::RouteBackend> =
        match rule.backends.clone().unwrap().kind.unwrap() {
            Dist::FirstAvailable(f) => f.backends,
            Dist::RandomAvailable(r) => r.backends.into_iter().filter_map(|w| w.backend).collect(),
            Dist::Empty(_) => Vec::new(),
        };
    route_backends
        .into_iter()
        .map(|rb| {
            let backend = rb.backend.unwrap();
            let forward = match backend.kind {
                Some(pb::backend::Kind::Forward(a)) => Some(
                    std::net::SocketAddr::try_from(a.addr.unwrap())
                        .unwrap()
                        .to_string(),
                ),
                _ => None,
            };
            let failure = rb.filters.iter().find_map(|f| match &f.kind {
                Some(pb::http_route::filter::Kind::FailureInjector(f)) => Some(f.message.clone()),
                _ => None,
            });
            (meta_name(&backend.metadata), forward, failure)
        })
        .collect()
}

#[test]
fn routes_attach_to_egress_networks() {
    let index = mk_index();
    index.write().apply(&web(json!({}), [None, None]));
    index.write().apply(&egress_network(
        NS,
        "api",
        "Deny",
        json!([{"cidr": "203.0.113.0/24"}]),
    ));
    let mut rx = index
        .write()
        .watch_outbound(&from_client("203.0.113.5:80"))
        .unwrap();
    assert_eq!(
        http1_route_names(&latest(&mut rx)),
        ["default:http-egress-deny"]
    );

    let mut route = http_route(
        "allow-get",
        json!({}),
        json!([
            {"matches": [{"method": "GET"}]},
            {"backendRefs": [
                {"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": "api"},
                {"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": "other"},
                {"name": "web", "port": 80},
            ]},
        ]),
    );
    route.spec.parent_refs = vec![serde_json::from_value(egress_parent("api", Some(80))).unwrap()];
    index.write().apply(&route);
    assert!(
        rx.has_changed().unwrap(),
        "a route change rebuilds egress subscriptions"
    );
    let policy = latest(&mut rx);
    assert_eq!(
        http1_route_names(&policy),
        [
            "policy.linkerd.io:HTTPRoute:allow-get",
            "default:http-egress-deny"
        ]
    );
    let rules = &http1_routes(&policy)[0].rules;
    let api = "policy.linkerd.io:EgressNetwork:api".to_string();
    let dst = Some("203.0.113.5:80".to_string());
    assert_eq!(rule_backends(&rules[0]), [(api.clone(), dst.clone(), None)]);
    assert_eq!(
        rule_backends(&rules[1]),
        [
            (api, dst, None),
            (
                "policy.linkerd.io:EgressNetwork:other".into(),
                None,
                Some(
                    "Route with EgressNetwork backend needs to have the same EgressNetwork as a \
                     parent"
                        .into()
                ),
            ),
            ("core:Service:web".into(), None, None),
        ]
    );

    // A route for another port does not attach.
    let mut other_port = http_route("other-port", json!({}), json!([{}]));
    other_port.spec.parent_refs =
        vec![serde_json::from_value(egress_parent("api", Some(443))).unwrap()];
    index.write().apply(&other_port);
    assert_eq!(http1_route_names(&latest(&mut rx)).len(), 2);

    // A GRPCRoute makes it a gRPC policy.
    let mut grpc = grpc_route("rpc", json!({}), json!([{}]));
    grpc.spec.parent_refs = vec![serde_json::from_value(egress_parent("api", None)).unwrap()];
    index.write().apply(&grpc);
    let routes = grpc_routes(&latest(&mut rx));
    assert_eq!(
        meta_name(&routes[0].metadata),
        "gateway.networking.k8s.io:GRPCRoute:rpc"
    );
    index.write().delete::<GrpcRoute>(NS, "rpc");
    index.write().delete::<HttpRoute>(NS, "allow-get");
    assert_eq!(
        http1_route_names(&latest(&mut rx)),
        ["default:http-egress-deny"]
    );
}

#[test]
fn egress_network_backends_need_their_network_as_parent() {
    let index = mk_index();
    index.write().apply(&web(json!({}), [None, None]));
    index.write().apply(&http_route(
        "to-egress",
        json!({}),
        json!([{"backendRefs": [{"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": "api"}]}]),
    ));
    let mut rx = watch(&index, "10.96.0.10:80");
    let rule = &http1_routes(&latest(&mut rx))[0].rules[0];
    assert_eq!(
        rule_backends(rule),
        [(
            "policy.linkerd.io:EgressNetwork:api".into(),
            None,
            Some("EgressNetwork backends attach to EgressNetwork parents only".into()),
        )]
    );
}
