//! TrafficSplits served through the index: profiles' dstOverrides and the default outbound
//! route's weighted backends, followed by open subscriptions.

use crate::{
    index::{
        ObjKey, ProfileRx, ProfileTarget, SharedIndex,
        policy::{OutboundRx, OutboundTarget},
    },
    test_util::*,
};
use linkerd2_proxy_api::outbound as opb;
use oxlink_crds::TrafficSplit;
use serde_json::{Value, json};

/// A TrafficSplit of apex `web` in [`NS`] as `version` (`v1alpha1` or `v1alpha2`) spells it.
fn mk_split(name: &str, version: &str, backends: Value) -> TrafficSplit {
    serde_json::from_value(json!({
        "apiVersion": format!("split.smi-spec.io/{version}"),
        "kind": "TrafficSplit",
        "metadata": {"namespace": NS, "name": name},
        "spec": {"service": "web", "backends": backends},
    }))
    .unwrap()
}

/// The v1alpha2 shape: integer weights.
fn split_v2(weights: [(&str, i64); 2]) -> TrafficSplit {
    let backends: Vec<Value> = weights
        .iter()
        .map(|(svc, w)| json!({"service": svc, "weight": w}))
        .collect();
    mk_split("web-split", "v1alpha2", json!(backends))
}

/// Services `web` (the apex), `web-v1` and `web-v2`, each on port 80.
fn index() -> SharedIndex {
    let index = mk_index();
    for (name, ip) in [
        ("web", "10.96.0.10"),
        ("web-v1", "10.96.0.11"),
        ("web-v2", "10.96.0.12"),
    ] {
        index
            .write()
            .apply(&mk_service(name, ip, &[("http", 80, json!(8080))]));
    }
    index
}

fn web_key() -> ObjKey {
    ObjKey::new(NS, "web")
}

fn watch_profile(index: &SharedIndex) -> ProfileRx {
    index
        .write()
        .watch_profile(&ProfileTarget::Service(web_key(), 80), None)
}

fn watch_outbound(index: &SharedIndex) -> OutboundRx {
    index
        .write()
        .watch_outbound(&OutboundTarget::Service(web_key(), 80))
        .unwrap()
}

/// The profile's dstOverrides as (authority, weight), marking the update seen.
fn overrides(rx: &mut ProfileRx) -> Vec<(String, u32)> {
    rx.borrow_and_update()
        .dst_overrides
        .iter()
        .map(|d| (d.authority.clone(), d.weight))
        .collect()
}

fn authority(svc: &str) -> String {
    format!("{svc}.{NS}.svc.cluster.local:80")
}

/// The default HTTP route's backends as (Destination.Get path, weight), or the one
/// first-available backend with weight 0, marking the update seen.
fn route_backends(rx: &mut OutboundRx) -> Vec<(String, u32)> {
    use opb::{
        backend::Kind as BackendKind, backend::endpoint_discovery::Kind as Discovery,
        http_route::distribution::Kind, proxy_protocol::Kind as Protocol,
    };
    let policy = rx.borrow_and_update().message.clone();
    let Some(Protocol::Detect(detect)) = policy.protocol.unwrap().kind else {
        panic!("not a detect policy")
    };
    let routes = detect.http1.unwrap().routes;
    let [route] = routes.as_slice() else {
        panic!("{routes:?}")
    };
    let path = |b: &opb::http_route::RouteBackend| {
        let Some(BackendKind::Balancer(balancer)) = b.backend.clone().unwrap().kind else {
            panic!("{b:?}")
        };
        let Some(Discovery::Dst(dst)) = balancer.discovery.unwrap().kind else {
            panic!("{b:?}")
        };
        dst.path
    };
    match route.rules[0].backends.clone().unwrap().kind.unwrap() {
        Kind::FirstAvailable(first) => first.backends.iter().map(|b| (path(b), 0)).collect(),
        Kind::RandomAvailable(random) => random
            .backends
            .iter()
            .map(|b| (path(b.backend.as_ref().unwrap()), b.weight))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn weight_changes_reach_open_profile_and_outbound_streams() {
    let index = index();
    let mut profile = watch_profile(&index);
    let mut outbound = watch_outbound(&index);
    assert!(overrides(&mut profile).is_empty());
    assert_eq!(route_backends(&mut outbound), [(authority("web"), 0)]);

    for (v1, v2) in [(90, 10), (50, 50), (0, 100)] {
        index
            .write()
            .apply(&split_v2([("web-v1", v1), ("web-v2", v2)]));
        assert!(profile.has_changed().unwrap(), "{v1}/{v2}");
        assert!(outbound.has_changed().unwrap(), "{v1}/{v2}");
        // An integer weight is a quantity of whole units: ten thousand each.
        let expected = [
            (authority("web-v1"), u32::try_from(v1).unwrap() * 10_000),
            (authority("web-v2"), u32::try_from(v2).unwrap() * 10_000),
        ];
        assert_eq!(overrides(&mut profile), expected);
        assert_eq!(route_backends(&mut outbound), expected);
    }

    // The same split again changes nothing.
    index
        .write()
        .apply(&split_v2([("web-v1", 0), ("web-v2", 100)]));
    assert!(!profile.has_changed().unwrap());
    assert!(!outbound.has_changed().unwrap());
}

#[test]
fn deleting_the_split_restores_the_apex() {
    let index = index();
    index
        .write()
        .apply(&split_v2([("web-v1", 90), ("web-v2", 10)]));
    let mut profile = watch_profile(&index);
    let mut outbound = watch_outbound(&index);
    assert_eq!(overrides(&mut profile).len(), 2);
    assert_eq!(route_backends(&mut outbound).len(), 2);

    index.write().delete::<TrafficSplit>(NS, "web-split");
    assert!(profile.has_changed().unwrap());
    assert!(overrides(&mut profile).is_empty());
    assert_eq!(route_backends(&mut outbound), [(authority("web"), 0)]);
    assert_eq!(index.read().sizes().traffic_splits, 0);
}

#[test]
fn v1alpha1_quantity_weights() {
    let index = index();
    let mut profile = watch_profile(&index);
    index.write().apply(&mk_split(
        "web-split",
        "v1alpha1",
        json!([
            {"service": "web-v1", "weight": "500m"},
            {"service": "web-v2", "weight": "1500m"},
        ]),
    ));
    assert_eq!(
        overrides(&mut profile),
        [(authority("web-v1"), 5_000), (authority("web-v2"), 15_000)]
    );
    // Integers (v1alpha2) are whole units.
    index.write().apply(&mk_split(
        "web-split",
        "v1alpha2",
        json!([{"service": "web-v1", "weight": 1}, {"service": "web-v2", "weight": 3}]),
    ));
    assert_eq!(
        overrides(&mut profile),
        [(authority("web-v1"), 10_000), (authority("web-v2"), 30_000)]
    );
}

#[test]
fn the_requested_port_names_the_backends() {
    let index = index();
    index
        .write()
        .apply(&split_v2([("web-v1", 1), ("web-v2", 1)]));
    let rx = index
        .write()
        .watch_profile(&ProfileTarget::Service(web_key(), 8080), None);
    let authorities: Vec<String> = rx
        .borrow()
        .dst_overrides
        .iter()
        .map(|d| d.authority.clone())
        .collect();
    assert_eq!(
        authorities,
        [
            format!("web-v1.{NS}.svc.cluster.local:8080"),
            format!("web-v2.{NS}.svc.cluster.local:8080"),
        ]
    );
    // Asked for by cluster IP, the apex gets the split too.
    let rx = index
        .write()
        .watch_profile(&ProfileTarget::Addr("10.96.0.10:80".parse().unwrap()), None);
    assert_eq!(rx.borrow().dst_overrides.len(), 2);
}

#[test]
fn a_missing_backend_is_skipped_and_counted() {
    let index = index();
    let mut profile = watch_profile(&index);
    let mut outbound = watch_outbound(&index);
    index
        .write()
        .apply(&split_v2([("web-v1", 90), ("gone", 10)]));
    assert_eq!(overrides(&mut profile), [(authority("web-v1"), 900_000)]);
    assert_eq!(
        route_backends(&mut outbound),
        [(authority("web-v1"), 900_000)]
    );
    assert_eq!(index.read().sizes().invalid_traffic_splits, 1);

    // The Service appears: the split follows.
    index.write().apply(&mk_service(
        "gone",
        "10.96.0.13",
        &[("http", 80, json!(8080))],
    ));
    assert!(profile.has_changed().unwrap());
    assert_eq!(
        overrides(&mut profile),
        [(authority("web-v1"), 900_000), (authority("gone"), 100_000)]
    );
    assert_eq!(route_backends(&mut outbound).len(), 2);
    assert_eq!(index.read().sizes().invalid_traffic_splits, 0);

    // And leaves with it.
    index
        .write()
        .delete::<k8s_openapi::api::core::v1::Service>(NS, "gone");
    assert_eq!(overrides(&mut profile), [(authority("web-v1"), 900_000)]);
    assert_eq!(index.read().sizes().invalid_traffic_splits, 1);
}

#[test]
fn a_split_without_a_valid_backend_leaves_the_apex_alone() {
    let index = index();
    let mut profile = watch_profile(&index);
    let mut outbound = watch_outbound(&index);
    index.write().apply(&mk_split(
        "web-split",
        "v1alpha1",
        json!([
            {"service": "gone", "weight": 1},
            {"service": "web-v1", "weight": "lots"},
            {"service": "web-v2", "weight": 0},
        ]),
    ));
    assert!(overrides(&mut profile).is_empty());
    assert_eq!(route_backends(&mut outbound), [(authority("web"), 0)]);
    assert_eq!(index.read().sizes().invalid_traffic_splits, 1);
}

#[test]
fn the_split_replaces_the_profiles_overrides_unless_it_opts_out() {
    let index = index();
    let spec = json!({"dstOverrides": [{"authority": "web-v1.ns.svc.cluster.local", "weight": 1}]});
    index
        .write()
        .apply(&mk_profile(NS, "web.ns.svc.cluster.local", spec.clone()));
    let mut profile = watch_profile(&index);
    assert_eq!(overrides(&mut profile), [(authority("web-v1"), 10_000)]);

    index
        .write()
        .apply(&split_v2([("web-v1", 1), ("web-v2", 1)]));
    assert_eq!(
        overrides(&mut profile),
        [(authority("web-v1"), 10_000), (authority("web-v2"), 10_000)]
    );

    // `smi.linkerd.io/skip` keeps the profile's own.
    let mut skip = mk_profile(NS, "web.ns.svc.cluster.local", spec);
    skip.metadata.annotations = Some([("smi.linkerd.io/skip".into(), "true".into())].into());
    index.write().apply(&skip);
    assert_eq!(overrides(&mut profile), [(authority("web-v1"), 10_000)]);

    // The profile of a client's own namespace is not the split's to change.
    index.write().apply(&mk_profile(
        "client",
        "web.ns.svc.cluster.local",
        json!({"routes": []}),
    ));
    let client = index
        .write()
        .watch_profile(&ProfileTarget::Service(web_key(), 80), Some("client"));
    assert!(client.borrow().dst_overrides.is_empty());
}

#[test]
fn the_oldest_split_of_an_apex_wins() {
    let index = index();
    let mut profile = watch_profile(&index);
    let mut newer = split_v2([("web-v2", 1), ("web-v1", 1)]);
    newer.metadata.name = Some("newer".into());
    newer.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-02T00:00:00Z".parse().unwrap(),
    ));
    let mut older = split_v2([("web-v1", 1), ("web-v2", 1)]);
    older.metadata.name = Some("older".into());
    older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:00:00Z".parse().unwrap(),
    ));
    index.write().apply(&newer);
    assert_eq!(overrides(&mut profile)[0].0, authority("web-v2"));
    index.write().apply(&older);
    assert_eq!(overrides(&mut profile)[0].0, authority("web-v1"));
    index.write().delete::<TrafficSplit>(NS, "older");
    assert_eq!(overrides(&mut profile)[0].0, authority("web-v2"));
}

#[test]
fn routes_still_win_over_the_split_in_outbound_policy() {
    let index = index();
    index
        .write()
        .apply(&split_v2([("web-v1", 1), ("web-v2", 1)]));
    index.write().apply(
        &serde_json::from_value::<oxlink_crds::policy::HttpRoute>(json!({
            "apiVersion": "policy.linkerd.io/v1beta3",
            "kind": "HTTPRoute",
            "metadata": {"namespace": NS, "name": "r"},
            "spec": {
                "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 80}],
                "rules": [{}],
            },
        }))
        .unwrap(),
    );
    let mut outbound = watch_outbound(&index);
    // The route's rule without backendRefs goes to its parent, the apex.
    assert_eq!(route_backends(&mut outbound), [(authority("web"), 0)]);
}

#[test]
fn opaque_connections_split_too() {
    use opb::{
        backend::Kind as BackendKind, backend::endpoint_discovery::Kind as Discovery,
        opaque_route::distribution::Kind, proxy_protocol::Kind as Protocol,
    };
    let index = mk_index();
    let mut web = mk_service("web", "10.96.0.10", &[("db", 5432, json!(5432))]);
    web.metadata.annotations =
        Some([("config.linkerd.io/opaque-ports".into(), "5432".into())].into());
    index.write().apply(&web);
    for (name, ip) in [("web-v1", "10.96.0.11"), ("web-v2", "10.96.0.12")] {
        index
            .write()
            .apply(&mk_service(name, ip, &[("db", 5432, json!(5432))]));
    }
    index
        .write()
        .apply(&split_v2([("web-v1", 3), ("web-v2", 1)]));
    let rx = index
        .write()
        .watch_outbound(&OutboundTarget::Service(web_key(), 5432))
        .unwrap();
    let policy = rx.borrow().message.clone();
    let Some(Protocol::Opaque(opaque)) = policy.protocol.unwrap().kind else {
        panic!("not opaque")
    };
    let Some(Kind::RandomAvailable(random)) =
        opaque.routes[0].rules[0].backends.clone().unwrap().kind
    else {
        panic!("not split")
    };
    let backends: Vec<(String, u32)> = random
        .backends
        .iter()
        .map(|b| {
            let backend = b.backend.clone().unwrap().backend.unwrap();
            let Some(BackendKind::Balancer(balancer)) = backend.kind else {
                panic!("{backend:?}")
            };
            let Some(Discovery::Dst(dst)) = balancer.discovery.unwrap().kind else {
                panic!("not a Destination.Get backend")
            };
            (dst.path, b.weight)
        })
        .collect();
    assert_eq!(
        backends,
        [
            (format!("web-v1.{NS}.svc.cluster.local:5432"), 30_000),
            (format!("web-v2.{NS}.svc.cluster.local:5432"), 10_000),
        ]
    );
}
