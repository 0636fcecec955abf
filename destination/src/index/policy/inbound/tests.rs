//! Inbound policy of ExternalWorkloads, and HTTP local rate limits, driven through the index.

use crate::{
    index::{
        Config, Index, ObjKey, SharedIndex,
        policy::{DefaultPolicy, InboundRx, PolicyConfig, PolicyError, Workload},
    },
    test_util::*,
};
use k8s_openapi::api::core::v1::Pod;
use linkerd2_proxy_api::{
    inbound::{self as pb, proxy_protocol::Kind},
    meta::metadata::Kind as MetaKind,
};
use oxlink_crds::{
    ExternalWorkload,
    policy::{AuthorizationPolicy, HttpLocalRateLimitPolicy, HttpRoute, Server},
};
use serde_json::{Value, json};

fn vm_key() -> ObjKey {
    ObjKey::new(NS, "vm-1")
}

fn vm() -> Workload {
    Workload::External(vm_key())
}

fn pod() -> Workload {
    Workload::Pod(ObjKey::new(NS, "web-1"))
}

/// An index holding pod `web-1` and ExternalWorkload `vm-1`, both labelled `app: web` with a
/// port `http` 8080; the workload has `annotations`.
fn index_with(annotations: Value) -> SharedIndex {
    let index = mk_index();
    index.write().apply(&mk_pod("web-1", "10.1.0.1", true));
    index.write().apply(&mk_web_external_workload(
        "vm-1",
        "192.168.1.10",
        annotations,
    ));
    index
}

fn watch(index: &SharedIndex, workload: &Workload, port: u16) -> InboundRx {
    index.write().watch_workload(workload, port).unwrap()
}

fn current(rx: &mut InboundRx) -> pb::Server {
    rx.borrow_and_update().message.clone()
}

/// `kind:name` of the server's labels (`default:<policy>` or `server:<name>`).
fn server_name(server: &pb::Server) -> String {
    format!("{}:{}", server.labels["kind"], server.labels["name"])
}

fn meta_name(m: Option<&linkerd2_proxy_api::meta::Metadata>) -> String {
    match m.and_then(|m| m.kind.as_ref()) {
        Some(MetaKind::Default(name)) => format!("default:{name}"),
        Some(MetaKind::Resource(r)) => format!("{}:{}", r.kind, r.name),
        None => String::new(),
    }
}

fn authz_names(server: &pb::Server) -> Vec<String> {
    let authzs = server.authorizations.iter();
    authzs.map(|a| meta_name(a.metadata.as_ref())).collect()
}

fn kind(server: &pb::Server) -> &Kind {
    server.protocol.as_ref().unwrap().kind.as_ref().unwrap()
}

fn route_names(server: &pb::Server) -> Vec<String> {
    let routes = match kind(server) {
        Kind::Detect(d) => &d.http_routes,
        Kind::Http1(h) => &h.routes,
        Kind::Http2(h) => &h.routes,
        _ => return Vec::new(),
    };
    routes
        .iter()
        .map(|r| meta_name(r.metadata.as_ref()))
        .collect()
}

fn server_for(name: &str, selector: Value, port: Value, protocol: &str, external: bool) -> Server {
    let make = if external {
        mk_external_server
    } else {
        mk_server
    };
    make(name, selector, port, protocol)
}

fn web() -> Value {
    json!({"matchLabels": {"app": "web"}})
}

fn obj<T: serde::de::DeserializeOwned>(kind: &str, name: &str, meta: Value, spec: Value) -> T {
    let mut metadata = json!({"namespace": NS, "name": name});
    metadata
        .as_object_mut()
        .unwrap()
        .extend(meta.as_object().cloned().unwrap_or_default());
    let version = match kind {
        "HTTPRoute" => "v1beta3",
        _ => "v1alpha1",
    };
    serde_json::from_value(json!({
        "apiVersion": format!("policy.linkerd.io/{version}"),
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }))
    .unwrap()
}

// === external workloads ===

#[test]
fn an_external_workload_gets_the_default_policy_without_probe_routes() {
    let index = index_with(json!({}));
    let mut rx = watch(&index, &vm(), 8080);
    let server = current(&mut rx);
    assert_eq!(server_name(&server), "default:all-unauthenticated");
    assert_eq!(authz_names(&server), ["default:all-unauthenticated"]);
    assert!(matches!(kind(&server), Kind::Detect(_)));
    assert_eq!(route_names(&server), ["default:default"]);
    // Any port, listed or not, like a pod's; a default opaque port is opaque.
    let mut other = watch(&index, &vm(), 9090);
    assert_eq!(
        server_name(&current(&mut other)),
        "default:all-unauthenticated"
    );
    let mut mysql = watch(&index, &vm(), 3306);
    assert!(matches!(kind(&current(&mut mysql)), Kind::Opaque(_)));
}

#[test]
fn an_external_workloads_annotations_set_its_default_policy() {
    let index = index_with(json!({
        "config.linkerd.io/default-inbound-policy": "deny",
        "config.linkerd.io/opaque-ports": "http",
    }));
    let mut rx = watch(&index, &vm(), 8080);
    let server = current(&mut rx);
    assert_eq!(server_name(&server), "default:deny");
    assert!(server.authorizations.is_empty());
    assert!(matches!(kind(&server), Kind::Opaque(_)));

    // Required identity makes an unauthenticated default authenticated.
    index.write().apply(&mk_web_external_workload(
        "vm-1",
        "192.168.1.10",
        json!({"config.linkerd.io/proxy-require-identity-inbound-ports": "8080"}),
    ));
    assert_eq!(server_name(&current(&mut rx)), "default:all-authenticated");

    // A bad annotation falls back to the cluster's default.
    let cluster_deny = Index::shared(Config {
        policy: PolicyConfig {
            default_policy: DefaultPolicy::ClusterAuthenticated,
            ..PolicyConfig::default()
        },
        ..Config::default()
    });
    cluster_deny.write().apply(&mk_web_external_workload(
        "vm-1",
        "192.168.1.10",
        json!({"config.linkerd.io/default-inbound-policy": "everyone"}),
    ));
    let mut rx = watch(&cluster_deny, &vm(), 8080);
    assert_eq!(
        server_name(&current(&mut rx)),
        "default:cluster-authenticated"
    );
}

#[test]
fn unknown_external_workloads_are_not_found_and_pods_are_not_them() {
    let index = index_with(json!({}));
    for workload in [
        Workload::External(ObjKey::new(NS, "web-1")),
        Workload::External(ObjKey::new("other", "vm-1")),
    ] {
        let error = index.write().watch_workload(&workload, 8080).unwrap_err();
        assert_eq!(
            error,
            PolicyError::ExternalWorkloadNotFound(workload.key().clone())
        );
        assert!(
            error.to_string().starts_with("external workload "),
            "{error}"
        );
    }
    let error = index
        .write()
        .watch_workload(&Workload::Pod(vm_key()), 8080)
        .unwrap_err();
    assert_eq!(error, PolicyError::PodNotFound(vm_key()));
    assert_eq!(index.read().policy_sizes().inbound_keys, 0);
}

#[test]
fn selectors_never_cross_between_pods_and_external_workloads() {
    let index = index_with(json!({}));
    let mut pod_rx = watch(&index, &pod(), 8080);
    let mut vm_rx = watch(&index, &vm(), 8080);

    // A podSelector Server selects the pod only.
    index
        .write()
        .apply(&server_for("pods", web(), json!(8080), "HTTP/1", false));
    assert_eq!(server_name(&current(&mut pod_rx)), "server:pods");
    assert!(!vm_rx.has_changed().unwrap());
    assert_eq!(
        server_name(&current(&mut vm_rx)),
        "default:all-unauthenticated"
    );

    // An externalWorkloadSelector Server selects the workload only, by its named port.
    index
        .write()
        .apply(&server_for("vms", web(), json!("http"), "HTTP/2", true));
    let server = current(&mut vm_rx);
    assert_eq!(server_name(&server), "server:vms");
    assert!(matches!(kind(&server), Kind::Http2(_)));
    assert!(!pod_rx.has_changed().unwrap());
    assert_eq!(server_name(&current(&mut pod_rx)), "server:pods");

    // An empty externalWorkloadSelector selects every workload in the namespace, and no pod.
    index.write().delete::<Server>(NS, "pods");
    index.write().delete::<Server>(NS, "vms");
    index.write().apply(&server_for(
        "all-vms",
        json!({}),
        json!(8080),
        "unknown",
        true,
    ));
    assert_eq!(server_name(&current(&mut vm_rx)), "server:all-vms");
    assert_eq!(
        server_name(&current(&mut pod_rx)),
        "default:all-unauthenticated"
    );
}

#[test]
fn authorizations_and_routes_apply_to_external_workloads_as_to_pods() {
    let index = index_with(json!({}));
    index
        .write()
        .apply(&server_for("vms", web(), json!(8080), "HTTP/1", true));
    let mut rx = watch(&index, &vm(), 8080);
    let server = current(&mut rx);
    assert_eq!(server_name(&server), "server:vms");
    // The Server's access policy (deny) admits no one; its default route stands alone.
    assert!(server.authorizations.is_empty());
    assert_eq!(route_names(&server), ["default:default"]);

    index.write().apply::<AuthorizationPolicy>(&obj(
        "AuthorizationPolicy",
        "vms-authz",
        json!({}),
        json!({
            "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "vms"},
            "requiredAuthenticationRefs": [{"kind": "ServiceAccount", "name": "client"}],
        }),
    ));
    index.write().apply::<HttpRoute>(&obj(
        "HTTPRoute",
        "vms-api",
        json!({}),
        json!({
            "parentRefs": [{"group": "policy.linkerd.io", "kind": "Server", "name": "vms"}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}]}],
        }),
    ));
    let server = current(&mut rx);
    assert_eq!(authz_names(&server), ["authorizationpolicy:vms-authz"]);
    assert_eq!(route_names(&server), ["HTTPRoute:vms-api"]);
    assert_eq!(server.labels["group"], "policy.linkerd.io");
}

#[test]
fn external_workload_changes_update_and_deletion_ends_its_streams() {
    let index = index_with(json!({}));
    index
        .write()
        .apply(&server_for("vms", web(), json!("http"), "HTTP/1", true));
    let mut rx = watch(&index, &vm(), 8080);
    assert_eq!(server_name(&current(&mut rx)), "server:vms");

    // Its port renamed: the Server's named port no longer matches.
    let mut renamed = mk_web_external_workload("vm-1", "192.168.1.10", json!({}));
    renamed.spec.ports[0].name = Some("web".into());
    index.write().apply(&renamed);
    assert_eq!(
        server_name(&current(&mut rx)),
        "default:all-unauthenticated"
    );

    // Back, then relabelled: the selector no longer matches.
    index
        .write()
        .apply(&mk_web_external_workload("vm-1", "192.168.1.10", json!({})));
    assert_eq!(server_name(&current(&mut rx)), "server:vms");
    let mut relabelled = mk_web_external_workload("vm-1", "192.168.1.10", json!({}));
    relabelled.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    index.write().apply(&relabelled);
    assert_eq!(
        server_name(&current(&mut rx)),
        "default:all-unauthenticated"
    );

    // Applying it unchanged sends nothing.
    index.write().apply(&relabelled);
    assert!(!rx.has_changed().unwrap());

    index.write().delete::<ExternalWorkload>(NS, "vm-1");
    assert!(rx.has_changed().is_err(), "the channel closed");
    assert_eq!(index.read().policy_sizes().inbound_keys, 0);
    assert_eq!(
        index.write().watch_workload(&vm(), 8080).unwrap_err(),
        PolicyError::ExternalWorkloadNotFound(vm_key())
    );
}

#[test]
fn a_deleted_pods_streams_end_too() {
    let index = index_with(json!({}));
    let rx = watch(&index, &pod(), 8080);
    let vm_rx = watch(&index, &vm(), 8080);
    index.write().delete::<Pod>(NS, "web-1");
    assert!(rx.has_changed().is_err());
    // The ExternalWorkload of the same labels is untouched.
    assert!(!vm_rx.has_changed().unwrap());
    assert_eq!(index.read().policy_sizes().inbound_keys, 1);
}

// === rate limits ===

fn rate_limit(name: &str, meta: Value, spec: Value) -> HttpLocalRateLimitPolicy {
    obj("HTTPLocalRateLimitPolicy", name, meta, spec)
}

fn target(server: &str) -> Value {
    json!({"group": "policy.linkerd.io", "kind": "Server", "name": server})
}

/// The rate limit of a detect, HTTP/1 or HTTP/2 server; `None` for any other protocol too.
fn limit_of(server: &pb::Server) -> Option<&pb::HttpLocalRateLimit> {
    match kind(server) {
        Kind::Detect(d) => d.http_local_rate_limit.as_ref(),
        Kind::Http1(h) => h.local_rate_limit.as_ref(),
        Kind::Http2(h) => h.local_rate_limit.as_ref(),
        _ => None,
    }
}

fn rps(limit: Option<&pb::http_local_rate_limit::Limit>) -> Option<u32> {
    limit.map(|l| l.requests_per_second)
}

#[test]
fn a_rate_limit_appears_changes_and_disappears() {
    let index = index_with(json!({}));
    index
        .write()
        .apply(&server_for("web-http", web(), json!(8080), "HTTP/1", false));
    let mut rx = watch(&index, &pod(), 8080);
    assert_eq!(limit_of(&current(&mut rx)), None);

    index.write().apply(&rate_limit(
        "web-rl",
        json!({}),
        json!({
            "targetRef": target("web-http"),
            "total": {"requestsPerSecond": 100},
            "identity": {"requestsPerSecond": 20},
            "overrides": [{
                "requestsPerSecond": 50,
                "clientRefs": [
                    {"kind": "ServiceAccount", "name": "special"},
                    {"kind": "ServiceAccount", "name": "gateway", "namespace": "ingress"},
                ],
            }],
        }),
    ));
    let server = current(&mut rx);
    let limit = limit_of(&server).expect("a rate limit");
    let Some(MetaKind::Resource(meta)) = limit.metadata.as_ref().and_then(|m| m.kind.as_ref())
    else {
        panic!("{limit:?}")
    };
    assert_eq!(
        (meta.group.as_str(), meta.kind.as_str(), meta.name.as_str()),
        ("policy.linkerd.io", "HTTPLocalRateLimitPolicy", "web-rl")
    );
    assert_eq!(rps(limit.total.as_ref()), Some(100));
    assert_eq!(rps(limit.identity.as_ref()), Some(20));
    let [over] = limit.overrides.as_slice() else {
        panic!("{limit:?}")
    };
    assert_eq!(rps(over.limit.as_ref()), Some(50));
    let ids: Vec<&str> = over
        .clients
        .as_ref()
        .unwrap()
        .identities
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "special.ns.serviceaccount.identity.linkerd.cluster.local",
            "gateway.ingress.serviceaccount.identity.linkerd.cluster.local",
        ]
    );

    index.write().apply(&rate_limit(
        "web-rl",
        json!({}),
        json!({"targetRef": target("web-http"), "identity": {"requestsPerSecond": 5}}),
    ));
    let server = current(&mut rx);
    let limit = limit_of(&server).unwrap();
    assert_eq!(rps(limit.total.as_ref()), None);
    assert_eq!(rps(limit.identity.as_ref()), Some(5));
    assert!(limit.overrides.is_empty());

    index
        .write()
        .delete::<HttpLocalRateLimitPolicy>(NS, "web-rl");
    assert_eq!(limit_of(&current(&mut rx)), None);
}

#[test]
fn rate_limits_ride_on_http_protocols_of_pods_and_external_workloads() {
    for (protocol, carried) in [
        ("unknown", true),
        ("HTTP/1", true),
        ("HTTP/2", true),
        ("gRPC", false),
        ("opaque", false),
        ("TLS", false),
    ] {
        for (workload, external) in [(pod(), false), (vm(), true)] {
            let index = index_with(json!({}));
            index.write().apply(&server_for(
                "web-http",
                web(),
                json!(8080),
                protocol,
                external,
            ));
            index.write().apply(&rate_limit(
                "web-rl",
                json!({}),
                json!({"targetRef": target("web-http"), "total": {"requestsPerSecond": 7}}),
            ));
            let server = current(&mut watch(&index, &workload, 8080));
            assert_eq!(server_name(&server), "server:web-http");
            let total = limit_of(&server).and_then(|l| rps(l.total.as_ref()));
            assert_eq!(total, carried.then_some(7), "{protocol} {workload:?}");
        }
    }
}

#[test]
fn a_rate_limit_on_a_missing_server_changes_nothing_until_it_exists() {
    let index = index_with(json!({}));
    let mut rx = watch(&index, &pod(), 8080);
    let before = current(&mut rx);
    index.write().apply(&rate_limit(
        "web-rl",
        json!({}),
        json!({"targetRef": target("web-http"), "total": {"requestsPerSecond": 7}}),
    ));
    assert_eq!(current(&mut rx), before);
    assert_eq!(limit_of(&before), None);

    // A Server of that name in another namespace is not the target either.
    let mut elsewhere = server_for("web-http", web(), json!(8080), "HTTP/1", false);
    elsewhere.metadata.namespace = Some("other".into());
    index.write().apply(&elsewhere);
    assert_eq!(current(&mut rx), before);

    index
        .write()
        .apply(&server_for("web-http", web(), json!(8080), "HTTP/1", false));
    let server = current(&mut rx);
    assert_eq!(
        limit_of(&server).and_then(|l| rps(l.total.as_ref())),
        Some(7)
    );
}

#[test]
fn invalid_rate_limits_are_skipped_case_by_case() {
    let index = index_with(json!({}));
    index
        .write()
        .apply(&server_for("web-http", web(), json!(8080), "HTTP/1", false));
    let mut rx = watch(&index, &pod(), 8080);
    let before = current(&mut rx);
    let sa = json!({"kind": "ServiceAccount", "name": "client"});
    for spec in [
        json!({"targetRef": {"group": "", "kind": "Service", "name": "web-http"}}),
        json!({"targetRef": {"kind": "Server", "name": "web-http"}}),
        json!({"targetRef": target("web-http"), "total": {"requestsPerSecond": -1}}),
        json!({"targetRef": target("web-http"), "total": {"requestsPerSecond": 1_u64 << 32}}),
        json!({
            "targetRef": target("web-http"),
            "total": {"requestsPerSecond": 10},
            "identity": {"requestsPerSecond": 11},
        }),
        json!({
            "targetRef": target("web-http"),
            "total": {"requestsPerSecond": 10},
            "overrides": [{"requestsPerSecond": 11, "clientRefs": [sa]}],
        }),
        json!({
            "targetRef": target("web-http"),
            "overrides": [{"requestsPerSecond": 1, "clientRefs": []}],
        }),
        json!({
            "targetRef": target("web-http"),
            "overrides": [{"requestsPerSecond": 1, "clientRefs": [
                sa, {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "x"},
            ]}],
        }),
    ] {
        index
            .write()
            .apply(&rate_limit("bad", json!({}), spec.clone()));
        assert!(!rx.has_changed().unwrap(), "{spec}");
        assert_eq!(current(&mut rx), before, "{spec}");
        assert_eq!(index.read().policy_sizes().invalid_rate_limits, 1, "{spec}");
        index.write().delete::<HttpLocalRateLimitPolicy>(NS, "bad");
    }

    // Kept aside, an invalid policy is counted where a scrape sees it.
    let mut registry = prometheus_client::registry::Registry::default();
    let _metrics = crate::Metrics::register(&mut registry, index.clone());
    index.write().apply(&rate_limit(
        "bad",
        json!({}),
        json!({"targetRef": target("web-http"), "total": {"requestsPerSecond": -1}}),
    ));
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &registry).unwrap();
    for line in [
        r#"destination_index_objects{kind="httplocalratelimitpolicy"} 1"#,
        r#"destination_index_invalid_objects{kind="httplocalratelimitpolicy"} 1"#,
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} in\n{body}");
    }

    // Made valid, the same policy applies.
    index.write().apply(&rate_limit(
        "bad",
        json!({}),
        json!({
            "targetRef": target("web-http"),
            "overrides": [{"requestsPerSecond": 1, "clientRefs": [sa]}],
        }),
    ));
    assert_eq!(limit_of(&current(&mut rx)).unwrap().overrides.len(), 1);
    let sizes = index.read().policy_sizes();
    assert_eq!((sizes.rate_limits, sizes.invalid_rate_limits), (1, 0));
}

#[test]
fn the_oldest_valid_rate_limit_on_a_server_applies() {
    let index = index_with(json!({}));
    index.write().apply(&server_for(
        "web-http",
        web(),
        json!(8080),
        "unknown",
        false,
    ));
    let mut rx = watch(&index, &pod(), 8080);
    let at = |t: &str| json!({"creationTimestamp": t});
    let total =
        |n: u32| json!({"targetRef": target("web-http"), "total": {"requestsPerSecond": n}});
    let applied = |rx: &mut InboundRx| {
        let server = current(rx);
        limit_of(&server).map(|l| meta_name(l.metadata.as_ref()))
    };
    index
        .write()
        .apply(&rate_limit("newer", at("2025-02-01T00:00:00Z"), total(2)));
    index
        .write()
        .apply(&rate_limit("older", at("2025-01-01T00:00:00Z"), total(1)));
    assert_eq!(
        applied(&mut rx).as_deref(),
        Some("HTTPLocalRateLimitPolicy:older")
    );
    // An invalid policy older still does not displace it.
    index.write().apply(&rate_limit(
        "oldest",
        at("2024-01-01T00:00:00Z"),
        json!({"targetRef": target("web-http"), "total": {"requestsPerSecond": -5}}),
    ));
    assert!(!rx.has_changed().unwrap());
    index
        .write()
        .delete::<HttpLocalRateLimitPolicy>(NS, "older");
    assert_eq!(
        applied(&mut rx).as_deref(),
        Some("HTTPLocalRateLimitPolicy:newer")
    );
}

/// A Server on pods `app: web`, port 8080, created at `created` (RFC 3339) when given.
fn web_server_created(name: &str, created: Option<&str>) -> Server {
    let mut server = serde_json::to_value(mk_server(
        name,
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "HTTP/1",
    ))
    .unwrap();
    if let Some(created) = created {
        server["metadata"]["creationTimestamp"] = json!(created);
    }
    serde_json::from_value(server).unwrap()
}

/// Overlapping Servers (which the policy validator refuses, but which can predate it): the one
/// the validator would have admitted applies, the oldest; the first by name among equals; one
/// without a creation time last. Deleting it hands the port to the next.
#[test]
fn of_overlapping_servers_the_oldest_applies() {
    let index = index_with(json!({}));
    let mut rx = watch(&index, &pod(), 8080);
    // Named first, created last.
    index
        .write()
        .apply(&web_server_created("a-newer", Some("2024-06-01T00:00:00Z")));
    index
        .write()
        .apply(&web_server_created("z-older", Some("2024-01-01T00:00:00Z")));
    index.write().apply(&web_server_created("b-unknown", None));
    assert_eq!(server_name(&current(&mut rx)), "server:z-older");

    index.write().delete::<Server>(NS, "z-older");
    assert_eq!(server_name(&current(&mut rx)), "server:a-newer");
    // The same age: the first by name.
    index.write().apply(&web_server_created(
        "0-same-age",
        Some("2024-06-01T00:00:00Z"),
    ));
    assert_eq!(server_name(&current(&mut rx)), "server:0-same-age");
    index.write().delete::<Server>(NS, "0-same-age");
    index.write().delete::<Server>(NS, "a-newer");
    assert_eq!(server_name(&current(&mut rx)), "server:b-unknown");
    index.write().delete::<Server>(NS, "b-unknown");
    assert_eq!(
        server_name(&current(&mut rx)),
        "default:all-unauthenticated"
    );
}
