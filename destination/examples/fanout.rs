//! Fan-out benchmark: many subscribers of one Service over loopback gRPC.
//!
//! `cargo run --release -p oxlink-destination --example fanout -- [SUBSCRIBERS] [ENDPOINTS]
//! [CONNECTIONS] [ROUNDS]` starts a destination server in a child process (so its memory is
//! measured alone), opens SUBSCRIBERS `Get` streams for a Service with ENDPOINTS endpoints
//! spread over CONNECTIONS HTTP/2 connections, then changes the Service's EndpointSlice ROUNDS
//! times. It reports the server's resident memory per subscription, the time from each change
//! entering the index to each subscriber holding it (p50/p99/max), the server's CPU time per
//! fan-out, and whether every subscriber ended with exactly the final endpoints.

use futures::StreamExt;
use linkerd2_proxy_api::{
    destination::{GetDestination, destination_client::DestinationClient, update::Update},
    net::TcpAddress,
};
use oxlink_admin::serve::{Limits, ServerMetrics, accept};
use oxlink_destination::{
    Metrics,
    grpc::DestinationGrpc,
    index::{Config, Index, SharedIndex},
};
use serde_json::json;
use std::{
    collections::HashSet,
    io::{BufRead, Write},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::sync::{mpsc, watch};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("serve") {
        let endpoints = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
        let rounds = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20);
        return runtime.block_on(serve(endpoints, rounds));
    }
    let n = |i: usize, default: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (endpoints, rounds) = (n(1, 1_000) as u32, n(3, 20) as u32);
    runtime.block_on(drive(n(0, 10_000), endpoints, n(2, 100), rounds))
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

// === The server process ===

fn slice(ips: impl Iterator<Item = u32>) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    let endpoints: Vec<_> = ips
        .map(|i| {
            json!({
                "addresses": [format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256)],
                "conditions": {"ready": true},
            })
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("a valid EndpointSlice")
}

async fn serve(endpoints: u32, rounds: u32) -> Result<(), Error> {
    let index: SharedIndex = Index::shared(Config::default());
    let service: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": "web"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))?;
    index.write().apply(&service);
    index.write().apply(&slice(0..endpoints));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (_shutdown, shutdown_rx) = watch::channel(false);
    let grpc = Arc::new(DestinationGrpc::new(
        Arc::new(index.clone()),
        "cluster.local",
        shutdown_rx,
        Arc::new(Metrics::default()),
    ));
    // The limits the server runs with (10,000 subscribers over 20 connections is 500 streams
    // per connection, within the default 1,000).
    let (limits, connections) = (Limits::GRPC, ServerMetrics::unregistered("destination"));
    let incoming = accept(listener, &limits, None, connections.clone());
    tokio::spawn(async move {
        grpc.serve(incoming, &limits, connections, std::future::pending())
            .await
    });
    println!("listening {addr}");

    // Commands on stdin: `change R` adds endpoint `endpoints + R` and reports when the change
    // entered the index; `quit` ends. The slices are built up front, so the CPU time measured
    // per change is the index's and the fan-out's.
    let mut changes: Vec<_> = (1..=rounds).map(|r| slice(0..endpoints + r)).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|r| r.parse::<u32>().ok()),
        ) {
            (Some("change"), Some(round)) if (1..=rounds).contains(&round) => {
                let next = std::mem::take(&mut changes[round as usize - 1]);
                let start = now_nanos();
                index.write().apply(&next);
                println!("changed {start}");
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

// === The driver process ===

/// Resident memory and CPU time (user + system, in clock ticks) of a process.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (rss_kib, ticks(11) + ticks(12))
}

async fn drive(
    subscribers: usize,
    endpoints: u32,
    connections: usize,
    rounds: u32,
) -> Result<(), Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", &endpoints.to_string(), &rounds.to_string()])
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
    let addr: SocketAddr = read_line().trim_start_matches("listening ").parse()?;

    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await?,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, _) = usage(pid);

    // Each subscriber reports (its index, messages received, when, addresses it holds) after
    // every message. The subscribers of one connection run in one task, as one proxy's
    // streams share one connection, so the load generator's own scheduling stays small next
    // to the server's work.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(usize, u32, u128, usize)>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        let group = futures::stream::FuturesUnordered::new();
        for i in (c..subscribers).step_by(connections) {
            let mut client = DestinationClient::new(channel.clone());
            let seen = seen_tx.clone();
            group.push(async move {
                let request = GetDestination {
                    path: "web.bench.svc.cluster.local:80".into(),
                    ..Default::default()
                };
                let mut stream = client.get(request).await.expect("Get").into_inner();
                let mut set: HashSet<TcpAddress> = HashSet::new();
                let mut received = 0;
                while let Ok(Some(update)) = stream.message().await {
                    match update.update {
                        Some(Update::Add(add)) => {
                            set.extend(add.addrs.into_iter().filter_map(|a| a.addr))
                        }
                        Some(Update::Remove(rm)) => {
                            for a in rm.addrs {
                                set.remove(&a);
                            }
                        }
                        _ => {}
                    }
                    received += 1;
                    let _ = seen.send((i, received, now_nanos(), set.len()));
                }
            });
        }
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut group = group;
            tokio::select! {
                _ = async { while group.next().await.is_some() {} } => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }));
    }
    let mut received = vec![0u32; subscribers];
    let mut held = vec![0usize; subscribers];
    let mut ready = 0;
    while ready < subscribers {
        let (i, n, _, len) = seen_rx.recv().await.ok_or("subscribers ended")?;
        if received[i] == 0 && n >= 1 {
            ready += 1;
        }
        received[i] = n;
        held[i] = len;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, _) = usage(pid);
    println!(
        "{subscribers} subscribers, {endpoints} endpoints, {connections} connections: server RSS {} KiB -> {} KiB, {:.2} KiB per subscription",
        rss_before,
        rss_after,
        (rss_after.saturating_sub(rss_before)) as f64 / subscribers as f64
    );

    let mut latencies = Vec::new();
    let mut cpu_ticks = Vec::new();
    for round in 1..=rounds {
        let (_, cpu_before) = usage(pid);
        writeln!(to_server, "change {round}")?;
        let start: u128 = read_line().trim_start_matches("changed ").parse()?;
        let mut pending = subscribers;
        while pending > 0 {
            let (i, n, at, len) = seen_rx.recv().await.ok_or("subscribers ended")?;
            held[i] = len;
            if n > received[i] {
                received[i] = n;
                pending -= 1;
                latencies.push(at.saturating_sub(start) as f64 / 1e6);
            }
        }
        let (_, cpu_after) = usage(pid);
        cpu_ticks.push(cpu_after - cpu_before);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ticks_per_sec = 100.0;
    let cpu_ms = cpu_ticks.iter().sum::<u64>() as f64 * 1000.0 / ticks_per_sec / rounds as f64;
    println!(
        "{rounds} changes: change → last subscriber p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server CPU {cpu_ms:.0} ms per fan-out",
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );

    let _ = stop_tx.send(true);
    for task in tasks {
        task.await?;
    }
    // Anything still queued arrived after the last round was counted.
    while let Ok((i, _, _, len)) = seen_rx.try_recv() {
        held[i] = len;
    }
    let lost = held
        .iter()
        .filter(|&&len| len != (endpoints + rounds) as usize)
        .count();
    println!("subscribers without the final endpoints: {lost}");
    let _ = writeln!(to_server, "quit");
    let _ = child.wait();
    Ok(())
}
