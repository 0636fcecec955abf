use super::*;
use crate::test_util::*;
use k8s_openapi::api::{
    core::v1::{Pod, Service},
    discovery::v1::EndpointSlice,
};
use linkerd2_proxy_api::{
    meta::{Metadata, metadata},
    net::TcpAddress,
};
use oxlink_crds::ServiceProfile;
use pb::{protocol_hint::Protocol, tls_identity::Strategy, update::Update};
use serde_json::json;
use std::collections::BTreeMap;

const WEB_IDENTITY: &str = "web-sa.ns.serviceaccount.identity.linkerd.cluster.local";

fn web() -> ObjKey {
    ObjKey::new(NS, "web")
}

fn port(port: u16) -> EndpointsFilter {
    EndpointsFilter {
        port,
        hostname: None,
        node: None,
    }
}

fn addrs(rx: &EndpointsRx) -> BTreeMap<SocketAddr, Arc<pb::WeightedAddr>> {
    match &rx.borrow().state {
        EndpointsState::Present { addrs, .. } => (**addrs).clone(),
        EndpointsState::Missing => panic!("the service is missing"),
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn decoded(update: &prost::bytes::Bytes) -> pb::Update {
    let message = crate::frame::unframed(update).expect("a framed update");
    prost::Message::decode(message).expect("an encoded update")
}

fn added(update: &prost::bytes::Bytes) -> Vec<SocketAddr> {
    match decoded(update).update {
        Some(Update::Add(set)) => set
            .addrs
            .iter()
            .map(|a| SocketAddr::try_from(a.addr.unwrap()).unwrap())
            .collect(),
        other => panic!("expected an add, got {other:?}"),
    }
}

fn removed(update: &prost::bytes::Bytes) -> Vec<SocketAddr> {
    match decoded(update).update {
        Some(Update::Remove(set)) => set
            .addrs
            .iter()
            .map(|a| SocketAddr::try_from(*a).unwrap())
            .collect(),
        other => panic!("expected a remove, got {other:?}"),
    }
}

/// A web Service (port 80 → named target port `http`) with a slice of `pods` (name, ip).
fn web_index(pods: &[(&str, &str)]) -> SharedIndex {
    let index = mk_index();
    {
        let mut idx = index.write();
        idx.apply(&mk_service(
            "web",
            "10.96.0.10",
            &[("http", 80, json!("http"))],
        ));
        for (name, ip) in pods {
            idx.apply(&mk_pod(name, ip, true));
        }
        idx.apply(&mk_slice(
            "web",
            "web-abc",
            ("http", 8080),
            pods_endpoints(pods).as_slice(),
        ));
    }
    index
}

fn pods_endpoints<'a>(pods: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    pods.iter().map(|(name, ip)| (*ip, *name)).collect()
}

#[test]
fn endpoints_resolve_the_named_target_port_with_pod_metadata() {
    let index = web_index(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]);
    let rx = index.write().watch_endpoints(&web(), &port(80));
    let addrs = addrs(&rx);
    assert_eq!(
        addrs.keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.1:8080"), sa("10.0.0.2:8080")]
    );
    let wa = &addrs[&sa("10.0.0.1:8080")];
    assert_eq!(wa.weight, 10_000);
    let labels = &wa.metric_labels;
    assert_eq!(labels["pod"], "web-1");
    assert_eq!(labels["deployment"], "web");
    assert_eq!(labels["serviceaccount"], "web-sa");
    assert_eq!(labels["control_plane_ns"], "linkerd");
    assert_eq!(labels["pod_template_hash"], "5d9f");
    assert_eq!(labels["zone"], "zone-a");
    let tls = wa
        .tls_identity
        .as_ref()
        .expect("a meshed pod has an identity");
    match &tls.strategy {
        Some(Strategy::DnsLikeIdentity(id)) => assert_eq!(id.name, WEB_IDENTITY),
        other => panic!("unexpected strategy {other:?}"),
    }
    assert_eq!(tls.server_name.as_ref().unwrap().name, WEB_IDENTITY);
    let hint = wa.protocol_hint.as_ref().unwrap();
    assert!(matches!(hint.protocol, Some(Protocol::H2(_))));
    assert!(hint.opaque_transport.is_none());

    match &rx.borrow().state {
        EndpointsState::Present { labels, .. } => {
            assert_eq!(labels["service"], "web");
            assert_eq!(labels["namespace"], NS);
        }
        EndpointsState::Missing => unreachable!(),
    }
}

#[test]
fn a_numeric_target_port_and_an_undeclared_port() {
    let index = mk_index();
    let mut idx = index.write();
    idx.apply(&mk_service("web", "10.96.0.10", &[("", 80, json!(9090))]));
    idx.apply(&mk_pod("web-1", "10.0.0.1", false));
    idx.apply(&mk_slice(
        "web",
        "web-abc",
        ("", 9090),
        &[("10.0.0.1", "web-1")],
    ));
    let rx = idx.watch_endpoints(&web(), &port(80));
    assert_eq!(
        addrs(&rx).keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.1:9090")]
    );
    // A port the Service does not declare is the endpoints' port.
    let rx = idx.watch_endpoints(&web(), &port(7000));
    assert_eq!(
        addrs(&rx).keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.1:7000")]
    );
}

#[test]
fn unmeshed_pods_get_no_identity_or_hint_and_other_control_planes_no_identity() {
    let index = mk_index();
    let mut idx = index.write();
    idx.apply(&mk_service(
        "web",
        "10.96.0.10",
        &[("http", 80, json!(8080))],
    ));
    idx.apply(&mk_pod("web-1", "10.0.0.1", false));
    let mut other = mk_pod("web-2", "10.0.0.2", true);
    other
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("linkerd.io/control-plane-ns".into(), "elsewhere".into());
    idx.apply(&other);
    idx.apply(&mk_slice(
        "web",
        "web-abc",
        ("http", 8080),
        &[("10.0.0.1", "web-1"), ("10.0.0.2", "web-2")],
    ));
    let addrs = addrs(&idx.watch_endpoints(&web(), &port(80)));
    let plain = &addrs[&sa("10.0.0.1:8080")];
    assert!(plain.tls_identity.is_none() && plain.protocol_hint.is_none());
    assert_eq!(plain.metric_labels["pod"], "web-1");
    let foreign = &addrs[&sa("10.0.0.2:8080")];
    assert!(foreign.tls_identity.is_none());
    assert!(
        foreign.protocol_hint.is_some(),
        "still meshed, so still hinted"
    );
}

#[test]
fn opaque_and_skipped_ports() {
    let index = mk_index();
    let mut idx = index.write();
    idx.apply(&mk_service(
        "db",
        "10.96.0.11",
        &[
            ("sql", 3306, json!(3306)),
            ("app", 80, json!(8080)),
            ("raw", 81, json!(8081)),
        ],
    ));
    idx.apply(&mk_pod_with(
        "db-1",
        "10.0.0.5",
        true,
        json!({"config.linkerd.io/opaque-ports": "http", "config.linkerd.io/skip-inbound-ports": "8081"}),
    ));
    idx.apply(&mk_pod("db-2", "10.0.0.6", true));
    for (p, target) in [("sql", 3306), ("app", 8080), ("raw", 8081)] {
        idx.apply(&mk_slice(
            "db",
            &format!("db-{p}"),
            (p, target),
            &[("10.0.0.5", "db-1"), ("10.0.0.6", "db-2")],
        ));
    }
    let db = ObjKey::new(NS, "db");
    let mut hint = |svc_port: u16, addr: &str| {
        let rx = idx.watch_endpoints(&db, &port(svc_port));
        let wa = addrs(&rx)[&sa(addr)].clone();
        (wa.protocol_hint, wa.tls_identity.is_some())
    };
    let opaque = Some(pb::ProtocolHint {
        protocol: Some(Protocol::Opaque(pb::protocol_hint::Opaque {})),
        opaque_transport: Some(pb::protocol_hint::OpaqueTransport { inbound_port: 4143 }),
    });
    let h2 = Some(pb::ProtocolHint {
        protocol: Some(Protocol::H2(pb::protocol_hint::H2 {})),
        opaque_transport: None,
    });
    // db-1's annotation names the container port `http` (8080); 3306 is not in it.
    assert_eq!(hint(80, "10.0.0.5:8080"), (opaque, true));
    assert_eq!(hint(3306, "10.0.0.5:3306"), (h2, true));
    // db-2 has no annotation: the default opaque ports apply.
    assert_eq!(hint(3306, "10.0.0.6:3306"), (opaque, true));
    assert_eq!(hint(80, "10.0.0.6:8080"), (h2, true));
    // Skipped inbound ports bypass the proxy: no identity, no hint.
    assert_eq!(hint(81, "10.0.0.5:8081"), (None, false));
}

#[test]
fn scaling_publishes_shared_adds_and_removes() {
    let pods5 = [
        ("web-1", "10.0.0.1"),
        ("web-2", "10.0.0.2"),
        ("web-3", "10.0.0.3"),
        ("web-4", "10.0.0.4"),
        ("web-5", "10.0.0.5"),
    ];
    let index = web_index(&pods5[..3]);
    let mut a = index.write().watch_endpoints(&web(), &port(80));
    let b = index.write().watch_endpoints(&web(), &port(80));
    let first = a.borrow_and_update().clone();
    assert_eq!(first.version, 0);
    assert!(
        Arc::ptr_eq(&first, &b.borrow()),
        "subscribers share one snapshot"
    );
    let initial = first.updates_since(None);
    assert_eq!(initial.len(), 1);
    assert_eq!(added(&initial[0]).len(), 3);

    // 3 → 5: the two new pods arrive, then the slice lists them.
    for (name, ip) in &pods5[3..] {
        index.write().apply(&mk_pod(name, ip, true));
    }
    assert!(
        !a.has_changed().unwrap(),
        "pods outside the slice change nothing"
    );
    index.write().apply(&mk_slice(
        "web",
        "web-abc",
        ("http", 8080),
        &pods_endpoints(&pods5),
    ));
    assert!(a.has_changed().unwrap());
    let five = a.borrow_and_update().clone();
    assert_eq!(five.version, 1);
    assert_eq!(five.delta.len(), 1);
    assert_eq!(
        added(&five.delta[0]),
        vec![sa("10.0.0.4:8080"), sa("10.0.0.5:8080")]
    );
    assert!(
        Arc::ptr_eq(&five.updates_since(Some(&first)), &five.delta),
        "the delta is shared"
    );

    // 5 → 2.
    let two = [pods5[0], pods5[4]];
    index.write().apply(&mk_slice(
        "web",
        "web-abc",
        ("http", 8080),
        &pods_endpoints(&two),
    ));
    let after = a.borrow_and_update().clone();
    assert_eq!(after.delta.len(), 1);
    assert_eq!(
        removed(&after.delta[0]),
        vec![
            sa("10.0.0.2:8080"),
            sa("10.0.0.3:8080"),
            sa("10.0.0.4:8080")
        ]
    );
    // A subscriber that skipped a version gets the diff from what it last saw.
    let skipped = after.updates_since(Some(&first));
    assert_eq!(skipped.len(), 2);
    assert_eq!(added(&skipped[0]), vec![sa("10.0.0.5:8080")]);
    assert_eq!(
        removed(&skipped[1]),
        vec![sa("10.0.0.2:8080"), sa("10.0.0.3:8080")]
    );
}

#[test]
fn changed_pod_metadata_is_re_added_and_unchanged_status_is_silent() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    let mut rx = index.write().watch_endpoints(&web(), &port(80));
    rx.borrow_and_update();
    // Same pod again (e.g. a status heartbeat): nothing to publish.
    index.write().apply(&mk_pod("web-1", "10.0.0.1", true));
    assert!(!rx.has_changed().unwrap());
    // The pod's opaque ports change: the endpoint is sent again with its new hint.
    index.write().apply(&mk_pod_with(
        "web-1",
        "10.0.0.1",
        true,
        json!({"config.linkerd.io/opaque-ports": "8080"}),
    ));
    let snap = rx.borrow_and_update().clone();
    assert_eq!(snap.delta.len(), 1);
    match decoded(&snap.delta[0]).update {
        Some(Update::Add(set)) => assert!(matches!(
            set.addrs[0].protocol_hint.as_ref().unwrap().protocol,
            Some(Protocol::Opaque(_))
        )),
        other => panic!("expected an add, got {other:?}"),
    }
}

#[test]
fn an_endpoint_waits_for_its_pod_and_leaves_with_it() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    index.write().apply(&mk_slice(
        "web",
        "web-abc",
        ("http", 8080),
        &[
            ("10.0.0.1", "web-1"),
            ("10.0.0.2", "web-2"),
            ("10.0.0.3", ""),
        ],
    ));
    let mut rx = index.write().watch_endpoints(&web(), &port(80));
    // web-2 is not indexed yet; the pod-less endpoint is a bare address.
    let held = addrs(&rx);
    assert_eq!(
        held.keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.1:8080"), sa("10.0.0.3:8080")]
    );
    assert!(!held[&sa("10.0.0.3:8080")].metric_labels.contains_key("pod"));
    rx.borrow_and_update();
    index.write().apply(&mk_pod("web-2", "10.0.0.2", true));
    let snap = rx.borrow_and_update().clone();
    assert_eq!(added(&snap.delta[0]), vec![sa("10.0.0.2:8080")]);
    // A deleted pod is never re-sent without its identity while the slice catches up.
    index.write().delete::<Pod>(NS, "web-1");
    let snap = rx.borrow_and_update().clone();
    assert_eq!(snap.delta.len(), 1);
    assert_eq!(removed(&snap.delta[0]), vec![sa("10.0.0.1:8080")]);
}

#[test]
fn unready_endpoints_and_other_services_slices_are_left_out() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    let mut slice = mk_slice("web", "web-def", ("http", 8080), &[("10.0.0.9", "web-9")]);
    slice.endpoints[0].conditions.as_mut().unwrap().ready = Some(false);
    index.write().apply(&slice);
    index.write().apply(&mk_slice(
        "api",
        "api-abc",
        ("http", 8080),
        &[("10.0.0.7", "api-1")],
    ));
    let rx = index.write().watch_endpoints(&web(), &port(80));
    assert_eq!(
        addrs(&rx).keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.1:8080")]
    );
}

#[test]
fn deleting_the_service_publishes_no_endpoints_and_recreating_it_adds() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    let mut rx = index.write().watch_endpoints(&web(), &port(80));
    let first = rx.borrow_and_update().clone();
    index.write().delete::<Service>(NS, "web");
    let gone = rx.borrow_and_update().clone();
    assert_eq!(gone.state, EndpointsState::Missing);
    assert_eq!(
        gone.updates_since(Some(&first))
            .iter()
            .map(decoded)
            .collect::<Vec<_>>(),
        vec![pb::Update {
            update: Some(Update::NoEndpoints(pb::NoEndpoints { exists: false })),
        }]
    );
    index.write().apply(&mk_service(
        "web",
        "10.96.0.10",
        &[("http", 80, json!("http"))],
    ));
    let back = rx.borrow_and_update().clone();
    assert_eq!(added(&back.delta[0]), vec![sa("10.0.0.1:8080")]);
}

#[test]
fn an_empty_service_starts_with_an_empty_add() {
    let index = mk_index();
    index.write().apply(&mk_service(
        "web",
        "10.96.0.10",
        &[("http", 80, json!(8080))],
    ));
    let rx = index.write().watch_endpoints(&web(), &port(80));
    let initial = rx.borrow().updates_since(None);
    assert_eq!(initial.len(), 1);
    assert!(added(&initial[0]).is_empty());
}

#[test]
fn reset_drops_objects_missing_from_the_list() {
    let index = web_index(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]);
    let mut rx = index.write().watch_endpoints(&web(), &port(80));
    rx.borrow_and_update();
    index.write().reset::<EndpointSlice>(&[]);
    assert!(addrs(&rx).is_empty());
    index
        .write()
        .reset::<Pod>(&[mk_pod("web-2", "10.0.0.2", true)]);
    assert_eq!(index.read().sizes().pods, 1);
    index.write().reset::<Service>(&[]);
    assert_eq!(rx.borrow().state, EndpointsState::Missing);
}

#[test]
fn dropped_subscriptions_are_forgotten() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    let rx = index.write().watch_endpoints(&web(), &port(80));
    assert_eq!(index.read().sizes().endpoint_keys, 1);
    drop(rx);
    index
        .write()
        .apply(&mk_slice("web", "web-abc", ("http", 8080), &[]));
    assert_eq!(index.read().sizes().endpoint_keys, 0);
}

#[test]
fn a_subscriber_that_never_reads_holds_up_no_one() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    let _idle = index.write().watch_endpoints(&web(), &port(80));
    let mut reader = index.write().watch_endpoints(&web(), &port(80));
    for i in 2..=200u8 {
        let ip = format!("10.0.1.{i}");
        index.write().apply(&mk_slice(
            "web",
            "web-abc",
            ("http", 8080),
            &[(ip.as_str(), "")],
        ));
    }
    // The writer never waited, and the reader holds only the latest state.
    let latest = reader.borrow_and_update().clone();
    assert_eq!(latest.version, 199);
    assert_eq!(
        addrs(&reader).keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.1.200:8080")]
    );
}

// === profiles ===

fn web_profile() -> serde_json::Value {
    json!({
        "routes": [
            {"name": "GET /", "condition": {"method": "GET", "pathRegex": "/"}},
            {
                "name": "GET /stress",
                "condition": {"method": "GET", "pathRegex": "/stress"},
                "timeout": "100ms",
                "isRetryable": true,
                "responseClasses": [{"condition": {"status": {"min": 500, "max": 599}}, "isFailure": true}],
            },
            {"name": "bad timeout", "condition": {"pathRegex": "/x"}, "timeout": "soon"},
        ],
        "retryBudget": {"retryRatio": 0.5, "minRetriesPerSecond": 3, "ttl": "1m"},
        "dstOverrides": [
            {"authority": "web-v2.ns.svc.cluster.local", "weight": "500m"},
            {"authority": "web-v1.ns.svc.cluster.local:8080", "weight": 1},
        ],
    })
}

#[test]
fn the_default_profile_names_the_service() {
    let index = web_index(&[]);
    let rx = index
        .write()
        .watch_profile(&ProfileTarget::Service(web(), 80), None);
    let profile = rx.borrow().message.clone();
    assert_eq!(profile.fully_qualified_name, "web.ns.svc.cluster.local");
    assert!(profile.routes.is_empty() && profile.dst_overrides.is_empty());
    assert!(!profile.opaque_protocol);
    assert_eq!(profile.retry_budget, Some(profile::default_retry_budget()));
    let budget = profile.retry_budget.unwrap();
    assert_eq!(
        (budget.retry_ratio, budget.min_retries_per_second),
        (0.2, 10)
    );
    assert_eq!(budget.ttl.unwrap().seconds, 10);
    // A default opaque port of a Service without the annotation.
    let rx = index
        .write()
        .watch_profile(&ProfileTarget::Service(web(), 3306), None);
    assert!(rx.borrow().opaque_protocol);
}

#[test]
fn a_service_profile_arrives_translated() {
    let index = web_index(&[]);
    let mut rx = index
        .write()
        .watch_profile(&ProfileTarget::Service(web(), 80), None);
    rx.borrow_and_update();
    index
        .write()
        .apply(&mk_profile(NS, "web.ns.svc.cluster.local", web_profile()));
    assert!(rx.has_changed().unwrap());
    let profile = rx.borrow_and_update().message.clone();
    assert_eq!(profile.routes.len(), 3);
    let stress = &profile.routes[1];
    assert_eq!(stress.metrics_labels["route"], "GET /stress");
    assert_eq!(
        stress.timeout,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 100_000_000
        })
    );
    assert!(stress.is_retryable);
    use pb::request_match::Match;
    match &stress.condition.as_ref().unwrap().r#match {
        Some(Match::All(seq)) => {
            assert!(matches!(&seq.matches[0].r#match, Some(Match::Method(_))));
            assert!(
                matches!(&seq.matches[1].r#match, Some(Match::Path(p)) if p.regex == "/stress")
            );
        }
        other => panic!("method and path are ANDed, got {other:?}"),
    }
    let class = &stress.response_classes[0];
    assert!(class.is_failure);
    assert_eq!(
        class.condition.as_ref().unwrap().r#match,
        Some(pb::response_match::Match::Status(pb::HttpStatusRange {
            min: 500,
            max: 599
        }))
    );
    // One field is sent as itself; an unparsable timeout is dropped, not the route.
    let bad = &profile.routes[2];
    assert!(matches!(
        &bad.condition.as_ref().unwrap().r#match,
        Some(Match::Path(_))
    ));
    assert_eq!(bad.timeout, None);
    let budget = profile.retry_budget.unwrap();
    assert_eq!(
        (budget.retry_ratio, budget.min_retries_per_second),
        (0.5, 3)
    );
    assert_eq!(budget.ttl.unwrap().seconds, 60);
    let dsts: Vec<_> = profile
        .dst_overrides
        .iter()
        .map(|d| (d.authority.as_str(), d.weight))
        .collect();
    assert_eq!(
        dsts,
        vec![
            ("web-v2.ns.svc.cluster.local:80", 5000),
            ("web-v1.ns.svc.cluster.local:8080", 10000)
        ]
    );

    index
        .write()
        .delete::<ServiceProfile>(NS, "web.ns.svc.cluster.local");
    assert!(rx.borrow_and_update().routes.is_empty());
}

#[test]
fn the_client_namespace_profile_takes_precedence() {
    let index = web_index(&[]);
    index
        .write()
        .apply(&mk_profile(NS, "web.ns.svc.cluster.local", web_profile()));
    index.write().apply(&mk_profile(
        "client",
        "web.ns.svc.cluster.local",
        json!({"routes": [{"name": "mine", "condition": {"pathRegex": "/mine"}}]}),
    ));
    let target = ProfileTarget::Service(web(), 80);
    let theirs = index.write().watch_profile(&target, Some("client"));
    assert_eq!(theirs.borrow().routes[0].metrics_labels["route"], "mine");
    let others = index.write().watch_profile(&target, Some("other"));
    assert_eq!(others.borrow().routes.len(), 3);
    let none = index.write().watch_profile(&target, None);
    assert_eq!(none.borrow().routes.len(), 3);

    // The references name the Service (with the port asked for) and the profile chosen.
    let reference = |m: &Option<Metadata>| match m.as_ref().and_then(|m| m.kind.clone()) {
        Some(metadata::Kind::Resource(r)) => (r.group, r.kind, r.namespace, r.name, r.port),
        other => panic!("not a resource reference: {other:?}"),
    };
    let theirs = theirs.borrow().message.clone();
    assert_eq!(
        reference(&theirs.parent_ref),
        ("core".into(), "Service".into(), NS.into(), "web".into(), 80)
    );
    assert_eq!(
        reference(&theirs.profile_ref),
        (
            "linkerd.io".into(),
            "ServiceProfile".into(),
            "client".into(),
            "web.ns.svc.cluster.local".into(),
            0
        )
    );
    assert_eq!(reference(&none.borrow().profile_ref).2, NS);
    index
        .write()
        .delete::<ServiceProfile>(NS, "web.ns.svc.cluster.local");
    let bare = index.write().watch_profile(&target, Some("other"));
    assert_eq!(bare.borrow().profile_ref, None, "no profile, no reference");
    assert_eq!(reference(&bare.borrow().parent_ref).3, "web");
}

#[test]
fn profiles_by_address() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    index
        .write()
        .apply(&mk_profile(NS, "web.ns.svc.cluster.local", web_profile()));
    let mut idx = index.write();
    // A cluster IP is the Service.
    let by_ip = idx.watch_profile(&ProfileTarget::Addr(sa("10.96.0.10:80")), None);
    assert_eq!(
        by_ip.borrow().fully_qualified_name,
        "web.ns.svc.cluster.local"
    );
    assert_eq!(by_ip.borrow().routes.len(), 3);
    // A pod IP is an endpoint.
    let pod = idx.watch_profile(&ProfileTarget::Addr(sa("10.0.0.1:3306")), None);
    let profile = pod.borrow().message.clone();
    assert_eq!(profile.fully_qualified_name, "");
    assert!(profile.opaque_protocol, "3306 is a default opaque port");
    let endpoint = profile.endpoint.unwrap();
    assert_eq!(endpoint.metric_labels["namespace"], NS);
    assert_eq!(endpoint.metric_labels["pod"], "web-1");
    assert!(endpoint.tls_identity.is_some());
    assert_eq!(profile.retry_budget, Some(profile::default_retry_budget()));
    // Anything else is a bare address.
    let unknown = idx.watch_profile(&ProfileTarget::Addr(sa("192.0.2.1:80")), None);
    let profile = unknown.borrow().message.clone();
    assert!(!profile.opaque_protocol);
    assert_eq!(
        profile.endpoint,
        Some(pb::WeightedAddr {
            addr: Some(TcpAddress::from(sa("192.0.2.1:80"))),
            weight: 10_000,
            ..Default::default()
        })
    );
}

#[test]
fn an_address_profile_follows_its_pod() {
    let index = mk_index();
    let mut rx = index
        .write()
        .watch_profile(&ProfileTarget::Addr(sa("10.0.0.1:8080")), None);
    assert!(
        rx.borrow_and_update()
            .endpoint
            .as_ref()
            .unwrap()
            .metric_labels
            .is_empty()
    );
    index.write().apply(&mk_pod("web-1", "10.0.0.1", true));
    assert!(rx.has_changed().unwrap());
    assert_eq!(
        rx.borrow_and_update()
            .endpoint
            .as_ref()
            .unwrap()
            .metric_labels["pod"],
        "web-1"
    );
    index.write().delete::<Pod>(NS, "web-1");
    assert!(
        rx.borrow_and_update()
            .endpoint
            .as_ref()
            .unwrap()
            .metric_labels
            .is_empty()
    );
}

#[test]
fn service_opaque_ports_annotation_sets_opaque_protocol() {
    let index = mk_index();
    let mut svc = mk_service(
        "db",
        "10.96.0.11",
        &[("sql", 5432, json!(5432)), ("web", 80, json!(80))],
    );
    svc.metadata.annotations = Some(
        [(
            "config.linkerd.io/opaque-ports".to_string(),
            "web".to_string(),
        )]
        .into(),
    );
    index.write().apply(&svc);
    let db = ObjKey::new(NS, "db");
    let mut idx = index.write();
    assert!(
        idx.watch_profile(&ProfileTarget::Service(db.clone(), 80), None)
            .borrow()
            .opaque_protocol
    );
    assert!(
        !idx.watch_profile(&ProfileTarget::Service(db, 5432), None)
            .borrow()
            .opaque_protocol
    );
}

#[test]
fn statefulset_pods_by_hostname() {
    let index = mk_index();
    let mut slice = mk_slice(
        "web",
        "web-abc",
        ("http", 8080),
        &[("10.0.0.1", "web-0"), ("10.0.0.2", "web-1")],
    );
    slice.endpoints[0].hostname = Some("web-0".into());
    slice.endpoints[1].hostname = Some("web-1".into());
    {
        let mut idx = index.write();
        idx.apply(&mk_service("web", "None", &[("http", 8080, json!(8080))]));
        idx.apply(&mk_pod("web-1", "10.0.0.2", true));
        idx.apply(&slice);
    }
    let filter = EndpointsFilter {
        port: 8080,
        hostname: Some("web-1".into()),
        node: None,
    };
    let rx = index.write().watch_endpoints(&web(), &filter);
    assert_eq!(
        addrs(&rx).keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.2:8080")]
    );

    let target = |hostname: &str| ProfileTarget::Pod {
        service: web(),
        hostname: hostname.into(),
        port: 8080,
    };
    let one = index.write().watch_profile(&target("web-1"), None);
    let endpoint = one.borrow().endpoint.clone().unwrap();
    assert_eq!(endpoint.addr, Some(TcpAddress::from(sa("10.0.0.2:8080"))));
    assert_eq!(endpoint.metric_labels["pod"], "web-1");
    assert_eq!(endpoint.metric_labels["namespace"], NS);
    // web-0's pod is not indexed yet: a bare address until it is.
    let mut zero = index.write().watch_profile(&target("web-0"), None);
    assert!(
        zero.borrow_and_update()
            .endpoint
            .as_ref()
            .unwrap()
            .metric_labels
            .is_empty()
    );
    index.write().apply(&mk_pod("web-0", "10.0.0.1", true));
    assert_eq!(
        zero.borrow_and_update()
            .endpoint
            .as_ref()
            .unwrap()
            .metric_labels["pod"],
        "web-0"
    );
    // An unknown hostname has no endpoint.
    let none = index.write().watch_profile(&target("web-9"), None);
    assert!(none.borrow().endpoint.is_none());
    assert_eq!(none.borrow().fully_qualified_name, "");
}

// === topology ===

fn on_node(filter_port: u16, node: &str) -> EndpointsFilter {
    EndpointsFilter {
        port: filter_port,
        hostname: None,
        node: Some(node.into()),
    }
}

/// web-1 on node-a (hinted for zone-a), web-2 on node-b (hinted for zone-b).
fn topology_index(local: bool, hints: [Option<&str>; 2]) -> SharedIndex {
    let index = mk_index();
    let mut svc = mk_service("web", "10.96.0.10", &[("http", 80, json!(8080))]);
    if local {
        svc.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
    }
    let mut slice = mk_slice(
        "web",
        "web-abc",
        ("http", 8080),
        &[("10.0.0.1", "web-1"), ("10.0.0.2", "web-2")],
    );
    for (i, (node, hint)) in [("node-a", hints[0]), ("node-b", hints[1])]
        .into_iter()
        .enumerate()
    {
        slice.endpoints[i].node_name = Some(node.into());
        if let Some(zone) = hint {
            slice.endpoints[i].hints =
                Some(serde_json::from_value(json!({"forZones": [{"name": zone}]})).unwrap());
        }
    }
    {
        let mut idx = index.write();
        idx.apply(&svc);
        idx.apply(&mk_pod("web-1", "10.0.0.1", true));
        idx.apply(&mk_pod("web-2", "10.0.0.2", true));
        idx.apply(&slice);
        idx.apply(&mk_node("node-a", "zone-a"));
        idx.apply(&mk_node("node-b", "zone-b"));
    }
    index
}

fn held(index: &SharedIndex, filter: &EndpointsFilter) -> Vec<SocketAddr> {
    addrs(&index.write().watch_endpoints(&web(), filter))
        .into_keys()
        .collect()
}

#[test]
fn internal_traffic_policy_local_keeps_the_clients_node() {
    let index = topology_index(true, [None, None]);
    assert_eq!(
        held(&index, &on_node(80, "node-a")),
        vec![sa("10.0.0.1:8080")]
    );
    assert_eq!(
        held(&index, &on_node(80, "node-b")),
        vec![sa("10.0.0.2:8080")]
    );
    assert!(held(&index, &on_node(80, "node-c")).is_empty());
    // Without a node in the token there is nothing to filter by.
    assert_eq!(held(&index, &port(80)).len(), 2);
}

#[test]
fn topology_hints_keep_the_clients_zone() {
    let index = topology_index(false, [Some("zone-a"), Some("zone-b")]);
    assert_eq!(
        held(&index, &on_node(80, "node-a")),
        vec![sa("10.0.0.1:8080")]
    );
    assert_eq!(
        held(&index, &on_node(80, "node-b")),
        vec![sa("10.0.0.2:8080")]
    );
    // A node in no hinted zone, or an unknown node, gets everything.
    index.write().apply(&mk_node("node-c", "zone-c"));
    assert_eq!(held(&index, &on_node(80, "node-c")).len(), 2);
    assert_eq!(held(&index, &on_node(80, "node-x")).len(), 2);
    assert_eq!(held(&index, &port(80)).len(), 2);

    // A node that changes zone is re-filtered.
    let mut rx = index
        .write()
        .watch_endpoints(&web(), &on_node(80, "node-a"));
    rx.borrow_and_update();
    index.write().apply(&mk_node("node-a", "zone-b"));
    assert!(rx.has_changed().unwrap());
    assert_eq!(
        addrs(&rx).into_keys().collect::<Vec<_>>(),
        vec![sa("10.0.0.2:8080")]
    );
}

#[test]
fn hints_apply_only_when_every_endpoint_has_them() {
    let index = topology_index(false, [Some("zone-a"), None]);
    assert_eq!(held(&index, &on_node(80, "node-a")).len(), 2);
}

// === opaque Servers ===

fn is_opaque_hint(wa: &pb::WeightedAddr) -> bool {
    matches!(
        wa.protocol_hint.as_ref().and_then(|h| h.protocol.as_ref()),
        Some(Protocol::Opaque(_))
    )
}

#[test]
fn an_opaque_server_makes_its_port_opaque() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    let mut rx = index.write().watch_endpoints(&web(), &port(80));
    let mut profile = index
        .write()
        .watch_profile(&ProfileTarget::Addr(sa("10.0.0.1:8080")), None);
    assert!(!is_opaque_hint(&addrs(&rx)[&sa("10.0.0.1:8080")]));
    assert!(!profile.borrow_and_update().opaque_protocol);
    rx.borrow_and_update();

    // A Server for other pods, or another port, or that is not opaque, changes nothing.
    let mut idx = index.write();
    idx.apply(&mk_server(
        "other",
        json!({"matchLabels": {"app": "db"}}),
        json!(8080),
        "opaque",
    ));
    idx.apply(&mk_server(
        "port",
        json!({"matchLabels": {"app": "web"}}),
        json!(9090),
        "opaque",
    ));
    idx.apply(&mk_server(
        "http",
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "HTTP/1",
    ));
    drop(idx);
    assert!(!rx.has_changed().unwrap());

    // The named container port `http` is 8080.
    index.write().apply(&mk_server(
        "web",
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}),
        json!("http"),
        "opaque",
    ));
    assert!(is_opaque_hint(&addrs(&rx)[&sa("10.0.0.1:8080")]));
    assert!(profile.borrow_and_update().opaque_protocol);

    index
        .write()
        .delete::<oxlink_crds::policy::Server>(NS, "web");
    assert!(!is_opaque_hint(&addrs(&rx)[&sa("10.0.0.1:8080")]));
    assert!(!profile.borrow_and_update().opaque_protocol);
}

#[test]
fn label_selectors() {
    use super::server::selects;
    let labels: BTreeMap<String, String> = [
        ("app".to_string(), "web".to_string()),
        ("tier".to_string(), "1".to_string()),
    ]
    .into();
    let sel = |v: serde_json::Value| serde_json::from_value(v).unwrap();
    assert!(selects(&sel(json!({})), &labels));
    assert!(selects(
        &sel(json!({"matchLabels": {"app": "web"}})),
        &labels
    ));
    assert!(!selects(
        &sel(json!({"matchLabels": {"app": "web", "x": "y"}})),
        &labels
    ));
    let expr = |op: &str, values: serde_json::Value| {
        sel(json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}))
    };
    assert!(selects(&expr("In", json!(["1", "2"])), &labels));
    assert!(!selects(&expr("NotIn", json!(["1"])), &labels));
    assert!(selects(&expr("Exists", json!(null)), &labels));
    assert!(!selects(&expr("DoesNotExist", json!(null)), &labels));
    assert!(!selects(&expr("Gt", json!(["0"])), &labels));
}

// === external workloads ===

/// A slice endpoint that references an ExternalWorkload.
fn mk_external_slice(endpoints: &[(&str, &str)]) -> EndpointSlice {
    let mut slice = mk_slice("web", "web-ext", ("http", 8080), &[]);
    slice.endpoints = endpoints
        .iter()
        .map(|(ip, name)| {
            serde_json::from_value(json!({
                "addresses": [ip],
                "conditions": {"ready": true},
                "targetRef": {"kind": "ExternalWorkload", "namespace": NS, "name": name},
            }))
            .unwrap()
        })
        .collect();
    slice
}

#[test]
fn external_workload_endpoints_carry_their_uri_identity_and_server_name() {
    let index = web_index(&[("web-1", "10.0.0.1")]);
    let mut rx = index.write().watch_endpoints(&web(), &port(80));
    index
        .write()
        .apply(&mk_external_slice(&[("192.168.1.10", "vm-1")]));
    // The workload is not known yet: its endpoint waits rather than going out without identity.
    assert_eq!(
        addrs(&rx).keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.1:8080")]
    );
    rx.borrow_and_update();

    index
        .write()
        .apply(&mk_external_workload("vm-1", "192.168.1.10", json!({})));
    assert!(
        rx.has_changed().unwrap(),
        "the workload's arrival is published"
    );
    let addrs = addrs(&rx);
    let wa = &addrs[&sa("192.168.1.10:8080")];
    let tls = wa.tls_identity.clone().expect("a TLS identity");
    assert_eq!(
        tls.strategy,
        Some(Strategy::UriLikeIdentity(
            pb::tls_identity::UriLikeIdentity {
                uri: "spiffe://root.linkerd.cluster.local/vm-1".into()
            }
        ))
    );
    assert_eq!(
        tls.server_name.map(|n| n.name).as_deref(),
        Some("vm-1.ns.external.cluster.local")
    );
    assert_eq!(wa.metric_labels["external_workload"], "vm-1");
    assert_eq!(wa.metric_labels["namespace"], NS);
    assert!(!is_opaque_hint(wa));
    // The pod's endpoint is untouched.
    assert!(
        addrs[&sa("10.0.0.1:8080")]
            .metric_labels
            .contains_key("pod")
    );
}

#[test]
fn an_external_workloads_opaque_ports_annotation_and_deletion() {
    let index = web_index(&[]);
    index.write().apply(&mk_external_workload(
        "vm-1",
        "192.168.1.10",
        json!({"config.linkerd.io/opaque-ports": "http"}),
    ));
    index
        .write()
        .apply(&mk_external_slice(&[("192.168.1.10", "vm-1")]));
    let mut rx = index.write().watch_endpoints(&web(), &port(80));
    let wa = addrs(&rx)[&sa("192.168.1.10:8080")].clone();
    assert!(is_opaque_hint(&wa), "its named port is opaque");
    assert_eq!(
        wa.protocol_hint
            .and_then(|h| h.opaque_transport)
            .map(|t| t.inbound_port),
        Some(4143)
    );
    rx.borrow_and_update();

    index
        .write()
        .delete::<oxlink_crds::ExternalWorkload>(NS, "vm-1");
    assert!(rx.has_changed().unwrap());
    assert!(addrs(&rx).is_empty(), "a deleted workload's endpoint goes");
}
