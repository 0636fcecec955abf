//! `--storm N`: a cluster restart as identity sees it. N pods with real projected tokens
//! (TokenRequests bound to each pod, from the cluster in `KUBECONFIG`) each send one Certify at
//! the same moment; measured once with every token checked by a TokenReview (Linkerd's way,
//! `--token-review-only`) and once with tokens verified in process. For each: the time to the
//! last certificate, certificates per second, p50/p99 latency, and the API-server requests made
//! during the storm (`http_client_requests_total` of the process-wide client metrics), plus
//! those made before it to load the key set and list the bound objects.

use super::{DOMAIN, Report, cpu_time, new_certifier, serve};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{Namespace, Pod, ServiceAccount},
};
use kube::api::{Api, ObjectMeta, PostParams};
use linkerd2_proxy_api::identity::{self as api, identity_client::IdentityClient};
use oxlink_identity::{
    ApiServerKeys, BoundObjects, IssuerKeys, LocalTokens, Metrics, TokenReviewer,
};
use prometheus_client::registry::Registry;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const NS: &str = "oxlink-bench-storm";
/// Pods share this many ServiceAccounts.
const ACCOUNTS: usize = 100;
/// Concurrent requests while setting up.
const SETUP_CONCURRENCY: usize = 32;

struct StormProxy {
    request: api::CertifyRequest,
}

pub(crate) async fn run(n: usize, connections: usize) -> anyhow::Result<()> {
    let client = oxlink_kube::infer().await?;
    let t = Instant::now();
    let proxies = Arc::new(setup(client.clone(), n).await?);
    println!(
        "storm setup: {n} pods of {ACCOUNTS} ServiceAccounts in {NS}, a bound token each, in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut lines = Vec::new();
    for local in [false, true] {
        let metrics = Metrics::register(&mut Registry::default());
        let reviewer = TokenReviewer::new(client.clone(), metrics.clone());
        let before_sync = api_requests();
        let (addr, _tasks) = if local {
            let keys = Arc::new(IssuerKeys::new(ApiServerKeys::new(client.clone())));
            keys.refresh().await.map_err(|e| anyhow::anyhow!(e))?;
            let bound = Arc::new(BoundObjects::default());
            let tasks: Vec<_> = bound
                .spawn(client.clone())
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            while !bound.synced() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let tokens = LocalTokens::new(
                keys,
                bound,
                reviewer,
                Duration::from_secs(20),
                metrics.clone(),
            );
            (serve(Arc::new(new_certifier(tokens))).await?, tasks)
        } else {
            (serve(Arc::new(new_certifier(reviewer))).await?, Vec::new())
        };
        let sync_requests = api_requests() - before_sync;
        let what = if local {
            "local verification"
        } else {
            "TokenReview only"
        };
        let clients = connect(addr, connections).await?;
        let before = api_requests();
        let mut r = storm(&proxies, &clients).await?;
        let requests = api_requests() - before;
        let (certs, wall, p50, p99) = (r.certs, r.wall, r.pct(0.5), r.pct(0.99));
        println!(
            "storm ({what}): {certs} proxies over {connections} connections; CPU {:.2} s; p50 {p50:.1} ms; \
             tokens verified in process {}, TokenReviews {}; \
             API-server requests to get ready (keys, bound-object lists and watches) {sync_requests}",
            r.cpu.as_secs_f64(),
            metrics.token_verification_count("verified"),
            metrics.token_review_count(),
        );
        lines.push(format!(
            "storm: {certs} certified in {:.1} s ({:.0} certs/s), p99 {p99:.0} ms, API server requests: {requests}   [{what}]",
            wall.as_secs_f64(),
            certs as f64 / wall.as_secs_f64(),
        ));
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Every proxy sends its Certify at once; each must be answered with a certificate.
async fn storm(
    proxies: &Arc<Vec<StormProxy>>,
    clients: &[IdentityClient<tonic::transport::Channel>],
) -> anyhow::Result<Report> {
    let start = Arc::new(tokio::sync::Barrier::new(proxies.len() + 1));
    let mut tasks = Vec::with_capacity(proxies.len());
    for i in 0..proxies.len() {
        let (proxies, start) = (proxies.clone(), start.clone());
        let mut client = clients[i % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let req = proxies[i].request.clone();
            start.wait().await;
            let t = Instant::now();
            client.certify(req).await?;
            Ok::<_, anyhow::Error>(vec![t.elapsed()])
        }));
    }
    start.wait().await;
    super::collect(tasks, Instant::now(), cpu_time()).await
}

async fn connect(
    addr: std::net::SocketAddr,
    n: usize,
) -> anyhow::Result<Vec<IdentityClient<tonic::transport::Channel>>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .http2_adaptive_window(true)
            .connect()
            .await?;
        clients.push(IdentityClient::new(channel));
    }
    Ok(clients)
}

/// The namespace, ServiceAccounts, `n` pods (held by a scheduling gate, so that nothing runs
/// them) and a token bound to each pod. Reuses what a previous run made.
async fn setup(client: kube::Client, n: usize) -> anyhow::Result<Vec<StormProxy>> {
    let pp = PostParams::default();
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        ..Default::default()
    };
    let _ = Api::<Namespace>::all(client.clone())
        .create(
            &pp,
            &Namespace {
                metadata: meta(NS.into()),
                ..Default::default()
            },
        )
        .await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    futures::stream::iter(0..ACCOUNTS)
        .map(|i| {
            let (sas, pp) = (sas.clone(), pp.clone());
            async move {
                let sa = ServiceAccount {
                    metadata: meta(format!("sa-{i}")),
                    ..Default::default()
                };
                let _ = sas.create(&pp, &sa).await;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    futures::stream::iter(0..n)
        .map(|i| {
            let (pods, sas, pp) = (pods.clone(), sas.clone(), pp.clone());
            async move {
                let (name, sa) = (format!("p-{i}"), format!("sa-{}", i % ACCOUNTS));
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name},
                    "spec": {
                        "serviceAccountName": sa,
                        "schedulingGates": [{"name": "oxlink.io/bench"}],
                        "containers": [{"name": "app", "image": "example.invalid/app:1"}],
                    },
                }))?;
                let uid = match pods.create(&pp, &pod).await {
                    Ok(p) => p.metadata.uid,
                    Err(_) => pods.get(&name).await?.metadata.uid,
                }
                .ok_or_else(|| anyhow::anyhow!("pod {name} has no uid"))?;
                let request = TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec!["identity.l5d.io".into()],
                        expiration_seconds: Some(3600),
                        bound_object_ref: Some(BoundObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            name: Some(name.clone()),
                            uid: Some(uid),
                        }),
                    },
                    ..Default::default()
                };
                let token = sas
                    .create_token_request(&sa, &pp, &request)
                    .await?
                    .status
                    .ok_or_else(|| anyhow::anyhow!("TokenRequest without status"))?
                    .token;
                let identity = format!("{sa}.{NS}.{DOMAIN}");
                let (_key, csr) = oxlink_tls::fixtures::csr(&identity);
                anyhow::Ok(StormProxy {
                    request: api::CertifyRequest {
                        identity,
                        token: token.into_bytes(),
                        certificate_signing_request: csr,
                    },
                })
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// API-server requests this process has made so far (every client's, process-wide).
fn api_requests() -> u64 {
    let mut registry = Registry::default();
    oxlink_kube::metrics::register(&mut registry);
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text.lines()
        .filter(|l| l.starts_with("http_client_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
