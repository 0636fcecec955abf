//! Streams that come and go leave no key behind: many streams for distinct keys (unknown
//! names, arbitrary IPs, node filters, workload ports, egress addresses), each answered and
//! then reset by the client, over one HTTP/2 connection per server, leave every
//! `destination_index_subscription_keys` gauge where it started.

use super::*;
use crate::{discover::ObjKey, index::SharedIndex, policy::DiscoverPolicy, test_util::*};
use futures::StreamExt;
use linkerd2_proxy_api::{
    destination::destination_client::DestinationClient,
    inbound::{PortSpec, inbound_server_policies_client::InboundServerPoliciesClient},
    net::TcpAddress,
    outbound::{TrafficSpec, outbound_policies_client::OutboundPoliciesClient, traffic_spec},
};
use oxlink_admin::serve::{Limits, ServerMetrics, accept};
use prometheus_client::registry::Registry;
use serde_json::json;
use std::{collections::BTreeMap, future::Future, time::Duration};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// GetProfile streams for unknown names, as in the report that found the leak.
const NAMES: u32 = 20_000;
/// Streams for each other kind of key: enough that a leak shows in thousands of keys, few
/// enough to keep an unoptimized test quick (`cargo xtask bench destination-churn` runs
/// 20,000 of each, optimized, and measures the server's memory).
const STREAMS: u32 = 4_000;
/// Streams open at once on the connection.
const CONCURRENCY: usize = 64;
const LIMIT: Duration = Duration::from_secs(10);

/// Destination and policy in-process on 127.0.0.1:0 over `index`, with the metrics registry a
/// scrape reads.
struct Servers {
    destination: Channel,
    policy: Channel,
    registry: Registry,
    metrics: Arc<Metrics>,
    _shutdown: watch::Sender<bool>,
}

async fn start(index: &SharedIndex) -> Servers {
    let (shutdown, rx) = watch::channel(false);
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, index.clone());
    let discover = Arc::new(index.clone());
    let destination = Arc::new(DestinationGrpc::new(
        discover.clone(),
        "cluster.local",
        rx.clone(),
        metrics.clone(),
    ));
    let policy = Arc::new(PolicyService::new(
        discover,
        "cluster.local",
        rx,
        metrics.clone(),
    ));
    Servers {
        destination: connect(destination).await,
        policy: connect(policy).await,
        registry,
        metrics,
        _shutdown: shutdown,
    }
}

/// One connection to `service` served on a fresh listener.
async fn connect<S: GrpcService>(service: Arc<S>) -> Channel {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (limits, connections) = (Limits::GRPC, ServerMetrics::unregistered("destination"));
    let incoming = accept(listener, &limits, None, connections.clone());
    tokio::spawn(async move {
        serve(
            service,
            incoming,
            &limits,
            connections,
            std::future::pending(),
        )
        .await
    });
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

impl Servers {
    /// The subscription-key gauges and open-stream gauges as a scrape reads them.
    fn scrape(&self) -> BTreeMap<String, i64> {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &self.registry).unwrap();
        body.lines()
            .filter(|l| {
                l.starts_with("destination_index_subscription_keys")
                    || l.starts_with("destination_subscriptions")
            })
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// The scraped gauges once they stop changing toward `want`, or after [`LIMIT`]: a
    /// stream's key is released when its connection task sees the reset, just after the
    /// client's last message.
    async fn settled(&self, want: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let now = self.scrape();
            if subset(want, &now) || tokio::time::Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether every gauge of `want` has its value in `got` (a gauge `got` has and `want` lacks
/// must be zero: a stream gauge created during the run).
fn subset(want: &BTreeMap<String, i64>, got: &BTreeMap<String, i64>) -> bool {
    got.iter()
        .all(|(k, v)| want.get(k).copied().unwrap_or(0) == *v)
}

/// Opens `n` streams with `open(i)`, [`CONCURRENCY`] at a time; `open` returns once the
/// stream's first message arrived, and dropping the stream resets it.
async fn churn<F, Fut>(n: u32, open: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ()>,
{
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, open)
        .await;
}

/// The resident set of this test process, in KiB (other tests share it: printed, not
/// asserted; `cargo xtask bench destination-churn` measures a server process alone).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn index() -> SharedIndex {
    let index = mk_index();
    {
        let mut idx = index.write();
        idx.apply(&mk_service(
            "web",
            "10.96.0.10",
            &[("http", 80, json!("http"))],
        ));
        idx.apply(&mk_pod("web-1", "10.0.0.1", true));
        idx.apply(&mk_slice(
            "web",
            "web-abc",
            ("http", 8080),
            &[("10.0.0.1", "web-1")],
        ));
    }
    index
}

/// A distinct address for stream `i` in `first.x.y.z`.
fn addr(first: u8, i: u32, port: u16) -> TcpAddress {
    let ip = std::net::Ipv4Addr::new(first, (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(ip.into(), port).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_streams_leave_no_keys_behind() {
    let index = index();
    let servers = start(&index).await;
    // One subscriber that stays: its key must survive the churn around it.
    let mut kept = DestinationClient::new(servers.destination.clone())
        .get_profile(pb::GetDestination {
            path: "web.ns.svc.cluster.local:80".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    kept.message().await.unwrap().unwrap();
    let start = servers.settled(&servers.scrape()).await;
    assert_eq!(
        start[r#"destination_index_subscription_keys{api="get_profile"}"#],
        1
    );
    let rss_start = rss_kib();

    let destination = DestinationClient::new(servers.destination.clone());
    let inbound = InboundServerPoliciesClient::new(servers.policy.clone());
    let outbound = OutboundPoliciesClient::new(servers.policy.clone());
    let get_profile = |path: String, token: &str| {
        let mut client = destination.clone();
        let request = pb::GetDestination {
            path,
            context_token: token.into(),
            ..Default::default()
        };
        async move {
            let mut stream = client.get_profile(request).await.unwrap().into_inner();
            stream.message().await.unwrap().expect("a default profile");
        }
    };
    // Names no Service has, from distinct client namespaces too.
    churn(NAMES, |i| {
        get_profile(
            format!("svc-{i}.ns-{}.svc.cluster.local:80", i % 7),
            &format!(r#"{{"ns":"client-{}"}}"#, i % 3),
        )
    })
    .await;
    // Arbitrary IPs.
    churn(STREAMS, |i| {
        let addr = SocketAddr::try_from(addr(192, i, 8080)).unwrap();
        get_profile(addr.to_string(), "")
    })
    .await;
    // Get: one Service, from distinct nodes and for distinct ports.
    churn(STREAMS, |i| {
        let mut client = destination.clone();
        let request = pb::GetDestination {
            path: format!("web.ns.svc.cluster.local:{}", 1 + i % 3),
            context_token: format!(r#"{{"ns":"client","nodeName":"node-{i}"}}"#),
            ..Default::default()
        };
        async move {
            let mut stream = client.get(request).await.unwrap().into_inner();
            stream.message().await.unwrap().expect("an update");
        }
    })
    .await;
    // Inbound: every port of one pod.
    churn(STREAMS, |i| {
        let mut client = inbound.clone();
        let spec = PortSpec {
            workload: "ns:web-1".into(),
            port: 1 + i,
        };
        async move {
            let mut stream = client.watch_port(spec).await.unwrap().into_inner();
            stream.message().await.unwrap().expect("a policy");
        }
    })
    .await;
    // Outbound: every port of one Service, then addresses outside the cluster networks.
    churn(STREAMS, |i| {
        let mut client = outbound.clone();
        let target = if i % 2 == 0 {
            traffic_spec::Target::Authority(format!("web.ns.svc.cluster.local:{}", 1 + i / 2))
        } else {
            traffic_spec::Target::Addr(addr(198, i, 443))
        };
        let spec = TrafficSpec {
            source_workload: "ns:client".into(),
            target: Some(target),
        };
        async move {
            let mut stream = client.watch(spec).await.unwrap().into_inner();
            stream.message().await.unwrap().expect("a policy");
        }
    })
    .await;
    // The unary policy lookups subscribe too, for as long as they answer.
    for i in 0..100 {
        inbound
            .clone()
            .get_port(PortSpec {
                workload: "ns:web-1".into(),
                port: 1 + i,
            })
            .await
            .unwrap();
    }

    let end = servers.settled(&start).await;
    let rss_end = rss_kib();
    eprintln!(
        "{NAMES} + 4 x {STREAMS} streams: keys {start:?} -> {end:?}; \
         this test process's RSS {rss_start} KiB -> {rss_end} KiB"
    );
    assert!(
        subset(&start, &end),
        "keys left behind: {start:?} -> {end:?}"
    );
    let started = servers
        .metrics
        .started
        .get_or_create(&crate::metrics::MethodLabels {
            grpc_service: SERVICE,
            grpc_method: "GetProfile",
        })
        .get();
    assert_eq!(
        started,
        1 + u64::from(NAMES + STREAMS),
        "every stream was served"
    );

    // The subscriber that stayed still follows its Service.
    index.write().apply(&mk_profile(
        NS,
        "web.ns.svc.cluster.local",
        json!({"routes": [{"name": "GET /", "condition": {"method": "GET", "pathRegex": "/"}}]}),
    ));
    let update = tokio::time::timeout(LIMIT, kept.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(update.routes.len(), 1);
    // And the index still serves each key afresh.
    let fresh = index
        .inbound(&crate::policy::Workload::Pod(ObjKey::new(NS, "web-1")), 1)
        .unwrap();
    assert_eq!(index.read().policy_sizes().inbound_keys, 1);
    drop(fresh);
    assert_eq!(index.read().policy_sizes().inbound_keys, 0);
}
