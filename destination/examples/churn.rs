//! Churn benchmark: streams that come and go, each for a key of its own.
//!
//! `cargo run --release -p oxlink-destination --example churn -- [STREAMS] [ROUNDS]` starts
//! destination and the policy APIs in a child process (so its memory is measured alone) and,
//! ROUNDS times, opens STREAMS streams of each kind over one HTTP/2 connection per server,
//! 64 at a time, each answered and then reset: GetProfile for names no Service has, GetProfile
//! for arbitrary IPs, Get from distinct nodes, WatchPort for every port of a pod, Watch for a
//! Service's ports and for addresses outside the cluster. After each round it reports the
//! server's subscription keys (as `destination_index_subscription_keys` counts them) and its
//! resident memory.

use futures::StreamExt;
use linkerd2_proxy_api::{
    destination::{GetDestination, destination_client::DestinationClient},
    inbound::{PortSpec, inbound_server_policies_client::InboundServerPoliciesClient},
    net::TcpAddress,
    outbound::{TrafficSpec, outbound_policies_client::OutboundPoliciesClient, traffic_spec},
};
use oxlink_admin::serve::{Limits, ServerMetrics, accept};
use oxlink_destination::{
    Metrics,
    grpc::{DestinationGrpc, PolicyService},
    index::{Config, Index, SharedIndex},
};
use serde_json::json;
use std::{
    future::Future,
    io::{BufRead, Write},
    net::{Ipv4Addr, SocketAddr},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};

type Error = Box<dyn std::error::Error + Send + Sync>;

const CONCURRENCY: usize = 64;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("serve") {
        return runtime.block_on(serve());
    }
    let n = |i: usize, default: u32| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    runtime.block_on(drive(n(0, 20_000), n(1, 2)))
}

// === The server process ===

async fn serve() -> Result<(), Error> {
    let index: SharedIndex = Index::shared(Config::default());
    let objects = [
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "bench", "name": "web"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "bench", "name": "web-1", "labels": {"app": "web"}},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]},
        }),
    ];
    index
        .write()
        .apply::<k8s_openapi::api::core::v1::Service>(&serde_json::from_value(objects[0].clone())?);
    index
        .write()
        .apply::<k8s_openapi::api::core::v1::Pod>(&serde_json::from_value(objects[1].clone())?);

    let (_shutdown, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let discover = Arc::new(index.clone());
    let dst = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let policy = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {} {}", dst.local_addr()?, policy.local_addr()?);
    let grpc = Arc::new(DestinationGrpc::new(
        discover.clone(),
        "cluster.local",
        shutdown_rx.clone(),
        metrics.clone(),
    ));
    // The limits the servers run with: the bench keeps 64 streams open at a time.
    let limits = Limits::GRPC;
    let (l, connections) = (limits.clone(), ServerMetrics::unregistered("destination"));
    let incoming = accept(dst, &l, None, connections.clone());
    tokio::spawn(async move {
        grpc.serve(incoming, &l, connections, std::future::pending())
            .await
    });
    let policy_grpc = Arc::new(PolicyService::new(
        discover,
        "cluster.local",
        shutdown_rx,
        metrics,
    ));
    let connections = ServerMetrics::unregistered("policy");
    let incoming = accept(policy, &limits, None, connections.clone());
    tokio::spawn(async move {
        policy_grpc
            .serve(incoming, &limits, connections, std::future::pending())
            .await
    });

    // `keys` prints the subscription keys; anything else ends.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        if line.trim() != "keys" {
            return Ok(());
        }
        let (sizes, policy) = {
            let index = index.read();
            (index.sizes(), index.policy_sizes())
        };
        println!(
            "keys get={} get_profile={} inbound={} outbound={}",
            sizes.endpoint_keys, sizes.profile_keys, policy.inbound_keys, policy.outbound_keys
        );
    }
    Ok(())
}

// === The driver process ===

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn churn<F, Fut>(n: u32, open: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ()>,
{
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, open)
        .await;
}

fn addr(first: u8, i: u32, port: u16) -> TcpAddress {
    let ip = Ipv4Addr::new(first, (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(ip.into(), port).into()
}

async fn connect(addr: &str) -> Result<Channel, Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

/// One round: `n` streams of each kind.
async fn round(n: u32, destination: &Channel, policy: &Channel) {
    let dst = DestinationClient::new(destination.clone());
    let get_profile = |path: String| {
        let mut client = dst.clone();
        let request = GetDestination {
            path,
            context_token: r#"{"ns":"client"}"#.into(),
            ..Default::default()
        };
        async move {
            let mut stream = client
                .get_profile(request)
                .await
                .expect("GetProfile")
                .into_inner();
            stream.message().await.expect("a profile");
        }
    };
    churn(n, |i| {
        get_profile(format!("svc-{i}.bench.svc.cluster.local:80"))
    })
    .await;
    churn(n, |i| {
        get_profile(
            SocketAddr::try_from(addr(192, i, 8080))
                .unwrap()
                .to_string(),
        )
    })
    .await;
    churn(n, |i| {
        let mut client = dst.clone();
        let request = GetDestination {
            path: "web.bench.svc.cluster.local:80".into(),
            context_token: format!(r#"{{"ns":"client","nodeName":"node-{i}"}}"#),
            ..Default::default()
        };
        async move {
            let mut stream = client.get(request).await.expect("Get").into_inner();
            stream.message().await.expect("an update");
        }
    })
    .await;
    let inbound = InboundServerPoliciesClient::new(policy.clone());
    churn(n, |i| {
        let mut client = inbound.clone();
        let spec = PortSpec {
            workload: "bench:web-1".into(),
            port: 1 + i % 65_535,
        };
        async move {
            let mut stream = client
                .watch_port(spec)
                .await
                .expect("WatchPort")
                .into_inner();
            stream.message().await.expect("a policy");
        }
    })
    .await;
    let outbound = OutboundPoliciesClient::new(policy.clone());
    churn(n, |i| {
        let mut client = outbound.clone();
        let target = if i % 2 == 0 {
            traffic_spec::Target::Authority(format!(
                "web.bench.svc.cluster.local:{}",
                1 + (i / 2) % 65_535
            ))
        } else {
            traffic_spec::Target::Addr(addr(198, i, 443))
        };
        let spec = TrafficSpec {
            source_workload: "bench:client".into(),
            target: Some(target),
        };
        async move {
            let mut stream = client.watch(spec).await.expect("Watch").into_inner();
            stream.message().await.expect("a policy");
        }
    })
    .await;
}

async fn drive(streams: u32, rounds: u32) -> Result<(), Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut to_server = child.stdin.take().ok_or("child stdin")?;
    let mut from_server =
        std::io::BufReader::new(child.stdout.take().ok_or("child stdout")?).lines();
    let mut read_line = move || {
        from_server
            .next()
            .transpose()
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    let listening = read_line();
    let mut addrs = listening.trim_start_matches("listening ").split(' ');
    let destination = connect(addrs.next().ok_or("no address")?).await?;
    let policy = connect(addrs.next().ok_or("no policy address")?).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    writeln!(to_server, "keys")?;
    println!("start: {}, server RSS {} KiB", read_line(), rss_kib(pid));
    for r in 1..=rounds {
        let started = Instant::now();
        round(streams, &destination, &policy).await;
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        writeln!(to_server, "keys")?;
        println!(
            "round {r}: {streams} streams of each of 5 kinds in {:.1} s ({:.0} streams/s): {}, server RSS {} KiB",
            elapsed.as_secs_f64(),
            f64::from(5 * streams) / elapsed.as_secs_f64(),
            read_line(),
            rss_kib(pid)
        );
    }
    let _ = writeln!(to_server, "quit");
    let _ = child.wait();
    Ok(())
}
