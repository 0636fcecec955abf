use super::target::*;
use super::*;
use crate::{discover::ObjKey, index::SharedIndex, test_util::*};
use k8s_openapi::api::core::v1::Service;
use linkerd2_proxy_api::destination::{destination_client::DestinationClient, update::Update};
use oxlink_admin::serve::{Limits, ServerMetrics, accept};
use serde_json::json;
use std::{collections::BTreeSet, time::Duration};
use tokio::net::TcpListener;
use tonic::{Code, Streaming, transport::Channel};

const LIMIT: Duration = Duration::from_secs(10);

/// An in-process Destination server on 127.0.0.1:0 over `index`.
struct TestServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl TestServer {
    async fn start(index: &SharedIndex) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let grpc = Arc::new(DestinationGrpc::new(
            Arc::new(index.clone()),
            "cluster.local",
            rx,
            metrics.clone(),
        ));
        let (limits, connections) = (Limits::GRPC, ServerMetrics::unregistered("destination"));
        let incoming = accept(listener, &limits, None, connections.clone());
        tokio::spawn(async move {
            grpc.serve(incoming, &limits, connections, std::future::pending())
                .await
        });
        Self {
            addr,
            shutdown,
            metrics,
        }
    }

    /// A new client on its own connection, as each proxy has.
    async fn client(&self) -> DestinationClient<Channel> {
        DestinationClient::new(self.channel().await)
    }

    /// A new connection.
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A client whose HTTP/2 windows are the protocol's minimum (64 KiB), so a stream it does
    /// not read stops the server's sends quickly.
    async fn small_window_client(&self) -> DestinationClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        DestinationClient::new(channel)
    }
}

fn req(path: &str) -> pb::GetDestination {
    pb::GetDestination {
        path: path.into(),
        context_token: r#"{"ns":"client","nodeName":"node-1"}"#.into(),
        ..Default::default()
    }
}

async fn next<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(LIMIT, stream.message())
        .await
        .expect("a message in time")
        .expect("no error")
        .expect("the stream is open")
}

/// Applies updates to `set` until it equals `want`, failing after [`LIMIT`].
async fn converge(
    stream: &mut Streaming<pb::Update>,
    set: &mut BTreeSet<SocketAddr>,
    want: &BTreeSet<SocketAddr>,
) {
    tokio::time::timeout(LIMIT, async {
        while set != want {
            let update = stream.message().await.unwrap().expect("open");
            apply(set, update);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("converging to {want:?}; holding {set:?}"));
}

fn apply(set: &mut BTreeSet<SocketAddr>, update: pb::Update) {
    match update.update.unwrap() {
        Update::Add(add) => {
            for a in add.addrs {
                set.insert(a.addr.unwrap().try_into().unwrap());
            }
        }
        Update::Remove(remove) => {
            for a in remove.addrs {
                set.remove(&a.try_into().unwrap());
            }
        }
        Update::NoEndpoints(_) => set.clear(),
    }
}

fn addrs(ips: impl IntoIterator<Item = String>, port: u16) -> BTreeSet<SocketAddr> {
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
        .collect()
}

fn web_index() -> SharedIndex {
    let index = mk_index();
    {
        let mut idx = index.write();
        idx.apply(&mk_service(
            "web",
            "10.96.0.10",
            &[("http", 80, json!("http"))],
        ));
        idx.apply(&mk_pod("web-1", "10.0.0.1", true));
        idx.apply(&mk_pod("web-2", "10.0.0.2", true));
        idx.apply(&mk_slice(
            "web",
            "web-abc",
            ("http", 8080),
            &[("10.0.0.1", "web-1"), ("10.0.0.2", "web-2")],
        ));
    }
    index
}

// === path parsing ===

#[test]
fn paths_and_context_tokens() {
    let name = |n: &str| Host::Name(n.into());
    assert_eq!(
        parse_path("web.ns.svc.cluster.local:8080").unwrap(),
        (name("web.ns.svc.cluster.local"), 8080)
    );
    assert_eq!(
        parse_path("Web.NS.svc.cluster.local.").unwrap(),
        (name("web.ns.svc.cluster.local"), 80)
    );
    assert_eq!(
        parse_path("10.0.0.1:9").unwrap(),
        (Host::Ip("10.0.0.1".parse().unwrap()), 9)
    );
    assert_eq!(
        parse_path("[fd00::1]:9").unwrap(),
        (Host::Ip("fd00::1".parse().unwrap()), 9)
    );
    assert_eq!(
        parse_path("fd00::1").unwrap(),
        (Host::Ip("fd00::1".parse().unwrap()), 80)
    );
    for bad in ["", "web:http", "web:70000", ":80", "[fd00::1", "[fd00::1]x"] {
        assert_eq!(
            parse_path(bad).unwrap_err().code(),
            Code::InvalidArgument,
            "{bad:?}"
        );
    }

    assert_eq!(
        parse_cluster_name("web.ns.svc.cluster.local", "cluster.local").unwrap(),
        ClusterName::Service(ObjKey::new("ns", "web"))
    );
    assert_eq!(
        parse_cluster_name("web-0.web.ns.svc.cluster.local", "cluster.local").unwrap(),
        ClusterName::Pod {
            hostname: "web-0".into(),
            service: ObjKey::new("ns", "web")
        }
    );
    for bad in [
        "web.ns",
        "example.com",
        "ns.svc.cluster.local",
        "a.b.c.d.svc.cluster.local",
        "web..svc.cluster.local",
    ] {
        assert!(parse_cluster_name(bad, "cluster.local").is_err(), "{bad:?}");
    }

    let token = |t: &str| context_token(t).unwrap();
    assert_eq!(
        token(r#"{"ns":"emojivoto","nodeName":"n"}"#),
        ContextToken {
            ns: Some("emojivoto".into()),
            node_name: Some("n".into())
        }
    );
    assert_eq!(
        token(r#"{"ns":"a","nodeName":"n","pod":"p"}"#)
            .ns
            .as_deref(),
        Some("a")
    );
    assert_eq!(token("ns:emojivoto").ns.as_deref(), Some("emojivoto"));
    assert_eq!(token("").ns, None);
    assert_eq!(token("{not json").ns, None);
    let longest = format!(
        r#"{{"ns":"{}","nodeName":"{}","pod":"{}"}}"#,
        "n".repeat(63),
        [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        ]
        .join("."),
        "p".repeat(253),
    );
    assert_eq!(token(&longest).ns.as_deref(), Some(&*"n".repeat(63)));
}

#[test]
fn names_must_be_dns_names() {
    let label = "a".repeat(63);
    let longest = [&*label, &*label, &*label, &*"b".repeat(61)].join(".");
    assert_eq!(longest.len(), 253);
    assert_eq!(
        parse_path(&format!("{longest}.:80")).unwrap().0,
        Host::Name(longest.clone())
    );
    for (bad, why) in [
        (
            format!("{longest}b:80"),
            "the name is 254 characters long; a DNS name has at most 253",
        ),
        (
            format!("{}.ns.svc.cluster.local:80", "a".repeat(64)),
            "is 64 characters long; a DNS label has at most 63",
        ),
        (
            format!("{}.ns.svc.cluster.local", "x".repeat(60 * 1024)),
            "a DNS name has at most 253",
        ),
        (
            "web..svc.cluster.local:80".into(),
            "a DNS name has no empty labels",
        ),
        (
            "we_b.ns.svc.cluster.local:80".into(),
            "holds '_'; a DNS label holds only letters, digits and '-'",
        ),
        (
            "-web.ns.svc.cluster.local:80".into(),
            "starts or ends with '-'",
        ),
        (
            "web-.ns.svc.cluster.local:80".into(),
            "starts or ends with '-'",
        ),
        ("wéb.ns.svc.cluster.local:80".into(), "holds 'é'"),
    ] {
        let status = parse_path(&bad).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert!(status.message().contains(why), "{bad:?}: {status:?}");
        // A huge input is quoted in part: the message stays small.
        assert!(status.message().len() < 400, "{status:?}");
    }

    for (bad, why) in [
        (
            format!(r#"{{"ns":"{}"}}"#, "x".repeat(3000)),
            "invalid context token: it is 3009 bytes long; at most 2048 are read",
        ),
        (
            format!(r#"{{"ns":"{}"}}"#, "n".repeat(64)),
            "invalid context token: namespace: the label",
        ),
        (
            r#"{"ns":"a.b"}"#.into(),
            "namespace: the label \"a.b\" holds '.'",
        ),
        (
            "ns:Emojivoto".into(),
            "namespace: the label \"Emojivoto\" holds 'E'",
        ),
        (
            r#"{"ns":"a","nodeName":"node_1"}"#.into(),
            "invalid context token: node name: the label \"node_1\" holds '_'",
        ),
    ] {
        let status = context_token(&bad).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert!(status.message().contains(why), "{bad:?}: {status:?}");
    }
}

// === Get ===

#[tokio::test]
async fn get_rejects_what_it_cannot_serve() {
    let index = web_index();
    let mut alias = mk_service("alias", "", &[]);
    let spec = alias.spec.as_mut().unwrap();
    (spec.type_, spec.external_name) = (Some("ExternalName".into()), Some("example.com".into()));
    (spec.cluster_ip, spec.cluster_ips) = (None, None);
    index.write().apply(&alias);
    let server = TestServer::start(&index).await;
    let mut client = server.client().await;
    for (path, code) in [
        ("10.0.0.1:8080", Code::InvalidArgument),
        ("example.com:80", Code::InvalidArgument),
        ("web.ns.svc.cluster.local:http", Code::InvalidArgument),
        ("missing.ns.svc.cluster.local:80", Code::NotFound),
        ("alias.ns.svc.cluster.local:80", Code::InvalidArgument),
    ] {
        let status = client.get(req(path)).await.expect_err(path);
        assert_eq!(status.code(), code, "{path}: {status:?}");
    }
    let handled = |code: &str| {
        server
            .metrics
            .handled
            .get_or_create(&crate::metrics::HandledLabels {
                grpc_service: "io.linkerd.proxy.destination.Destination",
                grpc_method: "Get",
                grpc_code: code.into(),
            })
            .get()
    };
    assert_eq!((handled("InvalidArgument"), handled("NotFound")), (4, 1));

    // A body past the limit is refused before it is decoded; the connection stays usable.
    let mut huge = req("web.ns.svc.cluster.local:80");
    huge.context_token = "x".repeat(100 * 1024);
    let status = client.get(huge).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("larger than"), "{status:?}");
    client
        .get(req("web.ns.svc.cluster.local:80"))
        .await
        .expect("the same connection serves the next request");

    // A method Destination does not have.
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, pb::Update, _>(
            tonic::Request::new(req("web.ns.svc.cluster.local:80")),
            "/io.linkerd.proxy.destination.Destination/Nope"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

#[tokio::test]
async fn get_streams_adds_removes_and_no_endpoints() {
    let index = web_index();
    let server = TestServer::start(&index).await;
    let mut client = server.client().await;
    let mut stream = client
        .get(req("web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();

    let first = next(&mut stream).await;
    let Some(Update::Add(add)) = first.update else {
        panic!("the first message is an add: {first:?}");
    };
    assert_eq!(add.metric_labels["service"], "web");
    assert_eq!(add.addrs.len(), 2);
    let wa = add
        .addrs
        .iter()
        .find(|a| a.metric_labels["pod"] == "web-1")
        .unwrap();
    assert_eq!(
        SocketAddr::try_from(wa.addr.unwrap()).unwrap(),
        "10.0.0.1:8080".parse().unwrap()
    );
    assert_eq!(
        wa.tls_identity
            .as_ref()
            .unwrap()
            .server_name
            .as_ref()
            .unwrap()
            .name,
        "web-sa.ns.serviceaccount.identity.linkerd.cluster.local"
    );
    let mut set = BTreeSet::new();
    apply(
        &mut set,
        pb::Update {
            update: Some(Update::Add(add)),
        },
    );

    index.write().apply(&mk_pod("web-3", "10.0.0.3", true));
    index.write().apply(&mk_slice(
        "web",
        "web-abc",
        ("http", 8080),
        &[("10.0.0.2", "web-2"), ("10.0.0.3", "web-3")],
    ));
    let update = next(&mut stream).await;
    assert!(matches!(&update.update, Some(Update::Add(a)) if a.addrs.len() == 1));
    apply(&mut set, update);
    let update = next(&mut stream).await;
    assert!(matches!(&update.update, Some(Update::Remove(r)) if r.addrs.len() == 1));
    apply(&mut set, update);
    assert_eq!(set, addrs(["10.0.0.2".into(), "10.0.0.3".into()], 8080));

    index.write().delete::<Service>(NS, "web");
    assert_eq!(
        next(&mut stream).await.update,
        Some(Update::NoEndpoints(pb::NoEndpoints { exists: false }))
    );
    assert_eq!(
        server
            .metrics
            .subscriptions
            .get_or_create(&Metrics::api("get"))
            .get(),
        1
    );
}

/// One subscriber's stream stalls (it never reads, so HTTP/2 flow control stops its sends);
/// another keeps up with every change. Both hold the same key, so they share snapshots.
#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_delay_the_others() {
    let index = web_index();
    let server = TestServer::start(&index).await;
    let mut idle_client = server.small_window_client().await;
    let mut idle = idle_client
        .get(req("web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();
    let mut client = server.client().await;
    let mut stream = client
        .get(req("web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();
    let mut set = BTreeSet::new();
    converge(
        &mut stream,
        &mut set,
        &addrs(["10.0.0.1".into(), "10.0.0.2".into()], 8080),
    )
    .await;

    // Each round swaps between two sets of 500 endpoints: about 10 KiB a round, far past the
    // idle stream's 64 KiB window after a few rounds.
    let mut last = BTreeSet::new();
    for round in 0..100u32 {
        last = swap_round(&index, round);
        converge(&mut stream, &mut set, &last).await;
    }
    assert_eq!(
        index.read().sizes().endpoint_keys,
        1,
        "both streams share one key"
    );

    // The idle subscriber was never dropped: once it reads, it catches up with the latest
    // state, skipping the versions it missed.
    let messages = catch_up(&mut idle, &last).await;
    assert!(
        messages < 200,
        "missed versions are coalesced ({messages} messages for 100 rounds)"
    );
}

/// Reads a stream that was not read until it holds `want`; the number of messages it took.
async fn catch_up(stream: &mut Streaming<pb::Update>, want: &BTreeSet<SocketAddr>) -> usize {
    let mut set = BTreeSet::new();
    let mut messages = 0;
    tokio::time::timeout(LIMIT, async {
        while set != *want {
            apply(&mut set, stream.message().await.unwrap().expect("open"));
            messages += 1;
        }
    })
    .await
    .expect("the idle stream catches up");
    messages
}

/// Replaces web's endpoints with one of two sets of 500 (by `round`'s parity), about 10 KiB
/// of updates; returns the new set.
fn swap_round(index: &SharedIndex, round: u32) -> BTreeSet<SocketAddr> {
    let ips: Vec<String> = (0..500u32)
        .map(|i| format!("10.{}.{}.{}", 1 + round % 2, i / 250, i % 250))
        .collect();
    let endpoints: Vec<(&str, &str)> = ips.iter().map(|ip| (ip.as_str(), "")).collect();
    index
        .write()
        .apply(&mk_slice("web", "web-abc", ("http", 8080), &endpoints));
    addrs(ips, 8080)
}

/// The Get streams of one connection that watch one key are written together, yet each
/// keeps its own pace: one never reads (its 64 KiB stream window fills), one keeps up, one
/// joins midway and starts from the state of that moment, and one the client cancels ends
/// alone.
#[tokio::test]
async fn streams_on_one_connection_keep_their_own_pace() {
    let index = web_index();
    let server = TestServer::start(&index).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(16 << 20)
        .connect()
        .await
        .unwrap();
    let mut client = DestinationClient::new(channel);
    let path = "web.ns.svc.cluster.local:80";
    let mut idle = client.get(req(path)).await.unwrap().into_inner();
    let mut active = client.get(req(path)).await.unwrap().into_inner();
    let subscriptions = || {
        server
            .metrics
            .subscriptions
            .get_or_create(&Metrics::api("get"))
            .get()
    };
    let mut set = BTreeSet::new();
    let mut last = addrs(["10.0.0.1".into(), "10.0.0.2".into()], 8080);
    converge(&mut active, &mut set, &last).await;
    for round in 0..30u32 {
        last = swap_round(&index, round);
        converge(&mut active, &mut set, &last).await;
    }

    let mut late = client.get(req(path)).await.unwrap().into_inner();
    let first = next(&mut late).await;
    let mut late_set = BTreeSet::new();
    apply(&mut late_set, first);
    assert_eq!(
        late_set, last,
        "a stream that joins starts from the current state"
    );
    assert_eq!(subscriptions(), 3);
    drop(late);
    tokio::time::timeout(LIMIT, async {
        while subscriptions() != 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the cancelled stream ends");

    for round in 30..60u32 {
        last = swap_round(&index, round);
        converge(&mut active, &mut set, &last).await;
    }
    let messages = catch_up(&mut idle, &last).await;
    assert!(
        messages < 120,
        "missed versions are coalesced ({messages} messages for 60 rounds)"
    );
    assert_eq!(index.read().sizes().endpoint_keys, 1);
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let index = web_index();
    let server = TestServer::start(&index).await;
    let mut client = server.client().await;
    let mut get = client
        .get(req("web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();
    let mut profile = client
        .get_profile(req("web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();
    next(&mut get).await;
    next(&mut profile).await;
    server.shutdown.send(true).unwrap();
    let ended = tokio::time::timeout(LIMIT, get.message())
        .await
        .expect("in time");
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    let ended = tokio::time::timeout(LIMIT, profile.message())
        .await
        .expect("in time");
    assert!(matches!(ended, Ok(None)), "{ended:?}");
}

// === GetProfile ===

#[tokio::test]
async fn get_profile_by_name_follows_the_service_profile() {
    let index = web_index();
    let server = TestServer::start(&index).await;
    let mut client = server.client().await;
    let mut stream = client
        .get_profile(req("web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert_eq!(first.fully_qualified_name, "web.ns.svc.cluster.local");
    assert!(first.routes.is_empty());
    assert_eq!(first.retry_budget.unwrap().retry_ratio, 0.2);

    index.write().apply(&mk_profile(
        NS,
        "web.ns.svc.cluster.local",
        json!({"routes": [{"name": "GET /stress", "condition": {"method": "GET", "pathRegex": "/stress"}, "timeout": "100ms"}]}),
    ));
    let second = next(&mut stream).await;
    assert_eq!(second.routes.len(), 1);
    assert_eq!(
        second.routes[0].timeout,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 100_000_000
        })
    );

    // The client's own namespace (from the context token) wins.
    index.write().apply(&mk_profile(
        "client",
        "web.ns.svc.cluster.local",
        json!({"routes": [{"name": "mine", "condition": {"pathRegex": "/"}}]}),
    ));
    let third = next(&mut stream).await;
    assert_eq!(third.routes[0].metrics_labels["route"], "mine");
}

#[tokio::test]
async fn get_profile_streams_traffic_split_weights_until_deleted() {
    let index = web_index();
    for (name, ip) in [("web-v1", "10.96.0.21"), ("web-v2", "10.96.0.22")] {
        index
            .write()
            .apply(&mk_service(name, ip, &[("http", 80, json!(8080))]));
    }
    let server = TestServer::start(&index).await;
    let mut client = server.client().await;
    let mut stream = client
        .get_profile(req("web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();
    assert!(next(&mut stream).await.dst_overrides.is_empty());

    let split = |v1: i64, v2: i64| -> oxlink_crds::TrafficSplit {
        serde_json::from_value(json!({
            "apiVersion": "split.smi-spec.io/v1alpha2",
            "kind": "TrafficSplit",
            "metadata": {"namespace": NS, "name": "web-split"},
            "spec": {"service": "web", "backends": [
                {"service": "web-v1", "weight": v1},
                {"service": "web-v2", "weight": v2},
            ]},
        }))
        .unwrap()
    };
    for (v1, v2) in [(90u32, 10u32), (50, 50), (0, 100)] {
        index.write().apply(&split(v1.into(), v2.into()));
        let profile = next(&mut stream).await;
        let got: Vec<(&str, u32)> = profile
            .dst_overrides
            .iter()
            .map(|d| (d.authority.as_str(), d.weight))
            .collect();
        assert_eq!(
            got,
            [
                ("web-v1.ns.svc.cluster.local:80", v1 * 10_000),
                ("web-v2.ns.svc.cluster.local:80", v2 * 10_000),
            ]
        );
    }
    index
        .write()
        .delete::<oxlink_crds::TrafficSplit>(NS, "web-split");
    assert!(next(&mut stream).await.dst_overrides.is_empty());
}

#[tokio::test]
async fn get_profile_by_address_and_invalid_names() {
    let index = web_index();
    let server = TestServer::start(&index).await;
    let mut client = server.client().await;

    let by_cluster_ip = next(
        &mut client
            .get_profile(req("10.96.0.10:80"))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    assert_eq!(
        by_cluster_ip.fully_qualified_name,
        "web.ns.svc.cluster.local"
    );

    let by_pod_ip = next(
        &mut client
            .get_profile(req("10.0.0.1:8080"))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    let endpoint = by_pod_ip.endpoint.unwrap();
    assert_eq!(endpoint.metric_labels["pod"], "web-1");
    assert_eq!(endpoint.metric_labels["namespace"], NS);
    assert!(matches!(
        endpoint.protocol_hint.unwrap().protocol,
        Some(pb::protocol_hint::Protocol::H2(_))
    ));

    let unknown = next(
        &mut client
            .get_profile(req("192.0.2.7:443"))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    assert_eq!(unknown.fully_qualified_name, "");
    assert!(!unknown.opaque_protocol);
    let endpoint = unknown.endpoint.unwrap();
    assert_eq!(
        SocketAddr::try_from(endpoint.addr.unwrap()).unwrap(),
        "192.0.2.7:443".parse().unwrap()
    );
    assert!(endpoint.metric_labels.is_empty() && endpoint.tls_identity.is_none());

    let mut slice = mk_slice("web", "web-abc", ("http", 8080), &[("10.0.0.1", "web-1")]);
    slice.endpoints[0].hostname = Some("web-1".into());
    index.write().apply(&slice);
    let by_pod_name = next(
        &mut client
            .get_profile(req("web-1.web.ns.svc.cluster.local:8080"))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    assert_eq!(by_pod_name.endpoint.unwrap().metric_labels["pod"], "web-1");
    let mut by_hostname = client
        .get(req("web-1.web.ns.svc.cluster.local:80"))
        .await
        .unwrap()
        .into_inner();
    let mut set = BTreeSet::new();
    converge(
        &mut by_hostname,
        &mut set,
        &addrs(["10.0.0.1".into()], 8080),
    )
    .await;

    for path in [
        "example.com:80",
        "web.ns:80",
        "a.b.c.d.svc.cluster.local:80",
        "",
    ] {
        let status = client.get_profile(req(path)).await.expect_err(path);
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
    }
    // Names that are no DNS names, and tokens over the bound, are refused and hold no key.
    let keys = index.read().sizes().profile_keys;
    let huge = format!("{}.ns.svc.cluster.local:80", "a".repeat(60 * 1024));
    let mut long_token = req("web.ns.svc.cluster.local:80");
    long_token.context_token = format!(r#"{{"ns":"{}"}}"#, "a".repeat(4096));
    for request in [req(&huge), req("svc_1.ns.svc.cluster.local:80"), long_token] {
        let status = client.get_profile(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().len() < 400, "{status:?}");
    }
    assert_eq!(index.read().sizes().profile_keys, keys);
}

/// Two Services claiming one cluster IP: GetProfile by that IP is FAILED_PRECONDITION naming
/// both (the proxy does not retry it); a stream opened before the conflict stays open; once one
/// Service is gone, the IP resolves to the other again, whichever was deleted.
#[tokio::test]
async fn get_profile_refuses_a_cluster_ip_that_two_services_claim() {
    let index = web_index();
    let server = TestServer::start(&index).await;
    let mut client = server.client().await;
    let mut before = client
        .get_profile(req("10.96.0.10:80"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next(&mut before).await.fully_qualified_name,
        "web.ns.svc.cluster.local"
    );

    for (first, second) in [("web", "api"), ("api", "web")] {
        index
            .write()
            .apply(&mk_service("api", "10.96.0.10", &[("http", 80, json!(80))]));
        let status = client
            .get_profile(req("10.96.0.10:80"))
            .await
            .expect_err("conflicting cluster IP");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(
            status.message(),
            "found 2 services with conflicting cluster IP 10.96.0.10: ns/api, ns/web"
        );
        // Other ports of the same IP conflict too; other addresses and names do not.
        let status = client
            .get_profile(req("10.96.0.10:8080"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        client.get_profile(req("10.96.0.11:80")).await.unwrap();
        client
            .get_profile(req("api.ns.svc.cluster.local:80"))
            .await
            .unwrap();

        // The conflict ends when one of them goes; the other keeps the IP.
        index.write().delete::<Service>(NS, first);
        let profile = next(
            &mut client
                .get_profile(req("10.96.0.10:80"))
                .await
                .unwrap()
                .into_inner(),
        )
        .await;
        assert_eq!(
            profile.fully_qualified_name,
            format!("{second}.ns.svc.cluster.local")
        );
        // Back to the start: only web.
        index.write().delete::<Service>(NS, second);
        index.write().apply(&mk_service(
            "web",
            "10.96.0.10",
            &[("http", 80, json!("http"))],
        ));
    }
    // The stream opened before any conflict was never ended.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), before.message())
            .await
            .map_or(true, |m| m.unwrap().is_some())
    );
    let refused = crate::metrics::HandledLabels {
        grpc_service: SERVICE,
        grpc_method: "GetProfile",
        grpc_code: format!("{:?}", Code::FailedPrecondition),
    };
    assert_eq!(server.metrics.handled.get_or_create(&refused).get(), 4);
}

/// The request body is one uncompressed length-prefixed message; anything else is refused
/// with a precise status.
#[tokio::test]
async fn request_framing() {
    use prost::Message;
    let read = |bytes: Vec<u8>| crate::frame::decode::<pb::GetDestination>(&bytes);
    let message = pb::GetDestination {
        path: "web.ns.svc.cluster.local:80".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let framed = |flag: u8, len: usize, body: &[u8]| {
        let mut out = vec![flag];
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    };
    let ok = read(framed(0, message.len(), &message)).unwrap();
    assert_eq!(ok.path, "web.ns.svc.cluster.local:80");

    let cases: [(Vec<u8>, Code, &str); 5] = [
        (vec![], Code::Internal, "Missing request message."),
        (vec![0, 0, 0], Code::Internal, "Missing request message."),
        (
            framed(1, message.len(), &message),
            Code::Unimplemented,
            "compressed requests are not supported",
        ),
        (
            framed(0, message.len() + 1, &message),
            Code::InvalidArgument,
            "the request body must be exactly one message",
        ),
        (
            framed(0, 2, &[0x0a, 0x05]),
            Code::InvalidArgument,
            "malformed request: ",
        ),
    ];
    for (body, code, message) in cases {
        let status = read(body.clone()).unwrap_err();
        assert_eq!(status.code(), code, "{body:?}: {status:?}");
        assert!(
            status.message().starts_with(message),
            "{body:?}: {status:?}"
        );
    }
}
