//! How fast and how lean the injector is. Prints one line of numbers per measurement:
//! - `inject`: the pure inject function alone on a typical Deployment pod, back to back;
//! - `admission`: the HTTPS admission server on loopback (TLS, HTTP/1.1 keep-alive), paced at
//!   `--rate` reviews per second over `--connections` connections for `--secs` seconds, with
//!   namespace and owner lookups answered from memory (as the metadata cache answers them).
//!
//! - `cache`: RSS of the metadata caches holding the ReplicaSets of `--pods` pods (one
//!   ReplicaSet per pod, the worst case), as the API server sends them and as the injector keeps
//!   them (trimmed).
//!
//! Latency is measured from writing a request to reading its response. CPU is the process's
//! user+system time (`/proc/self/stat`), RSS is `VmRSS` from `/proc/self/status`; the load
//! generator runs in the same process, so both include it. Numbers from a shared machine are
//! noisy: compare within one run.
//!
//! `cargo bench -p oxlink-proxy-injector --bench admission -- [--rate N] [--secs N]
//! [--connections N] [--iterations N] [--pods N] [--h2]` (`--h2`: HTTP/2, as the API server
//! speaks to webhooks that offer it, instead of HTTP/1.1)

use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::{
    api::core::v1::PodTemplateSpec, apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    core::PartialObjectMeta,
    runtime::{reflector, watcher},
};
use oxlink_proxy_injector::{
    InjectContext, Origin, Owner, Values,
    admission::{BoxFuture, Cluster, Injector, LookupError, StaticConfig},
    cluster::trim,
    inject_template,
    server::{self, Admission},
};
use oxlink_tls::{CertificateDer, PrivateKeyDer, ServingCert};
use serde_json::json;
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

struct Opts {
    rate: u64,
    secs: u64,
    connections: u64,
    iterations: usize,
    pods: usize,
    h2: bool,
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        rate: 500,
        secs: 10,
        connections: 8,
        iterations: 20_000,
        pods: 10_000,
        h2: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse().ok());
        match (args[i].as_str(), value) {
            ("--rate", Some(v)) => opts.rate = v,
            ("--secs", Some(v)) => opts.secs = v,
            ("--connections", Some(v)) => opts.connections = v,
            ("--iterations", Some(v)) => opts.iterations = v as usize,
            ("--pods", Some(v)) => opts.pods = v as usize,
            ("--h2", _) => {
                opts.h2 = true;
                i += 1;
                continue;
            }
            // `cargo bench` passes `--bench`; anything unknown is ignored.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    opts
}

/// Every namespace enables injection; owners are ReplicaSets of Deployment `web`.
struct InMemory;

impl Cluster for InMemory {
    fn namespace_annotations<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, LookupError>> {
        Box::pin(async {
            Ok(BTreeMap::from([(
                "linkerd.io/inject".into(),
                "enabled".into(),
            )]))
        })
    }

    fn owner<'a>(
        &'a self,
        _: &'a str,
        _: &'a OwnerReference,
    ) -> BoxFuture<'a, Result<Owner, LookupError>> {
        Box::pin(async {
            Ok(Owner {
                kind: "Deployment".into(),
                name: "web".into(),
            })
        })
    }
}

fn pod() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-5d8f-",
            "labels": {"app": "web", "pod-template-hash": "5d8f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-5d8f", "uid": "1", "controller": true}],
        },
        "spec": {
            "serviceAccountName": "web",
            "containers": [{
                "name": "web",
                "image": "example/web:1",
                "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 6379}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8081}},
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }],
        },
    })
}

fn review() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": pod(),
        },
    }))
    .expect("review serializes")
}

/// A ReplicaSet's metadata as a metadata watch delivers it from a real cluster: labels, the
/// Deployment's annotations, the controller reference and kube-controller-manager's
/// managedFields.
fn replicaset_meta(i: usize) -> PartialObjectMeta<ReplicaSet> {
    let hash = format!("{:010x}", i.wrapping_mul(2_654_435_761));
    serde_json::from_value(json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {
            "name": format!("web-{i}-{hash}"),
            "namespace": format!("team-{}", i / 100),
            "uid": format!("{:08x}-5e1c-4b6f-9d2a-{:012x}", i, i),
            "resourceVersion": format!("{}", 100_000 + i),
            "generation": 1,
            "creationTimestamp": "2026-11-26T10:00:00Z",
            "labels": {"app": format!("web-{i}"), "pod-template-hash": hash},
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": "1",
                "deployment.kubernetes.io/max-replicas": "2",
                "deployment.kubernetes.io/revision": "1",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": format!("web-{i}"),
                "uid": format!("{:08x}-0d3e-4a51-8c7b-{:012x}", i, i),
                "controller": true, "blockOwnerDeletion": true,
            }],
            "managedFields": [{
                "manager": "kube-controller-manager", "operation": "Update",
                "apiVersion": "apps/v1", "time": "2026-11-26T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {
                        "f:annotations": {".": {}, "f:deployment.kubernetes.io/desired-replicas": {},
                            "f:deployment.kubernetes.io/max-replicas": {}, "f:deployment.kubernetes.io/revision": {}},
                        "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                        "f:ownerReferences": {".": {}, "k:{\"uid\":\"x\"}": {}},
                    },
                    "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {},
                            "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                            "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                            "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                            "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}},
                    }},
                },
            }, {
                "manager": "kube-controller-manager", "operation": "Update",
                "apiVersion": "apps/v1", "time": "2026-11-26T10:00:05Z", "fieldsType": "FieldsV1",
                "subresource": "status",
                "fieldsV1": {"f:status": {"f:availableReplicas": {}, "f:fullyLabeledReplicas": {},
                    "f:observedGeneration": {}, "f:readyReplicas": {}, "f:replicas": {}}},
            }],
        },
    }))
    .expect("ReplicaSet metadata")
}

/// Fills a ReplicaSet metadata cache with `count` objects, trimmed or not; returns it and the
/// RSS it added.
fn fill_cache(
    count: usize,
    trimmed: bool,
) -> (reflector::Store<PartialObjectMeta<ReplicaSet>>, f64) {
    let before = rss_mib();
    let (store, mut writer) = reflector::store::<PartialObjectMeta<ReplicaSet>>();
    for i in 0..count {
        let mut meta = replicaset_meta(i);
        if trimmed {
            trim(&mut meta, false);
        }
        writer.apply_watcher_event(&watcher::Event::Apply(meta));
    }
    (store, rss_mib() - before)
}

/// One load generator's end of a connection.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        mut request: Request<Full<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Self::H1(s) => {
                // HTTP/1.1 wants an origin-form target and a Host header.
                let path: hyper::Uri = request.uri().path().parse().expect("a path");
                *request.uri_mut() = path;
                request
                    .headers_mut()
                    .insert("host", hyper::header::HeaderValue::from_static("localhost"));
                s.send_request(request).await
            }
            Self::H2(s) => s.send_request(request).await,
        }
    }
}

/// A paced load: `rate` requests per second over `connections` senders for `secs` seconds,
/// generated on a thread of its own (one current-thread runtime), so that the server's
/// workers run only the server; its CPU is that thread's.
struct Load {
    rate: u64,
    secs: u64,
    connections: u64,
    h2: Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>>,
}

struct LoadRun {
    /// Sorted.
    latencies: Vec<Duration>,
    /// The load generator's CPU seconds.
    cpu: f64,
}

impl Load {
    /// Posts `body` to `/inject` (expecting 200), or with `None` gets `/live`.
    fn run<C, F>(&self, connect: C, body: Option<Bytes>) -> anyhow::Result<LoadRun>
    where
        C: Fn() -> F + Clone + Send + 'static,
        F: std::future::Future<
                Output = anyhow::Result<
                    TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
                >,
            > + Send,
    {
        let (rate, secs, connections, h2) =
            (self.rate, self.secs, self.connections, self.h2.clone());
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let cpu0 = thread_cpu_seconds();
                    let mut latencies =
                        runtime.block_on(paced(rate, secs, connections, h2, connect, body))?;
                    latencies.sort();
                    Ok(LoadRun {
                        latencies,
                        cpu: thread_cpu_seconds() - cpu0,
                    })
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
        })
    }
}

async fn paced<C, F>(
    rate: u64,
    secs: u64,
    connections: u64,
    shared_h2: Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>>,
    connect: C,
    body: Option<Bytes>,
) -> anyhow::Result<Vec<Duration>>
where
    C: Fn() -> F + Clone + Send + 'static,
    F: std::future::Future<
            Output = anyhow::Result<
                TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
            >,
        > + Send,
{
    let per_connection = rate as f64 / connections as f64;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (connect, body, shared_h2) = (connect.clone(), body.clone(), shared_h2.clone());
        tasks.spawn(async move {
            let mut sender = match shared_h2 {
                Some(h2) => Sender::H2(h2),
                None => {
                    let (sender, conn) =
                        hyper::client::conn::http1::handshake(connect().await?).await?;
                    tokio::spawn(conn);
                    Sender::H1(sender)
                }
            };
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_connection));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let request = match &body {
                    Some(body) => Request::post("https://localhost/inject")
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))?,
                    None => Request::get("https://localhost/live").body(Full::new(Bytes::new()))?,
                };
                let t = Instant::now();
                let response = sender.send(request).await?;
                anyhow::ensure!(response.status() == 200, "status {}", response.status());
                response.into_body().collect().await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    Ok(latencies)
}

/// The calling thread's CPU time (user + system), in seconds.
fn thread_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/thread-self/stat")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn bench_inject(iterations: usize) {
    let values = Values::default();
    let template: PodTemplateSpec = serde_json::from_value(json!({
        "metadata": pod()["metadata"], "spec": pod()["spec"],
    }))
    .expect("template");
    let ns = BTreeMap::from([("linkerd.io/inject".to_string(), "enabled".to_string())]);
    let owner = Owner {
        kind: "Deployment".into(),
        name: "web".into(),
    };
    let ctx = InjectContext {
        values: &values,
        trust_anchors_pem: oxlink_tls::fixtures::ANCHOR_CRT,
        control_plane_namespace: "linkerd",
        namespace: "shop",
        namespace_annotations: &ns,
        owner: Some(&owner),
        created_by: "bench",
        origin: Origin::Webhook,
    };
    let mut latencies = Vec::with_capacity(iterations);
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    for _ in 0..iterations {
        let t = Instant::now();
        let injection = inject_template(&template, &ctx);
        let before = serde_json::to_value(&template).expect("template");
        let ops = oxlink_proxy_injector::diff(&before, &injection.template, "");
        std::hint::black_box(ops);
        latencies.push(t.elapsed());
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, start.elapsed());
    latencies.sort();
    println!(
        "inject: {iterations} pods in {:.2}s = {:.0}/s ({:.0} per CPU-second); p50 {:.3} ms, p99 {:.3} ms",
        wall.as_secs_f64(),
        iterations as f64 / wall.as_secs_f64(),
        iterations as f64 / cpu.max(1e-9),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );
}

async fn bench_admission(opts: &Opts) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
    let serving = Arc::new(ServingCert::default());
    serving.set_chain(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?,
    )?;
    let admission = Admission::new(
        Injector::new(
            Arc::new(InMemory),
            Arc::new(StaticConfig {
                values: Arc::new(Values::default()),
                trust_anchors_pem: oxlink_tls::fixtures::ANCHOR_CRT.into(),
            }),
            "linkerd".into(),
        ),
        server::DEFAULT_MAX_BODY_BYTES,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let _running = oxlink_proxy_injector::serve::spawn(
        admission,
        server::tls_config(serving)?,
        oxlink_admin::serve::Limits::WEBHOOK,
        listener,
        None,
        oxlink_admin::Tasks::default(),
    )?;
    let rss_idle = rss_mib();
    // The caches as the injector keeps them, for the whole run.
    let (cache, cache_mib) = fill_cache(opts.pods, true);
    let rss_cached = rss_mib();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.der().to_vec()))?;
    let mut client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    client_config.alpn_protocols = vec![if opts.h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let client_config = Arc::new(client_config);
    let connect = move || {
        let client_config = client_config.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(client_config)
                .connect("localhost".try_into()?, tcp)
                .await?;
            anyhow::Ok(TokioIo::new(tls))
        }
    };
    // HTTP/2 multiplexes every sender over one connection, as the API server does.
    let shared_h2 = if opts.h2 {
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            connect().await?,
        )
        .await?;
        tokio::spawn(conn);
        Some(sender)
    } else {
        None
    };
    let body = Bytes::from(review());
    let load = Load {
        rate: opts.rate,
        secs: opts.secs,
        connections: opts.connections,
        h2: shared_h2,
    };
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    let run = load.run(connect.clone(), Some(body.clone()))?;
    let (cpu, wall) = (cpu_seconds() - cpu0, start.elapsed());
    let rss_load = rss_mib();
    let latencies = run.latencies;
    println!(
        "admission ({}): {} reviews in {:.1}s ({:.0}/s over {} senders, target {}/s); p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; CPU {:.1}% of a core (server {:.1}%, load generator {:.1}%); RSS idle {:.1} MiB, under load {:.1} MiB",
        if opts.h2 {
            "HTTP/2, one connection"
        } else {
            "HTTP/1.1 keep-alive"
        },
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        opts.connections,
        opts.rate,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        100.0 * cpu / wall.as_secs_f64(),
        100.0 * (cpu - run.cpu) / wall.as_secs_f64(),
        100.0 * run.cpu / wall.as_secs_f64(),
        rss_idle,
        rss_load,
    );

    // Where the time goes: the same round trips without a review (`GET /live`: TLS, HTTP
    // and both sides' scheduling), and the review alone in process, back to back.
    let live = load.run(connect, None)?.latencies;
    let injector = Injector::new(
        Arc::new(InMemory),
        Arc::new(StaticConfig {
            values: Arc::new(Values::default()),
            trust_anchors_pem: oxlink_tls::fixtures::ANCHOR_CRT.into(),
        }),
        "linkerd".into(),
    );
    let mut reviews = Vec::with_capacity(opts.iterations);
    for _ in 0..opts.iterations {
        let t = Instant::now();
        let reviewed = injector.review(&body).await?;
        std::hint::black_box(reviewed);
        reviews.push(t.elapsed());
    }
    reviews.sort();
    println!(
        "where a review's time goes: the review alone (decode, inject, patch, encode) p50 {:.3} ms, p99 {:.3} ms; an HTTPS round trip without one (GET /live at {}/s) p50 {:.3} ms, p99 {:.3} ms",
        ms(percentile(&reviews, 0.5)),
        ms(percentile(&reviews, 0.99)),
        opts.rate,
        ms(percentile(&live, 0.5)),
        ms(percentile(&live, 0.99)),
    );
    let cached = cache.state().len();
    drop(cache);
    let (untrimmed, untrimmed_mib) = fill_cache(opts.pods, false);
    println!(
        "cache: RSS idle {rss_idle:.1} MiB, with the ReplicaSets of {cached} pods cached {rss_cached:.1} MiB \
         (+{cache_mib:.1} MiB trimmed; +{untrimmed_mib:.1} MiB as sent, managedFields and all)",
    );
    drop(untrimmed);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let opts = parse_args();
    bench_inject(opts.iterations);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench_admission(&opts))
}
