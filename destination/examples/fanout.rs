//! Fan-out benchmark: many proxies subscribed to one Service over loopback gRPC.
//!
//! `cargo run --release -p oxlink-destination --example fanout -- [SUBSCRIBERS] [ENDPOINTS]
//! [CONNECTIONS] [ROUNDS] [NODES] [--hints] [--no-token]` starts a destination server in a
//! child process (so its memory and CPU are measured alone), opens SUBSCRIBERS `Get` streams
//! for a Service with ENDPOINTS endpoints (meshed pods, so each endpoint carries its identity
//! and labels) over CONNECTIONS HTTP/2 connections, then changes the Service's EndpointSlice
//! ROUNDS times, adding one endpoint each time.
//!
//! Each subscriber sends the context token an injected proxy sends,
//! `{"ns":"client","nodeName":"node-N","pod":"client-I"}`, with the subscribers spread evenly
//! over NODES nodes (in two zones), so the index holds one key per node, as it does for real
//! proxies. `--hints` gives the endpoints topology hints (each endpoint for its own node's
//! zone), so the keys of the two zones see different endpoints, and each change adds one
//! endpoint per zone so that every subscriber gets it. `--no-token` sends no context token
//! (every subscriber shares one key).
//!
//! It reports:
//! - `keys:` the server's resident memory per key (the first subscriber of each node) and per
//!   further subscription, and in total per subscription;
//! - `fan-out`: the time from each change entering the index to each subscriber holding it
//!   (p50/p99/max), and the server's own time from the change to its last write of the round
//!   into the sockets (p50/p99), then the server's and the load generator's CPU per fan-out:
//!   the two share the machine, so the client's CPU is time the server did not get;
//! - whether every subscriber ended with exactly the endpoints it should hold.

use futures::StreamExt;
use linkerd2_proxy_api::{
    destination::GetDestination,
    net::{TcpAddress, ip_address::Ip},
};
use oxlink_admin::serve::{Limits, ServerMetrics, accept};
use oxlink_destination::{
    Metrics,
    grpc::DestinationGrpc,
    index::{Config, Index, SharedIndex},
};
use serde_json::{Value, json};
use std::{
    collections::HashSet,
    io::{BufRead, Write},
    net::SocketAddr,
    pin::Pin,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{mpsc, watch},
};

type Error = Box<dyn std::error::Error + Send + Sync>;

const ZONES: [&str; 2] = ["zone-a", "zone-b"];

/// The shape of one run.
#[derive(Clone, Copy, Debug)]
struct Shape {
    subscribers: usize,
    endpoints: u32,
    connections: usize,
    rounds: u32,
    nodes: u32,
    hints: bool,
    token: bool,
}

impl Shape {
    fn parse(args: &[String]) -> Result<Self, Error> {
        let flag = |f: &str| args.iter().any(|a| a == f);
        let numbers: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
        let n = |i: usize, default: usize| -> Result<usize, Error> {
            match numbers.get(i) {
                None => Ok(default),
                Some(v) => Ok(v.parse().map_err(|_| format!("not a number: {v}"))?),
            }
        };
        let shape = Self {
            subscribers: n(0, 10_000)?,
            endpoints: n(1, 1_000)? as u32,
            connections: n(2, 100)?.max(1),
            rounds: n(3, 20)? as u32,
            nodes: n(4, 100)?.max(1) as u32,
            hints: flag("--hints"),
            token: !flag("--no-token"),
        };
        if shape.hints && !shape.nodes.is_multiple_of(2) {
            return Err("--hints needs an even number of nodes (two zones)".into());
        }
        Ok(shape)
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            self.subscribers.to_string(),
            self.endpoints.to_string(),
            self.connections.to_string(),
            self.rounds.to_string(),
            self.nodes.to_string(),
        ];
        if self.hints {
            args.push("--hints".into());
        }
        if !self.token {
            args.push("--no-token".into());
        }
        args
    }

    /// Endpoints added per change: one per zone with hints, so every key changes.
    fn per_change(&self) -> u32 {
        if self.hints { 2 } else { 1 }
    }

    /// How many endpoints exist after `round` changes.
    fn endpoints_after(&self, round: u32) -> u32 {
        self.endpoints + round * self.per_change()
    }

    /// The node endpoint `i` runs on, and its zone.
    fn endpoint_node(&self, i: u32) -> u32 {
        i % self.nodes
    }

    /// How many of the endpoints after `round` changes a subscriber on `node` should hold.
    fn expected(&self, node: u32, round: u32) -> usize {
        let all = self.endpoints_after(round);
        if !(self.hints && self.token) {
            return all as usize;
        }
        (0..all)
            .filter(|&i| self.endpoint_node(i) % 2 == node % 2)
            .count()
    }
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("serve") {
        return runtime.block_on(serve(Shape::parse(&args[1..])?));
    }
    runtime.block_on(drive(Shape::parse(&args)?))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

// === The server process ===

fn ip(i: u32) -> String {
    format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256)
}

fn node(n: u32) -> Value {
    json!({"metadata": {"name": format!("node-{n}"), "labels": {"topology.kubernetes.io/zone": ZONES[n as usize % 2]}}})
}

/// A meshed pod of the `web` Deployment behind endpoint `i`.
fn pod(shape: &Shape, i: u32) -> Value {
    json!({
        "metadata": {
            "namespace": "bench", "name": format!("web-5d8f-{i}"),
            "labels": {"app": "web", "pod-template-hash": "5d8f", "linkerd.io/control-plane-ns": "linkerd"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "rs", "controller": true}],
        },
        "spec": {
            "serviceAccountName": "web",
            "nodeName": format!("node-{}", shape.endpoint_node(i)),
            "containers": [{"name": "web", "image": "web", "ports": [{"name": "http", "containerPort": 8080}]}],
        },
        "status": {"phase": "Running", "podIP": ip(i), "podIPs": [{"ip": ip(i)}]},
    })
}

fn slice(shape: &Shape, count: u32) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    let endpoints: Vec<_> = (0..count)
        .map(|i| {
            let n = shape.endpoint_node(i);
            let zone = ZONES[n as usize % 2];
            let mut endpoint = json!({
                "addresses": [ip(i)],
                "conditions": {"ready": true},
                "nodeName": format!("node-{n}"),
                "zone": zone,
                "targetRef": {"kind": "Pod", "namespace": "bench", "name": format!("web-5d8f-{i}")},
            });
            if shape.hints {
                endpoint["hints"] = json!({"forZones": [{"name": zone}]});
            }
            endpoint
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

/// When the server last wrote to any connection (nanoseconds since the epoch).
static LAST_WRITE: AtomicU64 = AtomicU64::new(0);

/// A connection whose writes are timed.
struct Timed<IO>(IO);

impl<IO: AsyncRead + Unpin> AsyncRead for Timed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Timed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            LAST_WRITE.fetch_max(now_nanos(), Ordering::Relaxed);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            LAST_WRITE.fetch_max(now_nanos(), Ordering::Relaxed);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

async fn serve(shape: Shape) -> Result<(), Error> {
    let index: SharedIndex = Index::shared(Config::default());
    let service: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": "web"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))?;
    for n in 0..shape.nodes {
        let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(node(n))?;
        index.write().apply(&node);
    }
    for i in 0..shape.endpoints_after(shape.rounds) {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod(&shape, i))?;
        index.write().apply(&pod);
    }
    index.write().apply(&service);
    index.write().apply(&slice(&shape, shape.endpoints));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (_shutdown, shutdown_rx) = watch::channel(false);
    let grpc = Arc::new(DestinationGrpc::new(
        Arc::new(index.clone()),
        "cluster.local",
        shutdown_rx,
        Arc::new(Metrics::default()),
    ));
    // The limits the server runs with (at most 1,000 streams per connection by default).
    let (limits, connections) = (Limits::GRPC, ServerMetrics::unregistered("destination"));
    let incoming = accept(listener, &limits, None, connections.clone()).map(Timed);
    tokio::spawn(async move {
        grpc.serve(incoming, &limits, connections, std::future::pending())
            .await
    });
    println!("listening {addr}");

    // Commands on stdin: `change R` applies the slice after R changes and reports when the
    // change entered the index; `last-write` reports the last write to a connection; `keys`
    // the index's subscription keys; anything else ends. The slices are built up front, so
    // the CPU time measured per change is the index's and the fan-out's.
    let mut changes: Vec<_> = (1..=shape.rounds)
        .map(|r| slice(&shape, shape.endpoints_after(r)))
        .collect();
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
            (Some("change"), Some(round)) if (1..=shape.rounds).contains(&round) => {
                let next = std::mem::take(&mut changes[round as usize - 1]);
                let start = now_nanos();
                index.write().apply(&next);
                println!("changed {start}");
            }
            (Some("last-write"), _) => {
                println!("last-write {}", LAST_WRITE.load(Ordering::Relaxed))
            }
            (Some("keys"), _) => println!("keys {}", index.read().sizes().endpoint_keys),
            _ => return Ok(()),
        }
    }
    Ok(())
}

// === The driver process ===

/// Resident memory (KiB) and CPU time (user + system, in clock ticks) of a process.
fn usage(pid: &str) -> (u64, u64) {
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

/// The parts of a Destination `Update` the load generator reads: the addresses added and
/// removed (fields 1 and 2 of its `oneof`). Everything else an endpoint carries (identity,
/// labels, protocol hint) is skipped undecoded, so that one process can stand in for
/// thousands of proxies without spending most of the machine decoding what it never reads.
#[derive(Clone, PartialEq, prost::Message)]
struct AddrsUpdate {
    #[prost(message, optional, tag = "1")]
    add: Option<Added>,
    #[prost(message, optional, tag = "2")]
    remove: Option<Removed>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Added {
    #[prost(message, repeated, tag = "1")]
    addrs: Vec<AddedAddr>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AddedAddr {
    #[prost(message, optional, tag = "1")]
    addr: Option<TcpAddress>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Removed {
    #[prost(message, repeated, tag = "1")]
    addrs: Vec<TcpAddress>,
}

/// An IPv4 address and port as one number, to keep 10,000 subscribers' sets small.
fn addr_key(addr: &TcpAddress) -> u64 {
    let ip = match addr.ip.as_ref().and_then(|ip| ip.ip) {
        Some(Ip::Ipv4(ip)) => ip as u64,
        _ => u64::MAX >> 16,
    };
    (ip << 16) | addr.port as u64
}

/// What a subscriber reports after each message: its index, messages received, when, and
/// how many addresses it holds.
type Seen = (usize, u32, u64, usize);

/// Opens the Get streams of `subscribers` on their connections (`i % connections`), the
/// streams of one connection in one task, as one proxy's streams share one connection, so
/// the load generator's own scheduling stays small next to the server's work.
fn subscribe(
    shape: Shape,
    subscribers: impl Iterator<Item = usize>,
    channels: &[tonic::transport::Channel],
    seen: &mpsc::UnboundedSender<Seen>,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let groups: Vec<_> = channels
        .iter()
        .map(|_| futures::stream::FuturesUnordered::new())
        .collect();
    for i in subscribers {
        let c = i % channels.len();
        let mut grpc = tonic::client::Grpc::new(channels[c].clone());
        let seen = seen.clone();
        let context_token = if shape.token {
            format!(
                r#"{{"ns":"client","nodeName":"node-{}","pod":"client-{i}"}}"#,
                i as u32 % shape.nodes
            )
        } else {
            String::new()
        };
        groups[c].push(async move {
            let request = GetDestination {
                path: "web.bench.svc.cluster.local:80".into(),
                context_token,
                ..Default::default()
            };
            grpc.ready().await.expect("connection");
            let codec = tonic_prost::ProstCodec::<GetDestination, AddrsUpdate>::default();
            let mut stream = grpc
                .server_streaming(
                    tonic::Request::new(request),
                    http::uri::PathAndQuery::from_static(
                        "/io.linkerd.proxy.destination.Destination/Get",
                    ),
                    codec,
                )
                .await
                .expect("Get")
                .into_inner();
            let mut set: HashSet<u64> = HashSet::new();
            let mut received = 0;
            while let Ok(Some(update)) = stream.message().await {
                if let Some(add) = update.add {
                    set.extend(
                        add.addrs
                            .iter()
                            .filter_map(|a| a.addr.as_ref())
                            .map(addr_key),
                    );
                }
                if let Some(remove) = update.remove {
                    for a in &remove.addrs {
                        set.remove(&addr_key(a));
                    }
                }
                received += 1;
                let _ = seen.send((i, received, now_nanos(), set.len()));
            }
        });
    }
    groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|mut group| {
            let mut stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = async { while group.next().await.is_some() {} } => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            })
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn drive(shape: Shape) -> Result<(), Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .args(shape.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id().to_string();
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
    for _ in 0..shape.connections {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await?,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, _) = usage(&pid);

    let subscribers = shape.subscribers;
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut received = vec![0u32; subscribers];
    let mut held = vec![0usize; subscribers];
    // First one subscriber per key (per node), then the rest: the memory of keys and of
    // further subscriptions apart.
    let firsts = if shape.token {
        (shape.nodes as usize).min(subscribers)
    } else {
        1.min(subscribers)
    };
    let mut tasks = Vec::new();
    let mut rss = Vec::new();
    for range in [0..firsts, firsts..subscribers] {
        let count = range.len();
        tasks.extend(subscribe(shape, range, &channels, &seen_tx, &stop_rx));
        let mut ready = 0;
        while ready < count {
            let (i, n, _, len) = seen_rx.recv().await.ok_or("subscribers ended")?;
            if received[i] == 0 && n >= 1 {
                ready += 1;
            }
            received[i] = n;
            held[i] = len;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss.push(usage(&pid).0);
    }
    writeln!(to_server, "keys")?;
    let keys: usize = read_line().trim_start_matches("keys ").parse()?;
    let per = |kib: u64, n: usize| kib as f64 * 1024.0 / n.max(1) as f64;
    println!(
        "keys: {subscribers} subscribers on {} nodes{} ({keys} subscription keys), {} endpoints, {} connections: server RSS {rss_before} KiB, {} KiB with one subscriber per key, {} KiB with all; {:.0} bytes per key, {:.0} bytes per further subscription, {:.0} bytes per subscription in total",
        if shape.token { shape.nodes } else { 0 },
        if shape.hints { ", topology hints" } else { "" },
        shape.endpoints,
        shape.connections,
        rss[0],
        rss[1],
        per(rss[0].saturating_sub(rss_before), keys),
        per(rss[1].saturating_sub(rss[0]), subscribers - firsts),
        per(rss[1].saturating_sub(rss_before), subscribers),
    );

    let mut latencies = Vec::new();
    let mut server_times = Vec::new();
    let (mut server_ticks, mut client_ticks) = (0, 0);
    for round in 1..=shape.rounds {
        let (_, server_before) = usage(&pid);
        let (_, client_before) = usage("self");
        writeln!(to_server, "change {round}")?;
        let start: u64 = read_line().trim_start_matches("changed ").parse()?;
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
        let (_, server_after) = usage(&pid);
        let (_, client_after) = usage("self");
        server_ticks += server_after - server_before;
        client_ticks += client_after - client_before;
        writeln!(to_server, "last-write")?;
        let last: u64 = read_line().trim_start_matches("last-write ").parse()?;
        server_times.push(last.saturating_sub(start) as f64 / 1e6);
    }
    latencies.sort_by(f64::total_cmp);
    server_times.sort_by(f64::total_cmp);
    // Clock ticks are 10 ms each.
    let ms_per_round = |ticks: u64| ticks as f64 * 10.0 / shape.rounds as f64;
    println!(
        "fan-out to {subscribers} subscribers, {} changes: change → last subscriber p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server's last write p50 {:.1} ms, p99 {:.1} ms; CPU per fan-out: server {:.0} ms, load generator {:.0} ms",
        shape.rounds,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        percentile(&server_times, 0.5),
        percentile(&server_times, 0.99),
        ms_per_round(server_ticks),
        ms_per_round(client_ticks),
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
        .enumerate()
        .filter(|&(i, &len)| len != shape.expected(i as u32 % shape.nodes, shape.rounds))
        .count();
    println!("subscribers without the final endpoints: {lost}");
    let _ = writeln!(to_server, "quit");
    let _ = child.wait();
    Ok(())
}
