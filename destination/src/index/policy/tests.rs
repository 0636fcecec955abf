//! Inbound and outbound policy, driven through the index.

use super::*;
use crate::test_util::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use linkerd2_proxy_api::{
    http_route::{HttpRouteMatch, path_match},
    inbound::{authn::Permit, proxy_protocol::Kind as InKind},
    meta::metadata::Kind as MetaKind,
    outbound::proxy_protocol::Kind as OutKind,
};
use oxlink_crds::policy::{
    AuthorizationPolicy, HttpRoute, MeshTlsAuthentication, NetworkAuthentication, Server,
    ServerAuthorization,
};
use serde_json::{Value, json};

fn obj<T: serde::de::DeserializeOwned>(api: &str, kind: &str, name: &str, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": api,
        "kind": kind,
        "metadata": {"namespace": NS, "name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn authz_policy(name: &str, target: Value, refs: Value) -> AuthorizationPolicy {
    obj(
        "policy.linkerd.io/v1alpha1",
        "AuthorizationPolicy",
        name,
        json!({"targetRef": target, "requiredAuthenticationRefs": refs}),
    )
}

fn mtls(name: &str, identities: Value) -> MeshTlsAuthentication {
    obj(
        "policy.linkerd.io/v1alpha1",
        "MeshTLSAuthentication",
        name,
        json!({"identities": identities}),
    )
}

fn route(name: &str, parent: Value, rules: Value) -> HttpRoute {
    obj(
        "policy.linkerd.io/v1beta3",
        "HTTPRoute",
        name,
        json!({"parentRefs": [parent], "rules": rules}),
    )
}

fn server_parent(name: &str) -> Value {
    json!({"group": "policy.linkerd.io", "kind": "Server", "name": name})
}

fn service_parent(name: &str, port: u16) -> Value {
    json!({"group": "core", "kind": "Service", "name": name, "port": port})
}

/// A meshed pod `web-1` (label `app: web`, port `http` 8080) with liveness probe `/live` on
/// `http`, and extra annotations.
fn probed_pod(annotations: Value) -> Pod {
    let mut pod = mk_pod_with("web-1", "10.1.0.1", true, annotations);
    let spec = pod.spec.as_mut().unwrap();
    spec.containers[0].liveness_probe = Some(
        serde_json::from_value(json!({"httpGet": {"path": "/live", "port": "http"}})).unwrap(),
    );
    pod
}

fn pod_key() -> ObjKey {
    ObjKey::new(NS, "web-1")
}

fn index_with_pod(annotations: Value) -> crate::index::SharedIndex {
    let index = mk_index();
    index.write().apply(&probed_pod(annotations));
    index
}

fn labels(server: &inpb::Server) -> (String, String, String) {
    let get = |k: &str| server.labels.get(k).cloned().unwrap_or_default();
    (get("group"), get("kind"), get("name"))
}

fn meta_name(m: &Option<linkerd2_proxy_api::meta::Metadata>) -> String {
    match m.as_ref().and_then(|m| m.kind.as_ref()) {
        Some(MetaKind::Default(name)) => format!("default:{name}"),
        Some(MetaKind::Resource(r)) => format!("{}:{}", r.kind, r.name),
        None => String::new(),
    }
}

fn authz_names(server: &inpb::Server) -> Vec<String> {
    server
        .authorizations
        .iter()
        .map(|a| meta_name(&a.metadata))
        .collect()
}

fn http_routes(server: &inpb::Server) -> &[inpb::HttpRoute] {
    match server.protocol.as_ref().and_then(|p| p.kind.as_ref()) {
        Some(InKind::Detect(d)) => &d.http_routes,
        Some(InKind::Http1(h)) => &h.routes,
        Some(InKind::Http2(h)) => &h.routes,
        _ => &[],
    }
}

fn current(rx: &mut InboundRx) -> inpb::Server {
    rx.borrow_and_update().message.clone()
}

fn exact(m: &HttpRouteMatch) -> Option<&str> {
    match m.path.as_ref()?.kind.as_ref()? {
        path_match::Kind::Exact(p) => Some(p),
        _ => None,
    }
}

#[test]
fn default_policy_admits_everyone_and_probes() {
    let index = index_with_pod(json!({}));
    let mut rx = index.write().watch_inbound(&pod_key(), 8080).unwrap();
    let server = current(&mut rx);
    assert_eq!(
        labels(&server),
        ("".into(), "default".into(), "all-unauthenticated".into())
    );
    let [authz] = server.authorizations.as_slice() else {
        panic!("{:?}", server.authorizations)
    };
    assert_eq!(authz.networks.len(), 2, "0.0.0.0/0 and ::/0");
    assert!(matches!(
        authz.authentication.as_ref().unwrap().permit,
        Some(Permit::Unauthenticated(_))
    ));
    let Some(InKind::Detect(detect)) = server.protocol.as_ref().unwrap().kind.as_ref() else {
        panic!("not detect: {server:?}")
    };
    assert_eq!(detect.timeout.unwrap().seconds, 10);
    let routes: Vec<String> = detect
        .http_routes
        .iter()
        .map(|r| meta_name(&r.metadata))
        .collect();
    assert_eq!(routes, ["default:default", "default:probe"]);
    let probe = &detect.http_routes[1];
    assert_eq!(exact(&probe.rules[0].matches[0]), Some("/live"));
    assert!(probe.rules[0].matches[0].method.is_some());
    assert_eq!(authz_names_of(&probe.authorizations), ["default:probe"]);

    // Another port has no probe route; a default opaque port is opaque.
    let other = current(&mut index.write().watch_inbound(&pod_key(), 9090).unwrap());
    assert_eq!(http_routes(&other).len(), 1);
    let opaque = current(&mut index.write().watch_inbound(&pod_key(), 3306).unwrap());
    assert!(matches!(
        opaque.protocol.unwrap().kind,
        Some(InKind::Opaque(_))
    ));
}

#[test]
fn a_native_sidecars_startup_probe_is_a_probe_route_under_deny() {
    // The injected proxy is an init container whose startup probe is `/ready` on its admin
    // port: under `deny` it must still be admitted, or the pod never starts.
    let mut pod = probed_pod(json!({"config.linkerd.io/default-inbound-policy": "deny"}));
    let spec = pod.spec.as_mut().unwrap();
    spec.init_containers = Some(vec![
        serde_json::from_value(json!({
            "name": "linkerd-proxy",
            "restartPolicy": "Always",
            "ports": [{"name": "linkerd-admin", "containerPort": 4191}],
            "startupProbe": {"httpGet": {"path": "/ready", "port": "linkerd-admin"}},
            "livenessProbe": {"httpGet": {"path": "/live?verbose=1", "port": 4191}},
        }))
        .unwrap(),
    ]);
    let index = mk_index();
    index.write().apply(&pod);
    let admin = current(&mut index.write().watch_inbound(&pod_key(), 4191).unwrap());
    let routes = http_routes(&admin);
    let probe = routes
        .iter()
        .find(|r| meta_name(&r.metadata) == "default:probe")
        .expect("a probe route on the admin port");
    let mut paths: Vec<&str> = probe.rules[0].matches.iter().filter_map(exact).collect();
    paths.sort();
    assert_eq!(paths, ["/live", "/ready"]);
    assert_eq!(authz_names_of(&probe.authorizations), ["default:probe"]);
    // A named port resolves in the probe's own container only: `linkerd-admin` is not `http`.
    let app = current(&mut index.write().watch_inbound(&pod_key(), 8080).unwrap());
    let app_probe = http_routes(&app)
        .iter()
        .find(|r| meta_name(&r.metadata) == "default:probe")
        .expect("the app's probe route");
    let paths: Vec<&str> = app_probe.rules[0]
        .matches
        .iter()
        .filter_map(exact)
        .collect();
    assert_eq!(paths, ["/live"]);
}

fn authz_names_of(authzs: &[inpb::Authz]) -> Vec<String> {
    authzs.iter().map(|a| meta_name(&a.metadata)).collect()
}

#[test]
fn every_default_policy_by_annotation() {
    for policy in DefaultPolicy::ALL {
        let index =
            index_with_pod(json!({"config.linkerd.io/default-inbound-policy": policy.name()}));
        let server = current(&mut index.write().watch_inbound(&pod_key(), 8080).unwrap());
        assert_eq!(labels(&server).2, policy.name());
        let authn: Vec<_> = server
            .authorizations
            .iter()
            .map(|a| a.authentication.clone().unwrap().permit.unwrap())
            .collect();
        let nets: Vec<usize> = server
            .authorizations
            .iter()
            .map(|a| a.networks.len())
            .collect();
        match policy {
            DefaultPolicy::Deny => assert!(authn.is_empty()),
            DefaultPolicy::AllUnauthenticated | DefaultPolicy::Audit => {
                assert!(matches!(authn[..], [Permit::Unauthenticated(_)]));
                assert_eq!(nets, [2]);
            }
            DefaultPolicy::AllAuthenticated => {
                assert!(matches!(authn[..], [Permit::MeshTls(_)]));
                assert_eq!(nets, [2]);
            }
            DefaultPolicy::ClusterUnauthenticated => {
                assert!(matches!(authn[..], [Permit::Unauthenticated(_)]));
                assert_eq!(nets, [5]);
            }
            DefaultPolicy::ClusterAuthenticated => {
                assert!(matches!(authn[..], [Permit::MeshTls(_)]));
                assert_eq!(nets, [5]);
            }
        }
        assert_eq!(
            authz_names(&server),
            match policy {
                DefaultPolicy::Deny => vec![],
                p => vec![format!("default:{}", p.name())],
            }
        );
    }
}

#[test]
fn bad_annotation_falls_back_and_required_identity_authenticates() {
    let index = index_with_pod(json!({
        "config.linkerd.io/default-inbound-policy": "allow-all",
        "config.linkerd.io/proxy-require-identity-inbound-ports": "9090",
    }));
    let server = current(&mut index.write().watch_inbound(&pod_key(), 8080).unwrap());
    assert_eq!(labels(&server).2, "all-unauthenticated");
    let server = current(&mut index.write().watch_inbound(&pod_key(), 9090).unwrap());
    assert_eq!(labels(&server).2, "all-authenticated");
}

#[test]
fn cluster_default_comes_from_config() {
    let mut config = crate::index::Config::default();
    config.policy.default_policy = DefaultPolicy::Deny;
    let index = crate::index::Index::shared(config);
    index.write().apply(&probed_pod(json!({})));
    let server = current(&mut index.write().watch_inbound(&pod_key(), 8080).unwrap());
    assert_eq!(labels(&server).2, "deny");
    assert!(server.authorizations.is_empty());
    // The probe route still admits probes.
    assert_eq!(http_routes(&server).len(), 2);
}

#[test]
fn unknown_pod_is_not_found() {
    let index = mk_index();
    let err = index.write().watch_inbound(&pod_key(), 8080).unwrap_err();
    assert_eq!(err, PolicyError::PodNotFound(pod_key()));
    assert_eq!(index.read().policy_sizes().inbound_keys, 0);
}

#[test]
fn server_appears_changes_and_disappears() {
    let index = index_with_pod(json!({}));
    let mut rx = index.write().watch_inbound(&pod_key(), 8080).unwrap();
    let first = current(&mut rx);
    assert_eq!(labels(&first).1, "default");

    // A Server selecting the pod's named port takes over, with no authorizations.
    index.write().apply(&mk_server(
        "web-http",
        json!({"matchLabels": {"app": "web"}}),
        json!("http"),
        "HTTP/1",
    ));
    assert!(rx.has_changed().unwrap());
    let server = current(&mut rx);
    assert_eq!(
        labels(&server),
        (
            "policy.linkerd.io".into(),
            "server".into(),
            "web-http".into()
        )
    );
    assert!(matches!(
        server.protocol.as_ref().unwrap().kind,
        Some(InKind::Http1(_))
    ));
    assert!(server.authorizations.is_empty());

    // A Server for another port or other pods changes nothing.
    index.write().apply(&mk_server(
        "other",
        json!({"matchLabels": {"app": "db"}}),
        json!(8080),
        "opaque",
    ));
    assert!(!rx.has_changed().unwrap());

    // Changing the protocol updates the policy.
    index.write().apply(&mk_server(
        "web-http",
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "opaque",
    ));
    assert!(matches!(
        current(&mut rx).protocol.unwrap().kind,
        Some(InKind::Opaque(_))
    ));

    index.write().delete::<Server>(NS, "web-http");
    assert_eq!(current(&mut rx), first);
}

#[test]
fn authorization_policy_with_mesh_tls() {
    let index = index_with_pod(json!({}));
    index.write().apply(&mk_server(
        "web-http",
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "unknown",
    ));
    let mut rx = index.write().watch_inbound(&pod_key(), 8080).unwrap();
    assert!(current(&mut rx).authorizations.is_empty());

    // A policy whose authentication does not exist yet authorizes no one.
    let policy = authz_policy(
        "web-authz",
        json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web-http"}),
        json!([{"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "clients"}]),
    );
    index.write().apply(&policy);
    assert!(current(&mut rx).authorizations.is_empty());

    index.write().apply(&mtls(
        "clients",
        json!([
            "client.ns.serviceaccount.identity.linkerd.cluster.local",
            "*.other.example"
        ]),
    ));
    let server = current(&mut rx);
    assert_eq!(
        authz_names(&server),
        ["authorizationpolicy:web-authz".to_string()]
    );
    let authz = &server.authorizations[0];
    assert_eq!(authz.labels["kind"], "authorizationpolicy");
    assert_eq!(authz.networks.len(), 5, "cluster networks");
    let Some(Permit::MeshTls(tls)) = &authz.authentication.as_ref().unwrap().permit else {
        panic!("{authz:?}")
    };
    let Some(inpb::authn::permit_mesh_tls::Clients::Identities(ids)) = &tls.clients else {
        panic!("{tls:?}")
    };
    assert_eq!(
        ids.identities[0].name,
        "client.ns.serviceaccount.identity.linkerd.cluster.local"
    );
    assert_eq!(ids.suffixes[0].parts, ["other", "example"]);

    // A NetworkAuthentication narrows the networks.
    index.write().apply::<NetworkAuthentication>(&obj(
        "policy.linkerd.io/v1alpha1",
        "NetworkAuthentication",
        "office",
        json!({"networks": [{"cidr": "192.0.2.0/24", "except": ["192.0.2.1"]}]}),
    ));
    index.write().apply(&authz_policy(
        "web-authz",
        json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web-http"}),
        json!([
            {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "clients"},
            {"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": "office"},
        ]),
    ));
    let server = current(&mut rx);
    assert_eq!(server.authorizations[0].networks.len(), 1);
    assert_eq!(server.authorizations[0].networks[0].except.len(), 1);

    index.write().delete::<AuthorizationPolicy>(NS, "web-authz");
    assert!(current(&mut rx).authorizations.is_empty());
}

#[test]
fn namespace_policies_and_server_authorizations() {
    let index = index_with_pod(json!({}));
    index.write().apply(&mk_server(
        "web-http",
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "unknown",
    ));
    let mut rx = index.write().watch_inbound(&pod_key(), 8080).unwrap();
    index.write().apply(&authz_policy(
        "ns-wide",
        json!({"kind": "Namespace", "name": NS}),
        json!([{"kind": "ServiceAccount", "name": "client"}]),
    ));
    index.write().apply::<ServerAuthorization>(&obj(
        "policy.linkerd.io/v1beta1",
        "ServerAuthorization",
        "legacy",
        json!({
            "server": {"name": "web-http"},
            "client": {"unauthenticated": true, "networks": [{"cidr": "10.0.0.0/8"}]},
        }),
    ));
    let server = current(&mut rx);
    assert_eq!(
        authz_names(&server),
        ["authorizationpolicy:ns-wide", "serverauthorization:legacy"]
    );
    let saz = &server.authorizations[1];
    assert_eq!(saz.networks.len(), 1);
    assert!(matches!(
        saz.authentication.as_ref().unwrap().permit,
        Some(Permit::Unauthenticated(_))
    ));
}

#[test]
fn http_routes_with_a_server_parent() {
    let index = index_with_pod(json!({}));
    index.write().apply(&mk_server(
        "web-http",
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "HTTP/2",
    ));
    let mut rx = index.write().watch_inbound(&pod_key(), 8080).unwrap();
    assert_eq!(
        http_routes(&current(&mut rx))
            .iter()
            .map(|r| meta_name(&r.metadata))
            .collect::<Vec<_>>(),
        ["default:default", "default:probe"]
    );
    index.write().apply(&route(
        "api",
        server_parent("web-http"),
        json!([{"matches": [{"path": {"type": "Exact", "value": "/api"}, "method": "POST"}]}]),
    ));
    index.write().apply(&authz_policy(
        "api-authz",
        json!({"group": "policy.linkerd.io", "kind": "HTTPRoute", "name": "api"}),
        json!([{"kind": "ServiceAccount", "name": "client"}]),
    ));
    let server = current(&mut rx);
    let [api] = http_routes(&server) else {
        panic!("{server:?}")
    };
    assert_eq!(meta_name(&api.metadata), "HTTPRoute:api");
    assert_eq!(exact(&api.rules[0].matches[0]), Some("/api"));
    assert_eq!(
        authz_names_of(&api.authorizations),
        ["authorizationpolicy:api-authz"]
    );
    // Route authorizations are not server authorizations.
    assert!(server.authorizations.is_empty());
}

#[test]
fn subscribers_share_one_encoded_snapshot() {
    let index = index_with_pod(json!({}));
    let a = index.write().watch_inbound(&pod_key(), 8080).unwrap();
    let b = index.read().existing_inbound(&pod_key(), 8080).unwrap();
    assert!(Arc::ptr_eq(&a.borrow(), &b.borrow()));
    let snapshot = a.borrow().clone();
    assert_eq!(
        crate::frame::unframed(&snapshot.framed).unwrap(),
        snapshot.message.encode_to_vec()
    );
    assert_eq!(index.read().policy_sizes().inbound_keys, 1);
}

#[test]
fn pod_changes_update_its_policy() {
    let index = index_with_pod(json!({}));
    let mut rx = index.write().watch_inbound(&pod_key(), 8080).unwrap();
    assert_eq!(labels(&current(&mut rx)).2, "all-unauthenticated");
    index.write().apply(&probed_pod(
        json!({"config.linkerd.io/default-inbound-policy": "cluster-authenticated"}),
    ));
    assert_eq!(labels(&current(&mut rx)).2, "cluster-authenticated");
}

// === outbound ===

fn web_service() -> Service {
    mk_service(
        "web",
        "10.96.0.10",
        &[("http", 80, json!(8080)), ("db", 3306, json!(3306))],
    )
}

fn outbound_kind(policy: &outpb::OutboundPolicy) -> &OutKind {
    policy.protocol.as_ref().unwrap().kind.as_ref().unwrap()
}

fn outbound_routes(policy: &outpb::OutboundPolicy) -> Vec<outpb::HttpRoute> {
    match outbound_kind(policy) {
        OutKind::Detect(d) => d.http1.clone().unwrap().routes,
        other => panic!("not detect: {other:?}"),
    }
}

fn addr(s: &str) -> OutboundTarget {
    OutboundTarget::Addr(s.parse().unwrap())
}

#[test]
fn outbound_default_policy_and_opaque_ports() {
    let index = mk_index();
    index.write().apply(&web_service());
    let rx = index
        .write()
        .watch_outbound(&addr("10.96.0.10:80"))
        .unwrap();
    let policy = rx.borrow().message.clone();
    let Some(MetaKind::Resource(meta)) = policy.metadata.as_ref().unwrap().kind.as_ref() else {
        panic!("{policy:?}")
    };
    assert_eq!(
        (
            meta.group.as_str(),
            meta.kind.as_str(),
            meta.name.as_str(),
            meta.namespace.as_str(),
            meta.port
        ),
        ("core", "Service", "web", NS, 80)
    );
    let routes = outbound_routes(&policy);
    let [route] = routes.as_slice() else {
        panic!("{routes:?}")
    };
    assert_eq!(meta_name(&route.metadata), "default:http");
    let backends = route.rules[0].backends.clone().unwrap().kind.unwrap();
    let outpb::http_route::distribution::Kind::FirstAvailable(first) = backends else {
        panic!("{backends:?}")
    };
    let backend = first.backends[0].backend.clone().unwrap();
    assert_eq!(meta_name(&backend.metadata), "default:service");
    assert_eq!(backend.queue.unwrap().capacity, 100);
    let Some(outpb::backend::Kind::Balancer(balancer)) = backend.kind else {
        panic!("no balancer")
    };
    let Some(outpb::backend::endpoint_discovery::Kind::Dst(dst)) = balancer.discovery.unwrap().kind
    else {
        panic!("no discovery")
    };
    assert_eq!(dst.path, "web.ns.svc.cluster.local:80");

    let opaque = index
        .write()
        .watch_outbound(&addr("10.96.0.10:3306"))
        .unwrap();
    assert!(matches!(
        outbound_kind(&opaque.borrow().message),
        OutKind::Opaque(_)
    ));

    // The same policy by name, on the same channel.
    let by_name = index
        .write()
        .watch_outbound(&OutboundTarget::Service(ObjKey::new(NS, "web"), 80))
        .unwrap();
    assert!(Arc::ptr_eq(&by_name.borrow(), &rx.borrow()));
}

#[test]
fn outbound_unknown_targets_are_errors() {
    let index = mk_index();
    index.write().apply(&web_service());
    assert_eq!(
        index
            .write()
            .watch_outbound(&addr("10.1.0.1:80"))
            .unwrap_err(),
        PolicyError::NoService("10.1.0.1:80".parse().unwrap())
    );
    let missing = ObjKey::new(NS, "nope");
    assert_eq!(
        index
            .write()
            .watch_outbound(&OutboundTarget::Service(missing.clone(), 80))
            .unwrap_err(),
        PolicyError::ServiceNotFound(missing)
    );
    assert_eq!(index.read().policy_sizes().outbound_keys, 0);
}

#[test]
fn outbound_http_routes_appear_and_disappear() {
    let index = mk_index();
    index.write().apply(&web_service());
    index.write().apply(&mk_service(
        "web-v2",
        "10.96.0.11",
        &[("http", 80, json!(8080))],
    ));
    let mut rx = index
        .write()
        .watch_outbound(&addr("10.96.0.10:80"))
        .unwrap();
    let first = rx.borrow_and_update().clone();

    index.write().apply(&route(
        "split",
        service_parent("web", 80),
        json!([{
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "backendRefs": [
                {"name": "web", "port": 80, "weight": 90},
                {"name": "web-v2", "port": 80, "weight": 10},
                {"name": "missing", "port": 80, "weight": 1},
            ],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-split", "value": "1"}]}}],
            "timeouts": {"request": "5s"},
        }]),
    ));
    assert!(rx.has_changed().unwrap());
    let policy = rx.borrow_and_update().message.clone();
    let routes = outbound_routes(&policy);
    let [split] = routes.as_slice() else {
        panic!("{routes:?}")
    };
    assert_eq!(meta_name(&split.metadata), "HTTPRoute:split");
    let rule = &split.rules[0];
    assert_eq!(rule.filters.len(), 1);
    assert_eq!(rule.timeouts.unwrap().request.unwrap().seconds, 5);
    let Some(outpb::http_route::distribution::Kind::RandomAvailable(random)) =
        rule.backends.clone().unwrap().kind
    else {
        panic!("{rule:?}")
    };
    let weights: Vec<u32> = random.backends.iter().map(|b| b.weight).collect();
    assert_eq!(weights, [90, 10, 1]);
    let missing = random.backends[2].backend.clone().unwrap();
    assert!(missing.backend.unwrap().kind.is_none());
    assert!(matches!(
        missing.filters[0].kind,
        Some(outpb::http_route::filter::Kind::FailureInjector(_))
    ));

    // A route for another port does not apply.
    index.write().apply(&route(
        "other-port",
        service_parent("web", 8443),
        json!([{}]),
    ));
    assert!(!rx.has_changed().unwrap());

    index.write().delete::<HttpRoute>(NS, "split");
    assert_eq!(rx.borrow_and_update().message, first.message);
}

#[test]
fn outbound_failure_accrual_from_annotations() {
    let index = mk_index();
    let mut svc = web_service();
    svc.metadata.annotations = Some(
        [
            ("balancer.linkerd.io/failure-accrual", "consecutive"),
            (
                "balancer.linkerd.io/failure-accrual-consecutive-max-failures",
                "3",
            ),
            (
                "balancer.linkerd.io/failure-accrual-consecutive-min-penalty",
                "2s",
            ),
            (
                "balancer.linkerd.io/failure-accrual-consecutive-max-penalty",
                "bogus",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    index.write().apply(&web_service());
    let mut rx = index
        .write()
        .watch_outbound(&addr("10.96.0.10:80"))
        .unwrap();
    let OutKind::Detect(detect) = outbound_kind(&rx.borrow_and_update().message).clone() else {
        panic!()
    };
    assert!(detect.http1.unwrap().failure_accrual.is_none());
    index.write().apply(&svc);
    assert!(rx.has_changed().unwrap());
    let OutKind::Detect(detect) = outbound_kind(&rx.borrow_and_update().message).clone() else {
        panic!()
    };
    let accrual = detect.http2.unwrap().failure_accrual.unwrap();
    let Some(outpb::failure_accrual::Kind::ConsecutiveFailures(c)) = accrual.kind else {
        panic!()
    };
    assert_eq!(c.max_failures, 3);
    let backoff = c.backoff.unwrap();
    assert_eq!(backoff.min_backoff.unwrap().seconds, 2);
    assert_eq!(
        backoff.max_backoff.unwrap().seconds,
        60,
        "malformed → default"
    );
    assert_eq!(backoff.jitter_ratio, 0.5);
}

#[test]
fn cidrs_and_policies_parse_precisely() {
    assert_eq!(
        "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
        "10.0.0.0/8"
    );
    assert_eq!("::1".parse::<Cidr>().unwrap().prefix, 128);
    assert_eq!(
        "10.0.0.0/33".parse::<Cidr>(),
        Err(ParseCidrError::Prefix("10.0.0.0/33".into()))
    );
    assert_eq!(
        "ten/8".parse::<Cidr>(),
        Err(ParseCidrError::Addr("ten".into()))
    );
    assert!("allow".parse::<DefaultPolicy>().is_err());
    for p in DefaultPolicy::ALL {
        assert_eq!(p.name().parse::<DefaultPolicy>(), Ok(p));
    }
}

#[test]
fn outbound_timeouts_from_annotations_yield_to_the_route() {
    let index = mk_index();
    let mut svc = web_service();
    svc.metadata.annotations = Some(
        [
            ("timeout.linkerd.io/request", "10s"),
            ("timeout.linkerd.io/response", "2s"),
            ("timeout.linkerd.io/idle", "soon"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    index.write().apply(&svc);
    let mut rx = index
        .write()
        .watch_outbound(&addr("10.96.0.10:80"))
        .unwrap();
    let routes = outbound_routes(&rx.borrow_and_update().message);
    let timeouts = routes[0].rules[0].timeouts.unwrap();
    assert_eq!(timeouts.request.unwrap().seconds, 10);
    assert_eq!(timeouts.response.unwrap().seconds, 2);
    assert_eq!(timeouts.idle, None, "malformed → none");

    index.write().apply(&route(
        "short",
        service_parent("web", 80),
        json!([{"timeouts": {"request": "1s"}}]),
    ));
    let routes = outbound_routes(&rx.borrow_and_update().message);
    let timeouts = routes[0].rules[0].timeouts.unwrap();
    assert_eq!(timeouts.request.unwrap().seconds, 1);
    assert_eq!(
        timeouts.response, None,
        "a route's timeouts replace the Service's, as in Linkerd"
    );
}

#[test]
fn grpc_servers_get_a_default_route_and_access_policy_admits() {
    let index = index_with_pod(json!({}));
    let mut server: Server = mk_server(
        "web-grpc",
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "gRPC",
    );
    server.spec.access_policy = oxlink_crds::policy::AccessPolicy::ClusterUnauthenticated;
    index.write().apply(&server);
    let policy = current(&mut index.write().watch_inbound(&pod_key(), 8080).unwrap());
    let Some(InKind::Grpc(grpc)) = policy.protocol.as_ref().unwrap().kind.as_ref() else {
        panic!("{policy:?}")
    };
    assert_eq!(meta_name(&grpc.routes[0].metadata), "default:default");
    assert_eq!(authz_names(&policy), ["default:cluster-unauthenticated"]);
}
