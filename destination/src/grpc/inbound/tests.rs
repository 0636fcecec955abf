//! Both policy services in-process on 127.0.0.1:0, over an index, with the proxy's clients.

use super::*;
use crate::{index::SharedIndex, policy::PolicySnapshot, test_util::*};
use linkerd2_proxy_api::{
    inbound::inbound_server_policies_client::InboundServerPoliciesClient,
    net::TcpAddress,
    outbound::{
        self as outpb, outbound_policies_client::OutboundPoliciesClient, traffic_spec::Target,
    },
};
use oxlink_admin::serve::{Limits, ServerMetrics, accept};
use oxlink_crds::policy::Server;
use serde_json::json;
use std::{net::SocketAddr, time::Duration};
use tokio::net::TcpListener;
use tonic::{Code, transport::Channel};

const LIMIT: Duration = Duration::from_secs(10);

struct TestServer {
    channel: Channel,
    metrics: Arc<Metrics>,
    _shutdown: watch::Sender<bool>,
}

async fn start(index: &SharedIndex) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let discover = Arc::new(index.clone());
    let policy = PolicyService::new(discover, "cluster.local", rx, metrics.clone());
    let (limits, connections) = (Limits::GRPC, ServerMetrics::unregistered("policy"));
    let incoming = accept(listener, &limits, None, connections.clone());
    tokio::spawn(async move {
        crate::grpc::serve(
            Arc::new(policy),
            incoming,
            &limits,
            connections,
            std::future::pending(),
        )
        .await
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestServer {
        channel,
        metrics,
        _shutdown: shutdown,
    }
}

fn index() -> SharedIndex {
    let index = mk_index();
    index.write().apply(&mk_pod("web-1", "10.1.0.1", true));
    index.write().apply(&mk_service(
        "web",
        "10.96.0.10",
        &[("http", 80, json!(8080))],
    ));
    index
}

fn port_spec(workload: &str, port: u32) -> pb::PortSpec {
    pb::PortSpec {
        workload: workload.into(),
        port,
    }
}

#[test]
fn workloads_parse_in_every_format() {
    let pod = Workload::Pod(ObjKey::new("ns", "web-1"));
    assert_eq!(parse_workload("ns:web-1").unwrap(), pod);
    assert_eq!(parse_workload(r#"{"ns":"ns","pod":"web-1"}"#).unwrap(), pod);
    assert_eq!(
        parse_workload(r#"{"ns":"ns","external_workload":"vm-1"}"#).unwrap(),
        Workload::External(ObjKey::new("ns", "vm-1"))
    );
    for bad in [
        "",
        "ns",
        ":web-1",
        "ns:",
        "NS:web-1",
        "ns:web_1",
        "{",
        r#"{"ns":"ns"}"#,
        r#"{"pod":"web-1"}"#,
        r#"{"ns":"ns","pod":"web-1","extra":1}"#,
        r#"{"ns":"ns","pod":"a","external_workload":"vm"}"#,
        r#"{"ns":"ns","external_workload":"VM"}"#,
        r#"{"ns":"ns","external_workload":""}"#,
        r#"{"ns":"ns","external_workload":7}"#,
    ] {
        let status = parse_workload(bad).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert!(status.message().contains("invalid workload"), "{bad:?}");
    }
}

#[tokio::test]
async fn inbound_rejects_bad_requests_and_changes_nothing() {
    let index = index();
    let server = start(&index).await;
    let mut client = InboundServerPoliciesClient::new(server.channel.clone());
    for (workload, port, code) in [
        ("web-1", 8080, Code::InvalidArgument),
        ("ns:web-1", 0, Code::InvalidArgument),
        ("ns:web-1", 65_536, Code::InvalidArgument),
        ("ns:nope", 8080, Code::NotFound),
    ] {
        let status = client
            .get_port(port_spec(workload, port))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{workload} {port}");
        let status = client
            .watch_port(port_spec(workload, port))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{workload} {port}");
    }
    assert_eq!(index.read().policy_sizes().inbound_keys, 0);
}

#[tokio::test]
async fn watch_port_streams_updates() {
    let index = index();
    let server = start(&index).await;
    let mut client = InboundServerPoliciesClient::new(server.channel.clone());
    let unary = client
        .get_port(port_spec("ns:web-1", 8080))
        .await
        .unwrap()
        .into_inner();
    let mut stream = client
        .watch_port(port_spec(r#"{"ns":"ns","pod":"web-1"}"#, 8080))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(LIMIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, unary);
    assert_eq!(first.labels["kind"], "default");

    index.write().apply::<Server>(&mk_server(
        "web-http",
        json!({"matchLabels": {"app": "web"}}),
        json!(8080),
        "HTTP/2",
    ));
    let next = tokio::time::timeout(LIMIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.labels["kind"], "server");
    assert_eq!(next.labels["name"], "web-http");
    // The stream sent exactly what the index encoded.
    let snapshot: Arc<PolicySnapshot<pb::Server>> = index
        .read()
        .existing_inbound(&ObjKey::new(NS, "web-1"), 8080)
        .unwrap()
        .borrow()
        .clone();
    assert_eq!(snapshot.message, next);
    let open = server
        .metrics
        .subscriptions
        .get_or_create(&Metrics::api("inbound"))
        .get();
    assert_eq!(open, 1);
}

fn traffic(target: Target) -> outpb::TrafficSpec {
    outpb::TrafficSpec {
        source_workload: "ns:client".into(),
        target: Some(target),
    }
}

#[tokio::test]
async fn outbound_finds_services_only() {
    let index = index();
    let server = start(&index).await;
    let mut client = OutboundPoliciesClient::new(server.channel.clone());
    let svc: SocketAddr = "10.96.0.10:80".parse().unwrap();
    let by_addr = client
        .get(traffic(Target::Addr(TcpAddress::from(svc))))
        .await
        .unwrap()
        .into_inner();
    let by_name = client
        .get(traffic(Target::Authority(
            "web.ns.svc.cluster.local:80".into(),
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_addr, by_name);
    // The default port of an authority is 80.
    let default_port = client
        .get(traffic(Target::Authority(
            "web.ns.svc.cluster.local".into(),
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default_port, by_addr);

    let pod: SocketAddr = "10.1.0.1:8080".parse().unwrap();
    for target in [
        Target::Addr(TcpAddress::from(pod)),
        Target::Authority("example.com:80".into()),
        Target::Authority("nope.ns.svc.cluster.local:80".into()),
        Target::Authority("web-0.web.ns.svc.cluster.local:80".into()),
        Target::Authority("web.ns.svc.cluster.local:http".into()),
    ] {
        let status = client.get(traffic(target.clone())).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{target:?}");
        let status = client.watch(traffic(target.clone())).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{target:?}");
    }
    let no_target = outpb::TrafficSpec {
        source_workload: "ns:client".into(),
        target: None,
    };
    let status = client.get(no_target).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad_addr = TcpAddress { ip: None, port: 80 };
    let status = client
        .get(traffic(Target::Addr(bad_addr)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // A unary lookup holds its key only while it answers.
    assert_eq!(index.read().policy_sizes().outbound_keys, 0);
}

#[tokio::test]
async fn external_workloads_are_served_and_their_streams_end_with_them() {
    let index = index();
    let server = start(&index).await;
    let mut client = InboundServerPoliciesClient::new(server.channel.clone());
    let vm = json!({"ns": NS, "external_workload": "vm-1"}).to_string();
    // Not indexed yet: NOT_FOUND, like an unknown pod, and nothing is kept.
    for status in [
        client.get_port(port_spec(&vm, 8080)).await.unwrap_err(),
        client.watch_port(port_spec(&vm, 8080)).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            status.message().contains("external workload ns/vm-1"),
            "{status:?}"
        );
    }
    // A pod's name is no ExternalWorkload's.
    let pod_named = json!({"ns": NS, "external_workload": "web-1"}).to_string();
    let status = client
        .get_port(port_spec(&pod_named, 8080))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(index.read().policy_sizes().inbound_keys, 0);

    index
        .write()
        .apply(&mk_web_external_workload("vm-1", "192.168.1.10", json!({})));
    let mut stream = client
        .watch_port(port_spec(&vm, 8080))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(LIMIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.labels["kind"], "default");

    index.write().apply::<Server>(&mk_external_server(
        "vm-http",
        json!({"matchLabels": {"app": "web"}}),
        json!("http"),
        "HTTP/1",
    ));
    let next = tokio::time::timeout(LIMIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.labels["name"], "vm-http");

    // Deleting the workload ends its stream cleanly; asking again is NOT_FOUND.
    index
        .write()
        .delete::<oxlink_crds::ExternalWorkload>(NS, "vm-1");
    let end = tokio::time::timeout(LIMIT, stream.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, None);
    let status = client.get_port(port_spec(&vm, 8080)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(index.read().policy_sizes().inbound_keys, 0);
}
