//! How fast and how lean the injector is. Prints one line of numbers per measurement:
//! - `inject`: the pure inject function alone on a typical Deployment pod, back to back;
//! - `admission`: the HTTPS admission server on loopback (TLS, HTTP/1.1 keep-alive), paced at
//!   `--rate` reviews per second over `--connections` connections for `--secs` seconds, with
//!   namespace and owner lookups answered from memory (as the metadata cache answers them).
//!
//! Latency is measured from writing a request to reading its response. CPU is the process's
//! user+system time (`/proc/self/stat`), RSS is `VmRSS` from `/proc/self/status`; the load
//! generator runs in the same process, so both include it. Numbers from a shared machine are
//! noisy: compare within one run.
//!
//! `cargo bench -p oxlink-proxy-injector --bench admission -- [--rate N] [--secs N]
//! [--connections N] [--iterations N]`

use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes};
use hyper_util::rt::TokioIo;
use k8s_openapi::{
    api::core::v1::PodTemplateSpec, apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use oxlink_proxy_injector::{
    InjectContext, Origin, Owner, Values,
    admission::{BoxFuture, Cluster, Injector, LookupError, StaticConfig},
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
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        rate: 500,
        secs: 10,
        connections: 8,
        iterations: 20_000,
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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
    tokio::spawn(server::serve_https(
        listener,
        server::tls_config(serving)?,
        admission,
        std::future::pending(),
    ));
    let rss_idle = rss_mib();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.der().to_vec()))?;
    let client_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let body = Bytes::from(review());
    let per_connection = opts.rate as f64 / opts.connections as f64;
    let deadline = Instant::now() + Duration::from_secs(opts.secs);
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    let mut tasks = Vec::new();
    for _ in 0..opts.connections {
        let (client_config, body) = (client_config.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(client_config)
                .connect("localhost".try_into()?, tcp)
                .await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_connection));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let request = Request::post("/inject")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                let t = Instant::now();
                let response = sender.send_request(request).await?;
                anyhow::ensure!(response.status() == 200, "status {}", response.status());
                response.into_body().collect().await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, start.elapsed());
    latencies.sort();
    println!(
        "admission: {} reviews in {:.1}s ({:.0}/s over {} connections, target {}/s); p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; CPU {:.1}% of a core; RSS idle {:.1} MiB, under load {:.1} MiB",
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        opts.connections,
        opts.rate,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        100.0 * cpu / wall.as_secs_f64(),
        rss_idle,
        rss_mib(),
    );
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
